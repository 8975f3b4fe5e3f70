package report

import (
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"strings"

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
	"pct": func(n, of int) string {
		if of == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	},
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

// embed renders f and wraps it for a page.
func (th *theme) embed(f figure, alt string) (img, error) {
	data, err := th.render(f)
	if err != nil {
		return img{}, fmt.Errorf("%s: %w", alt, err)
	}
	// The data URL is built here from PNG bytes we encoded ourselves, so it
	// is safe to mark as a URL for html/template.
	src := template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(data))
	return img{Src: src, Alt: alt, W: cssPixels(f.w), H: cssPixels(f.h)}, nil
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
	for i, p := range pieces {
		out[i] = tokenView{Text: strings.ReplaceAll(p, "▁", "␣")}
		if i >= len(lps) || math.IsNaN(float64(lps[i])) {
			out[i].Title = "no log-probability"
			continue
		}
		lp := float64(lps[i])
		t := math.Max(0, math.Min(1, 1+lp/5)) // 0 at −5, 1 at 0
		r := int(math.Round(244*(1-t) + 199*t))
		g := int(math.Round(163*(1-t) + 233*t))
		b := int(math.Round(163*(1-t) + 192*t))
		out[i].Style = template.CSS(fmt.Sprintf("background:#%02x%02x%02x", r, g, b))
		out[i].Title = fmt.Sprintf("log p = %.3f (p = %.3f)", lp, math.Exp(lp))
	}
	return out
}
