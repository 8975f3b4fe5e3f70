package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"

	"attnaudit/metrics"
	"attnaudit/store"
)

// comparePage is compare.html's template data.
type comparePage struct {
	Title       string
	FontNote    string
	Runs        []compareRunView
	Against     string
	Regressions []regressionView
	Quality     []*img
	Detectors   []*img
	Kinds       []kindSection
	Changes     []flagChanges
	XTitle      string
}

type compareRunView struct {
	S                 Summary
	Baseline          bool
	Sentences         int
	Suspects, Flagged int
	Bad               bool // a regression fired for this run
}

type regressionView struct {
	Run, Against, What string
	Before, After      string
	Limit              string
}

type flagChanges struct {
	From, To string
	Total    int
	Shown    []flagChange
}

type flagChange struct {
	ID                int32
	Source            string
	Before, After     []string
	HypBefore, HypAft string
}

// compareDetectors are the sentence scores compare.html follows across runs
// (mean over the free pass's sentences): metrics.SentenceTable's entries
// with Compare set.
var compareDetectors = func() []compareScore {
	var out []compareScore
	for i, m := range metrics.SentenceTable {
		if m.Compare {
			out = append(out, compareScore{m.Name, metrics.SentenceIndex(i)})
		}
	}
	return out
}()

type compareScore struct {
	name  string
	index metrics.SentenceIndex
}

func (c compareScore) get(s store.SentenceMetrics) float32 { return s.Values[c.index] }

// GenerateCompare writes compare.html for several runs to w: every run-level
// metric against epoch (one line per layer), detector scores and flag counts
// against epoch, the examples whose flags changed between consecutive runs,
// and regressions against the baseline highlighted. Like report.html it is
// self-contained and needs no network.
func GenerateCompare(w io.Writer, data CompareData, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	if len(data.Runs) == 0 {
		return fmt.Errorf("compare: no runs")
	}
	if data.Baseline >= len(data.Runs) || data.Baseline < -1 {
		return fmt.Errorf("compare: baseline index %d, want -1..%d", data.Baseline, len(data.Runs)-1)
	}
	th, err := newTheme(opts.Plot)
	if err != nil {
		return err
	}
	first := data.Runs[0].Summary
	page := comparePage{
		Title:    fmt.Sprintf("attnaudit compare: %d runs of %s on %s", len(data.Runs), orDash(first.Checkpoint), orDash(first.Dataset)),
		FontNote: th.fonts.warning,
		Against:  "each run's predecessor",
	}
	if data.Baseline >= 0 {
		page.Against = "the baseline " + runLabel(data.Runs[data.Baseline].Summary)
	}
	sents := make([][]store.SentenceMetrics, len(data.Runs))
	for i, r := range data.Runs {
		sents[i] = freeSentences(r.Sentences)
		v := compareRunView{S: r.Summary, Baseline: i == data.Baseline, Sentences: len(sents[i])}
		for _, s := range sents[i] {
			if s.Flags[metrics.FlagHallucinationSuspect] {
				v.Suspects++
			}
			if len(flagNames(s)) > 0 {
				v.Flagged++
			}
		}
		page.Runs = append(page.Runs, v)
	}
	for _, r := range data.Regressions {
		page.Regressions = append(page.Regressions, regressionView{Run: r.Run, Against: r.Against, What: r.What,
			Before: formatFloat(r.Before, 3), After: formatFloat(r.After, 3), Limit: formatFloat(r.Limit, 3)})
		for i := range page.Runs {
			if runLabel(page.Runs[i].S) == r.Run {
				page.Runs[i].Bad = true
			}
		}
	}
	xs, ticks, xTitle := runPositions(data.Runs)
	page.XTitle = xTitle
	q := &figureQueue{th: th}
	if err := page.plots(q, data, sents, xs, ticks, xTitle); err != nil {
		return err
	}
	if err := q.render(); err != nil {
		return err
	}
	page.Changes = changedFlags(data, sents, opts.ChangedExamples)
	if err := templates.ExecuteTemplate(w, "compare.html", page); err != nil {
		return fmt.Errorf("writing compare page: %w", err)
	}
	return nil
}

// runLabel names a run in tables: its folder name, else checkpoint and epoch.
func runLabel(s Summary) string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("%s epoch %d step %d", orDash(s.Checkpoint), s.Epoch, s.Step)
}

// runPositions places runs on the x axis by epoch when epochs increase, else
// by step, else in the given order.
func runPositions(runs []CompareRun) ([]float64, []plot.Tick, string) {
	epochs, steps := make([]float64, len(runs)), make([]float64, len(runs))
	for i, r := range runs {
		epochs[i], steps[i] = float64(r.Summary.Epoch), float64(r.Summary.Step)
	}
	increasing := func(v []float64) bool {
		for i := 1; i < len(v); i++ {
			if v[i] <= v[i-1] {
				return false
			}
		}
		return true
	}
	xs, title := epochs, "epoch"
	switch {
	case increasing(epochs):
	case increasing(steps):
		xs, title = steps, "step"
	default:
		xs, title = make([]float64, len(runs)), "run (in the order given)"
		for i := range xs {
			xs[i] = float64(i)
		}
	}
	var ticks []plot.Tick
	if len(runs) <= 12 {
		for _, x := range xs {
			ticks = append(ticks, plot.Tick{Value: x, Label: formatFloat(x, 0)})
		}
	}
	return xs, ticks, title
}

func (page *comparePage) plots(q *figureQueue, data CompareData, sents [][]store.SentenceMetrics, xs []float64, ticks []plot.Tick, xTitle string) error {
	add := func(dst *[]*img, title, yTitle string, ss []series) error {
		f, err := q.th.linesFigure(title, xTitle, yTitle, ss, ticks)
		if err != nil {
			return err
		}
		*dst = append(*dst, q.add(f, title+" against "+xTitle))
		return nil
	}
	n := len(data.Runs)
	chrf, bleu := make([]float64, n), make([]float64, n)
	for i, r := range data.Runs {
		chrf[i], bleu[i] = r.Summary.CorpusChrF, r.Summary.CorpusBLEU
	}
	if err := add(&page.Quality, "Corpus chrF and BLEU", "score", []series{{"chrF", xs, chrf}, {"BLEU", xs, bleu}}); err != nil {
		return err
	}
	var flagSeries []series
	for f, rule := range metrics.FlagTable {
		ys := make([]float64, n)
		for i := range sents {
			for _, s := range sents[i] {
				if s.Flags[f] {
					ys[i]++
				}
			}
		}
		flagSeries = append(flagSeries, series{rule.Name, xs, ys})
	}
	if err := add(&page.Quality, "Flagged examples", "examples", flagSeries); err != nil {
		return err
	}
	for _, d := range compareDetectors {
		ys := make([]float64, n)
		for i := range sents {
			var a acc
			for _, s := range sents[i] {
				a.add(d.get(s))
			}
			ys[i] = a.mean()
		}
		if allNaNFloat(ys) {
			continue
		}
		if err := add(&page.Detectors, "mean "+d.name, d.name, []series{{d.name, xs, ys}}); err != nil {
			return err
		}
	}
	for _, kind := range kinds {
		sec := kindSection{Kind: kind, Title: kindTitles[kind]}
		for _, m := range headMetrics {
			if !m.AppliesTo(kind) || !m.Compare {
				continue
			}
			layers := 0
			for _, r := range data.Runs {
				layers = max(layers, r.Heads.Means[kind][m.Name].Rows)
			}
			var ss []series
			for l := range layers {
				ys := make([]float64, n)
				for i, r := range data.Runs {
					ys[i] = math.NaN()
					if mat, ok := r.Heads.Means[kind][m.Name]; ok && l < mat.Rows {
						ys[i] = layerMeans(mat)[l]
					}
				}
				ss = append(ss, series{fmt.Sprintf("layer %d", l), xs, ys})
			}
			if len(ss) == 0 || allNaNSeries(ss) {
				continue
			}
			if err := add(&sec.Figures, m.Name+" (mean over heads)", m.Name, ss); err != nil {
				return err
			}
		}
		if len(sec.Figures) > 0 {
			page.Kinds = append(page.Kinds, sec)
		}
	}
	return nil
}

func allNaNFloat(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return false
		}
	}
	return true
}

func allNaNSeries(ss []series) bool {
	for _, s := range ss {
		if !allNaNFloat(s.y) {
			return false
		}
	}
	return true
}

// changedFlags lists, for each pair of consecutive runs, the examples whose
// set of flags changed, at most limit per pair.
func changedFlags(data CompareData, sents [][]store.SentenceMetrics, limit int) []flagChanges {
	var out []flagChanges
	for i := 1; i < len(data.Runs); i++ {
		before := map[int32][]string{}
		for _, s := range sents[i-1] {
			before[s.ExampleID] = flagNames(s)
		}
		hyps := func(r CompareRun) map[int32]*store.Example {
			m := map[int32]*store.Example{}
			for k := range r.Examples {
				m[r.Examples[k].ExampleID] = &r.Examples[k]
			}
			return m
		}
		hb, ha := hyps(data.Runs[i-1]), hyps(data.Runs[i])
		fc := flagChanges{From: runLabel(data.Runs[i-1].Summary), To: runLabel(data.Runs[i].Summary)}
		for _, s := range sents[i] {
			b, ok := before[s.ExampleID]
			a := flagNames(s)
			if !ok || slices.Equal(a, b) {
				continue
			}
			fc.Total++
			if len(fc.Shown) >= limit {
				continue
			}
			c := flagChange{ID: s.ExampleID, Before: b, After: a}
			if e := ha[s.ExampleID]; e != nil {
				c.Source, c.HypAft = e.Source, e.Hypothesis
			}
			if e := hb[s.ExampleID]; e != nil {
				c.HypBefore = e.Hypothesis
				if c.Source == "" {
					c.Source = e.Source
				}
			}
			fc.Shown = append(fc.Shown, c)
		}
		out = append(out, fc)
	}
	return out
}

// joinOrNone renders a flag list for a table cell.
func joinOrNone(fs []string) string {
	if len(fs) == 0 {
		return "none"
	}
	return strings.Join(fs, ", ")
}
