package report

import (
	"math"

	"attnaudit/metrics"
	"attnaudit/store"
)

// headMetric is a head metric the report plots: an entry of
// metrics.HeadTable with Plot set.
type headMetric struct {
	metrics.HeadMetric
	index metrics.HeadIndex
}

func (m headMetric) get(r store.HeadMetrics) float32 { return r.Values[m.index] }

// headMetrics are the plotted metrics, in the table's order.
var headMetrics = func() []headMetric {
	var out []headMetric
	for i, m := range metrics.HeadTable {
		if m.Plot {
			out = append(out, headMetric{m, metrics.HeadIndex(i)})
		}
	}
	return out
}()

// kinds in the order the pages show them.
var kinds = []string{store.KindCross, store.KindDecoderSelf, store.KindEncoderSelf}

// HeadStats are head_metrics.parquet reduced for the pages: the free pass's
// mean of every metric per kind, layer and head, and per example the mean
// over heads of the cross-attention metrics, per layer.
type HeadStats struct {
	// Means[kind][metric] is a layers × heads matrix of means over examples;
	// NaN where no example had a value.
	Means map[string]map[string]metrics.Matrix
	// Examples[id] are the example's cross-attention means over heads.
	Examples map[int32]ExampleHeads
	// Count is the number of free-pass rows aggregated.
	Count int
}

// ExampleHeads are one example's cross-attention metrics, mean over heads,
// indexed by layer.
type ExampleHeads struct {
	Diagonality, EntropyNorm, Confidence, LastMass []float64
}

// HeadAggregator reduces head_metrics rows one at a time, so a run of any
// size is read in one pass: its Add fits store.ScanHeadMetrics.
type HeadAggregator struct {
	sums map[aggKey]*acc
	ex   map[int32]map[int16]*exAcc
	dims map[string][2]int // layers, heads per kind
	n    int
}

type aggKey struct {
	kind, metric string
	layer, head  int16
}

type acc struct {
	sum float64
	n   int
}

type exAcc struct{ diag, ent, conf, last acc }

func (a *acc) add(v float32) {
	if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
		a.sum += f
		a.n++
	}
}

func (a acc) mean() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return a.sum / float64(a.n)
}

// NewHeadAggregator returns an empty aggregator.
func NewHeadAggregator() *HeadAggregator {
	return &HeadAggregator{sums: map[aggKey]*acc{}, ex: map[int32]map[int16]*exAcc{}, dims: map[string][2]int{}}
}

// Add takes one row. Each metric is taken from the pass it is shown for
// (metrics.HeadMetric.ShownPass: the free pass, the forced pass for AER);
// rows of other passes are skipped.
func (a *HeadAggregator) Add(r store.HeadMetrics) error {
	if r.Layer < 0 || r.Head < 0 || (r.Pass != store.PassFree && r.Pass != store.PassForced) {
		return nil
	}
	if r.Pass == store.PassFree {
		a.n++
	}
	d := a.dims[r.Kind]
	a.dims[r.Kind] = [2]int{max(d[0], int(r.Layer)+1), max(d[1], int(r.Head)+1)}
	for _, m := range headMetrics {
		if !m.AppliesTo(r.Kind) || m.ShownPass() != r.Pass {
			continue
		}
		k := aggKey{r.Kind, m.Name, r.Layer, r.Head}
		s := a.sums[k]
		if s == nil {
			s = &acc{}
			a.sums[k] = s
		}
		s.add(m.get(r))
	}
	if r.Kind == store.KindCross && r.Pass == store.PassFree {
		layers := a.ex[r.ExampleID]
		if layers == nil {
			layers = map[int16]*exAcc{}
			a.ex[r.ExampleID] = layers
		}
		e := layers[r.Layer]
		if e == nil {
			e = &exAcc{}
			layers[r.Layer] = e
		}
		e.diag.add(r.Value(metrics.HeadDiagonality))
		e.ent.add(r.Value(metrics.HeadEntropyNorm))
		e.conf.add(r.Value(metrics.HeadConfidence))
		e.last.add(r.Value(metrics.HeadLastMass))
	}
	return nil
}

// Stats returns the aggregates so far.
func (a *HeadAggregator) Stats() HeadStats {
	st := HeadStats{Means: map[string]map[string]metrics.Matrix{}, Examples: map[int32]ExampleHeads{}, Count: a.n}
	for kind, d := range a.dims {
		st.Means[kind] = map[string]metrics.Matrix{}
		for _, m := range headMetrics {
			if !m.AppliesTo(kind) {
				continue
			}
			mat := metrics.NewMatrix(d[0], d[1])
			for l := range d[0] {
				for h := range d[1] {
					v := math.NaN()
					if s := a.sums[aggKey{kind, m.Name, int16(l), int16(h)}]; s != nil {
						v = s.mean()
					}
					mat.Data[l*d[1]+h] = float32(v)
				}
			}
			st.Means[kind][m.Name] = mat
		}
	}
	layers := a.dims[store.KindCross][0]
	for id, ls := range a.ex {
		eh := ExampleHeads{
			Diagonality: nanSlice(layers), EntropyNorm: nanSlice(layers),
			Confidence: nanSlice(layers), LastMass: nanSlice(layers),
		}
		for l, e := range ls {
			eh.Diagonality[l], eh.EntropyNorm[l] = e.diag.mean(), e.ent.mean()
			eh.Confidence[l], eh.LastMass[l] = e.conf.mean(), e.last.mean()
		}
		st.Examples[id] = eh
	}
	return st
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// layerMeans is a metric's mean over heads per layer (NaN heads skipped).
func layerMeans(m metrics.Matrix) []float64 {
	out := make([]float64, m.Rows)
	for l := range m.Rows {
		var a acc
		for _, v := range m.Row(l) {
			a.add(v)
		}
		out[l] = a.mean()
	}
	return out
}

// allNaN reports whether a matrix holds no value at all (AER without gold
// alignments).
func allNaN(m metrics.Matrix) bool {
	for _, v := range m.Data {
		if !math.IsNaN(float64(v)) {
			return false
		}
	}
	return true
}
