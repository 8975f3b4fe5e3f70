package report

import (
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"math"
	"runtime"
	"strings"
	"sync"

	"gonum.org/v1/plot/vg"
)

//go:embed templates/*.html templates/*.css
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"f2":      func(v float64) string { return formatFloat(v, 2) },
	"f3":      func(v float64) string { return formatFloat(v, 3) },
	"f32":     func(v float32) string { return formatFloat(float64(v), 3) },
	"flags":   joinOrNone,
	"runName": runLabel,
	"join":    strings.Join,
	"pct": func(n, of int) string {
		if of == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	},
	"pageHead":      pageHead,
	"explorerStyle": explorerStyle,
	"css": func() template.CSS {
		data, err := templateFS.ReadFile("templates/page.css")
		if err != nil {
			panic(err) // embedded at build time
		}
		return template.CSS(data)
	},
}).ParseFS(templateFS, "templates/*.html"))

// formatFloat prints v with prec decimals, and "—" for NaN (a score that
// could not be computed, such as chrF without a reference).
func formatFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return "—"
	}
	if math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// img is a figure embedded in a page as a data: URL, shown at its size in
// inches whatever the DPI it was rendered at.
type img struct {
	Src  template.URL
	Alt  string
	W, H int // CSS pixels
}

// figureQueue collects a page's figures and renders them together,
// GOMAXPROCS at a time: drawing and PNG encoding are most of a report's
// time, and figures are independent (gonum's fonts and canvases are safe
// for concurrent use).
type figureQueue struct {
	th   *theme
	jobs []figureJob
}

type figureJob struct {
	f  figure
	im *img
}

// add queues f and returns the image that stands for it on the page; its
// Src is filled in by render.
func (q *figureQueue) add(f figure, alt string) *img {
	im := &img{Alt: alt, W: cssPixels(f.w), H: cssPixels(f.h)}
	q.jobs = append(q.jobs, figureJob{f, im})
	return im
}

// render draws every queued figure; a figure that fails is named in the
// error.
func (q *figureQueue) render() error {
	errs := make([]error, len(q.jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(q.jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := q.jobs[i]
				data, err := q.th.render(j.f)
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", j.im.Alt, err)
					continue
				}
				// The data URL is built here from PNG bytes we encoded
				// ourselves, so it is safe to mark as a URL for html/template.
				j.im.Src = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(data))
			}
		}()
	}
	for i := range q.jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	q.jobs = nil
	return errors.Join(errs...)
}

func cssPixels(l vg.Length) int { return int(math.Round(float64(l / vg.Inch * 96))) }

// tokenView is a target token coloured by its log-probability.
type tokenView struct {
	Text  string
	Style template.CSS
	Title string
}

// logprobTokens colours each piece from red (log p ≤ −5, the model was
// unsure) to green (log p = 0); pieces without a log-prob are left white.
func logprobTokens(pieces []string, lps []float32) []tokenView {
	out := make([]tokenView, len(pieces))
	for i, l := range tokenLabels(pieces) {
		out[i] = tokenView{Text: l.Text}
		if i >= len(lps) || math.IsNaN(float64(lps[i])) {
			out[i].Title = l.Title + ": no log-probability"
			continue
		}
		lp := float64(lps[i])
		t := math.Max(0, math.Min(1, 1+lp/5)) // 0 at −5, 1 at 0
		r := int(math.Round(244*(1-t) + 199*t))
		g := int(math.Round(163*(1-t) + 233*t))
		b := int(math.Round(163*(1-t) + 192*t))
		out[i].Style = template.CSS(fmt.Sprintf("background:#%02x%02x%02x", r, g, b))
		out[i].Title = fmt.Sprintf("%s: log p = %.3f (p = %.3f)", l.Title, lp, math.Exp(lp))
	}
	return out
}
