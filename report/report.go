package report

import (
	"fmt"
	"io"
	"math"
	"strings"

	"attnaudit/metrics"
	"attnaudit/store"
)

// reportPage is report.html's template data.
type reportPage struct {
	Title      string
	S          Summary
	FontNote   string
	Sentences  int
	Flags      []flagRow
	AnyFlagged int
	Kinds      []kindSection
	HeadRows   int
	LayerText  string
	Gallery    []galleryView
	Selection  Selection
	Worst      []exampleView
	Sampled    []exampleView
	Problems   []string
	MoreProbs  int
	Explore    explorerData
}

type flagRow struct {
	Name, Rule, Example string
	Count               int
}

type kindSection struct {
	Kind, Title string
	Figures     []*img
	Notes       []string
}

type galleryView struct {
	Name, Why string
	Items     []exampleView
}

type kv struct{ K, V string }

type exampleView struct {
	ID                            int32
	Name                          string
	Source, Reference, Hypothesis string
	Flags                         []string
	Reasons                       string
	Scores                        []kv
	Tokens                        []tokenView
	Figures                       []*img
	Note                          string
	Explorer                      *explorerView
}

var kindTitles = map[string]string{
	store.KindCross:       "Cross-attention (decoder → source)",
	store.KindDecoderSelf: "Decoder self-attention",
	store.KindEncoderSelf: "Encoder self-attention",
}

const maxProblems = 20

// Generate writes report.html for one run to w: a single self-contained
// page (inline CSS, figures as data: URLs, a CSP that forbids any request)
// that reads the same offline and in any browser. Its one script, allowed
// by its hash, is the attention explorer (explorer.go); without it the page
// still shows every figure.
func Generate(w io.Writer, data RunData, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	th, err := newTheme(opts.Plot)
	if err != nil {
		return err
	}
	sel := Select(data, opts)
	page := reportPage{
		Title:     fmt.Sprintf("attnaudit: %s on %s", orDash(data.Summary.Checkpoint), orDash(data.Summary.Dataset)),
		S:         data.Summary,
		FontNote:  th.fonts.warning,
		Selection: sel,
		LayerText: layerText(opts.Layer, data),
		HeadRows:  data.Heads.Count,
	}
	page.Problems = data.Summary.Problems[:min(len(data.Summary.Problems), maxProblems)]
	page.MoreProbs = len(data.Summary.Problems) - len(page.Problems)
	sents := freeSentences(data.Sentences)
	page.Sentences = len(sents)
	for f, rule := range metrics.FlagTable {
		row := flagRow{Name: rule.Name, Rule: rule.Doc}
		if r, ok := data.Summary.FlagRules[rule.Name]; ok {
			row.Rule = r
		}
		for _, s := range sents {
			if s.Flags[f] {
				if row.Count == 0 {
					row.Example = fmt.Sprintf("#%d: %s", s.ExampleID, s.Reasons)
				}
				row.Count++
			}
		}
		page.Flags = append(page.Flags, row)
	}
	page.AnyFlagged = sel.Flagged
	q := &figureQueue{th: th}
	if page.Kinds, err = headSections(q, data.Heads); err != nil {
		return err
	}
	ev := newExampleViews(q, data, opts.Layer)
	for _, g := range sel.Gallery {
		gv := galleryView{Name: g.Name, Why: g.Why}
		for _, id := range g.IDs {
			v, err := ev.view(id, false)
			if err != nil {
				return err
			}
			gv.Items = append(gv.Items, v)
		}
		page.Gallery = append(page.Gallery, gv)
	}
	for _, ids := range []struct {
		in  []int32
		out *[]exampleView
	}{{sel.Worst, &page.Worst}, {sel.Sampled, &page.Sampled}} {
		for _, id := range ids.in {
			v, err := ev.view(id, true)
			if err != nil {
				return err
			}
			*ids.out = append(*ids.out, v)
		}
	}
	if err := q.render(); err != nil {
		return err
	}
	if page.Explore, err = ev.explorerData(th); err != nil {
		return err
	}
	if err := templates.ExecuteTemplate(w, "report.html", page); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// headSections draws the layer × head table of every head metric per kind.
func headSections(q *figureQueue, st HeadStats) ([]kindSection, error) {
	var out []kindSection
	for _, kind := range kinds {
		means, ok := st.Means[kind]
		if !ok {
			continue
		}
		sec := kindSection{Kind: kind, Title: kindTitles[kind]}
		for _, m := range headMetrics {
			mat, ok := means[m.Name]
			if !ok {
				continue
			}
			if allNaN(mat) {
				if m.Name == metrics.HeadTable[metrics.HeadAER].Name {
					sec.Notes = append(sec.Notes, "AER: no gold alignments in this dataset (AER is measured on the forced pass, whose target is the reference the gold links index).")
				}
				continue
			}
			if m.Name == "row_sum_err" {
				if worst := maxFinite(mat.Data); worst < 1e-3 {
					sec.Notes = append(sec.Notes, fmt.Sprintf("Rows sum to 1 within %.1g everywhere (no broken masks).", worst))
					continue
				}
			}
			f, err := q.th.metricGridFigure(mat, m.Name, m.Lo, m.Hi)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", kind, m.Name, err)
			}
			sec.Figures = append(sec.Figures, q.add(f, fmt.Sprintf("%s %s by layer and head: %s", kind, m.Name, m.Doc)))
		}
		out = append(out, sec)
	}
	return out, nil
}

func maxFinite(vs []float32) float64 {
	w := 0.0
	for _, v := range vs {
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			w = math.Max(w, f)
		}
	}
	return w
}

// exampleViews builds example sections, drawing each figure once even when
// an example is in the gallery and in the list.
type exampleViews struct {
	q        *figureQueue
	data     RunData
	layer    int
	examples map[int32]*store.Example
	sents    map[int32]store.SentenceMetrics
	cross    map[int32]*img
	explore  map[int32]*explorerView
}

func newExampleViews(q *figureQueue, data RunData, layer int) *exampleViews {
	ev := &exampleViews{q: q, data: data, layer: layer, examples: map[int32]*store.Example{},
		sents: map[int32]store.SentenceMetrics{}, cross: map[int32]*img{}, explore: map[int32]*explorerView{}}
	for i := range data.Examples {
		ev.examples[data.Examples[i].ExampleID] = &data.Examples[i]
	}
	for _, s := range freeSentences(data.Sentences) {
		ev.sents[s.ExampleID] = s
	}
	return ev
}

func (ev *exampleViews) view(id int32, full bool) (exampleView, error) {
	v := exampleView{ID: id, Name: fmt.Sprintf("#%d", id)}
	ex, ok := ev.examples[id]
	if !ok {
		v.Note = "This example is not in examples.parquet."
		return v, nil
	}
	if ex.ID != "" {
		v.Name = fmt.Sprintf("#%d (%s)", id, ex.ID)
	}
	v.Source, v.Reference, v.Hypothesis = ex.Source, ex.Reference, ex.Hypothesis
	v.Tokens = logprobTokens(ex.TgtPieces, ex.TokenLogprobs)
	v.Scores = append(v.Scores, kv{"Seq-Logprob", formatFloat(float64(ex.SeqLogprob), 3)},
		kv{"chrF", formatFloat(float64(ex.Chrf), 1)}, kv{"BLEU", formatFloat(float64(ex.Bleu), 1)})
	if s, ok := ev.sents[id]; ok {
		v.Flags = flagNames(s)
		v.Reasons = s.Reasons
		// Every sentence score but those the examples row gave above; a
		// score the pass lacks (AER without gold) is left out.
		for i, m := range metrics.SentenceTable {
			switch metrics.SentenceIndex(i) {
			case metrics.SentSeqLogprob, metrics.SentChrF, metrics.SentBLEU:
				continue
			}
			if x := float64(s.Values[i]); !math.IsNaN(x) {
				v.Scores = append(v.Scores, kv{m.Name, formatFloat(x, 3)})
			}
		}
	}
	if eh, ok := ev.data.Heads.Examples[id]; ok {
		if l, err := resolveLayer(ev.layer, len(eh.Diagonality), crossName); err == nil {
			v.Scores = append(v.Scores, kv{fmt.Sprintf("diagonality L%d", l), formatFloat(eh.Diagonality[l], 3)},
				kv{fmt.Sprintf("entropy_norm L%d", l), formatFloat(eh.EntropyNorm[l], 3)})
		}
	}
	att, ok := ev.data.Attention[id]
	if ok {
		v.Explorer = ev.explorer(id)
	}
	if !ok || len(att.Cross) == 0 {
		v.Note = "No cross-attention stored for this example's free pass."
		return v, nil
	}
	if l, err := resolveLayer(ev.layer, len(att.Cross), crossName); err == nil && len(att.Cross[l]) == 0 {
		v.Note = fmt.Sprintf("Cross-attention layer %d of this example's free pass was not stored (the run's store setting).", l)
		return v, nil
	}
	vex := VisualizeExample{Source: ex.Source, Hypothesis: ex.Hypothesis, SrcPieces: ex.SrcPieces, TgtPieces: ex.TgtPieces,
		Cross: att.Cross, DecoderSelf: att.DecoderSelf, EncoderSelf: att.EncoderSelf}
	if !full {
		if im, ok := ev.cross[id]; ok {
			v.Figures = []*img{im}
			return v, nil
		}
	}
	figs, err := ev.q.th.exampleFigures(vex, ev.layer, full)
	if err != nil {
		// One example's odd attention should not sink the whole report.
		v.Note = "Attention could not be drawn: " + err.Error()
		return v, nil
	}
	crossImg, ok := ev.cross[id]
	if !ok {
		crossImg = ev.q.add(*figs.cross, "head-averaged cross-attention of example "+v.Name)
		ev.cross[id] = crossImg
	}
	v.Figures = append(v.Figures, crossImg)
	if !full {
		return v, nil
	}
	for _, f := range []struct {
		fig *figure
		alt string
	}{
		{figs.multihead, "cross-attention of every head"},
		{figs.decSelf, "head-averaged decoder self-attention"},
		{figs.encSelf, "head-averaged encoder self-attention"},
	} {
		if f.fig == nil {
			continue
		}
		v.Figures = append(v.Figures, ev.q.add(*f.fig, f.alt+" of example "+v.Name))
	}
	if strings.TrimSpace(v.Reference) == "" {
		v.Reference = ""
	}
	return v, nil
}

// layerText names the layer the per-example figures show, resolved against
// the run's cross-attention layers.
func layerText(layer int, data RunData) string {
	n := 0
	if m, ok := data.Heads.Means[store.KindCross][metrics.HeadTable[metrics.HeadDiagonality].Name]; ok {
		n = m.Rows
	}
	for _, a := range data.Attention {
		n = max(n, len(a.Cross))
	}
	l, err := resolveLayer(layer, n, crossName)
	if err != nil {
		return fmt.Sprintf("layer %d", layer)
	}
	if l == n-1 {
		return fmt.Sprintf("layer %d (the last of %d)", l, n)
	}
	return fmt.Sprintf("layer %d of 0..%d", l, n-1)
}
