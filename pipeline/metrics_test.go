package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/store"
)

// uniformRows is an n × k matrix of uniform rows; diagonal puts each row on
// its relative-position diagonal key; sink puts every row on the last key.
func uniformRows(n, k int) metrics.Matrix {
	m := metrics.NewMatrix(n, k)
	for i := range m.Data {
		m.Data[i] = 1 / float32(k)
	}
	return m
}

func diagonal(n, k int) metrics.Matrix {
	m := metrics.NewMatrix(n, k)
	for t := range n {
		m.Data[t*k+min(t*k/n, k-1)] = 1
	}
	return m
}

func sinkRows(n, k int) metrics.Matrix {
	m := metrics.NewMatrix(n, k)
	for t := range n {
		m.Data[t*k+k-1] = 1
	}
	return m
}

// writeRun writes a run folder of four examples, free and forced passes,
// 2 layers × 2 heads of each kind. Example 3's free pass has diffuse,
// uniform cross-attention; the others are diagonal.
func writeRun(t *testing.T) (string, []store.Example) {
	t.Helper()
	dir := t.TempDir()
	var exs []store.Example
	hyps := []string{"I am a student .", "The cat sat .", "He runs fast .", "the the the the the the"}
	refs := []string{"I am a student .", "The cat sat down .", "He runs quickly .", "It rains ."}
	for i := range 4 {
		words := strings.Fields(hyps[i])
		rwords := strings.Fields(refs[i])
		ex := store.Example{ExampleID: int32(i), ID: string(rune('a' + i)), Source: "소스", Reference: refs[i], Hypothesis: hyps[i],
			SrcPieces: []string{"나는", "▁학생", "입니다", "</s>"}, SrcIDs: []int32{10, 11, 12, 3}}
		for j, w := range words {
			p := "▁" + w
			if j == 0 {
				p = w
			}
			ex.TgtPieces = append(ex.TgtPieces, p)
			ex.TgtIDs = append(ex.TgtIDs, int32(100+len(w)))
			ex.TokenLogprobs = append(ex.TokenLogprobs, -0.1*float32(i+1))
		}
		ex.TgtPieces, ex.TgtIDs, ex.TokenLogprobs = append(ex.TgtPieces, "</s>"), append(ex.TgtIDs, 3), append(ex.TokenLogprobs, -0.05)
		for _, w := range rwords {
			ex.RefPieces = append(ex.RefPieces, "▁"+w)
			ex.RefIDs = append(ex.RefIDs, int32(200+len(w)))
			ex.RefLogprobs = append(ex.RefLogprobs, -1)
		}
		ex.RefPieces, ex.RefIDs, ex.RefLogprobs = append(ex.RefPieces, "</s>"), append(ex.RefIDs, 3), append(ex.RefLogprobs, -1)
		ex.SeqLogprob = float32(metrics.SeqLogprob(ex.TokenLogprobs))
		exs = append(exs, ex)
	}
	ew, err := store.NewExampleWriter(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ew.Write(exs...); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	aw, err := store.NewAttentionWriter(dir, store.AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		for _, pass := range []string{store.PassForced, store.PassFree} {
			n := len(ex.TgtIDs)
			if pass == store.PassForced {
				n = len(ex.RefIDs)
			}
			k := len(ex.SrcIDs)
			for _, kind := range []string{store.KindCross, store.KindDecoderSelf, store.KindEncoderSelf} {
				for l := range 2 {
					for h := range 2 {
						var m metrics.Matrix
						switch {
						case kind == store.KindEncoderSelf:
							m = diagonal(k, k)
						case kind == store.KindDecoderSelf:
							m = diagonal(n, n)
						case ex.ExampleID == 3 && pass == store.PassFree:
							m = uniformRows(n, k)
						case h == 1:
							m = sinkRows(n, k)
						default:
							m = diagonal(n, k)
						}
						a := store.Attention{ExampleID: ex.ExampleID, Pass: pass, Kind: kind, Layer: int16(l), Head: int16(h), Weights: m}
						if err := aw.Write(a); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, exs
}

func TestComputeMetrics(t *testing.T) {
	dir, exs := writeRun(t)
	gold := map[int32]metrics.Alignment{0: {Sure: []metrics.Link{{Src: 0, Tgt: 0}, {Src: 1, Tgt: 1}, {Src: 1, Tgt: 2}, {Src: 1, Tgt: 3}}}}
	sum, err := ComputeMetrics(dir, metrics.DefaultConfig(), WithGold(gold, map[int32]bool{0: false, 1: false, 2: false, 3: true}))
	if err != nil {
		t.Fatal(err)
	}
	hm, err := store.ReadHeadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * 2 * 3 * 2 * 2; len(hm) != want {
		t.Fatalf("%d head rows, want %d", len(hm), want)
	}
	// Each row equals the metrics functions on its matrix.
	for _, r := range hm {
		ex := exs[r.ExampleID]
		n := len(ex.TgtIDs)
		if r.Pass == store.PassForced {
			n = len(ex.RefIDs)
		}
		var m metrics.Matrix
		switch {
		case r.Kind == store.KindEncoderSelf:
			m = diagonal(4, 4)
		case r.Kind == store.KindDecoderSelf:
			m = diagonal(n, n)
		case r.ExampleID == 3 && r.Pass == store.PassFree:
			m = uniformRows(n, 4)
		case r.Head == 1:
			m = sinkRows(n, 4)
		default:
			m = diagonal(n, 4)
		}
		if int(r.QLen) != m.Rows || int(r.KLen) != m.Cols {
			t.Fatalf("row %+v: shape %d×%d, want %d×%d", r, r.QLen, r.KLen, m.Rows, m.Cols)
		}
		for name, pair := range map[string][2]float64{
			"entropy":     {float64(r.Value(metrics.HeadEntropy)), metrics.Entropy(m)},
			"diagonality": {float64(r.Value(metrics.HeadDiagonality)), metrics.Diagonality(m)},
			"last_mass":   {float64(r.Value(metrics.HeadLastMass)), metrics.LastMass(m)},
			"confidence":  {float64(r.Value(metrics.HeadConfidence)), metrics.Confidence(m)},
		} {
			if math.Abs(pair[0]-pair[1]) > 1e-6 {
				t.Errorf("example %d %s %s L%d H%d: %s = %v, want %v", r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head, name, pair[0], pair[1])
			}
		}
		wantRepeat := r.Kind == store.KindDecoderSelf
		if math.IsNaN(float64(r.Value(metrics.HeadRepeatMass))) == wantRepeat {
			t.Errorf("%s: repeat_mass %v", r.Kind, r.Value(metrics.HeadRepeatMass))
		}
		// Gold links index the reference: AER on the forced pass only.
		wantAER := r.Kind == store.KindCross && r.ExampleID == 0 && r.Pass == store.PassForced
		if math.IsNaN(float64(r.Value(metrics.HeadAER))) == wantAER {
			t.Errorf("example %d %s: aer %v", r.ExampleID, r.Kind, r.Value(metrics.HeadAER))
		}
	}

	sm, err := store.ReadSentenceMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sm) != 8 {
		t.Fatalf("%d sentence rows, want 8", len(sm))
	}
	free3 := sm[7]
	if free3.ExampleID != 3 || free3.Pass != store.PassFree {
		t.Fatalf("last row is %d/%s", free3.ExampleID, free3.Pass)
	}
	if !free3.Flags[metrics.FlagDiffuseAttention] || !strings.Contains(free3.Reasons, "diffuse") {
		t.Errorf("uniform cross-attention not flagged diffuse: %+v", free3)
	}
	if !free3.Flags[metrics.FlagCopying] || math.Abs(float64(free3.Values[metrics.SentRepNgram])-0.75) > 1e-6 {
		t.Errorf("repetition loop: copying %v, rep_ngram %v (want 0.75)", free3.Flags[metrics.FlagCopying], free3.Values[metrics.SentRepNgram])
	}
	if !free3.Flags[metrics.FlagHallucinationSuspect] || !strings.Contains(free3.Reasons, "seq_logprob -0.350 is at or below its threshold") {
		t.Errorf("lowest seq-logprob not suspect: %q", free3.Reasons)
	}
	// Head 1 sits on EOS and head 0's last row reaches it too: (1 + ⅙)/2.
	free0 := sm[1]
	if !free0.Flags[metrics.FlagSinkDominated] || !strings.Contains(free0.Reasons, "58% of its mass on the source EOS") {
		t.Errorf("example 0 not sink-dominated: %q", free0.Reasons)
	}
	if got, want := float64(free0.Values[metrics.SentChrF]), metrics.SentenceChrF(exs[0].Hypothesis, exs[0].Reference); math.Abs(got-want) > 1e-4 || want != 100 {
		t.Errorf("chrf %v, want %v", got, want)
	}
	forced0 := sm[0]
	if forced0.Pass != store.PassForced || math.IsNaN(float64(forced0.Values[metrics.SentAER])) ||
		!math.IsNaN(float64(free0.Values[metrics.SentAER])) || !math.IsNaN(float64(sm[2].Values[metrics.SentAER])) {
		t.Errorf("sentence AER: example 0 forced %v, free %v (want NaN); example 1 forced %v (no gold: NaN)",
			forced0.Values[metrics.SentAER], free0.Values[metrics.SentAER], sm[2].Values[metrics.SentAER])
	}
	// Free passes 1 and 2 have 5 target tokens: each other's only
	// neighbours within ±10%. Example 0 (6 tokens) has none.
	for _, r := range []store.SentenceMetrics{sm[3], sm[5]} {
		if math.IsNaN(float64(r.Values[metrics.SentWassToData])) || r.Values[metrics.SentWassCombo] != r.Values[metrics.SentWassToData] {
			t.Errorf("example %d %s: wass_to_data %v, wass_combo %v", r.ExampleID, r.Pass, r.Values[metrics.SentWassToData], r.Values[metrics.SentWassCombo])
		}
	}
	if !math.IsNaN(float64(free0.Values[metrics.SentWassToData])) {
		t.Errorf("example 0: wass_to_data %v without neighbours", free0.Values[metrics.SentWassToData])
	}

	var hyps, refs []string
	for _, ex := range exs {
		hyps, refs = append(hyps, ex.Hypothesis), append(refs, ex.Reference)
	}
	if sum.CorpusChrF == nil || math.Abs(*sum.CorpusChrF-metrics.CorpusChrF(hyps, refs)) > 1e-9 {
		t.Errorf("corpus chrF %v", sum.CorpusChrF)
	}
	if sum.CorpusBLEU == nil || math.Abs(*sum.CorpusBLEU-metrics.CorpusBLEU(hyps, refs)) > 1e-9 {
		t.Errorf("corpus BLEU %v", sum.CorpusBLEU)
	}
	if sum.Examples != 4 || sum.Rows[store.PassFree] != 4 || sum.Rows[store.PassForced] != 4 {
		t.Errorf("counts: %d examples, rows %v", sum.Examples, sum.Rows)
	}
	if sum.Flags[store.PassFree][metrics.FlagDiffuseAttention.Name()] != 1 || sum.SuspectShare <= 0 {
		t.Errorf("flags %v, suspect share %v", sum.Flags, sum.SuspectShare)
	}
	// The label detector: example 3 (the only positive) has the lowest
	// seq-logprob, so seq_logprob ranks it first.
	found := false
	for _, d := range sum.Detectors {
		if d.Detector == "seq_logprob" && d.Against == "label" {
			found = true
			if d.AUROC != 1 || d.Positives != 1 || d.Negatives != 3 {
				t.Errorf("seq_logprob vs labels: %+v", d)
			}
		}
	}
	if !found {
		t.Errorf("no label evaluation in %+v", sum.Detectors)
	}
	diag := sum.LayerMeans(store.PassFree, store.KindEncoderSelf, "diagonality")
	if len(diag) != 2 || math.Abs(diag[0]-1) > 1e-6 {
		t.Errorf("encoder self diagonality per layer %v, want [1 1]", diag)
	}
}

// benchRun writes a run folder of n examples with free and forced passes in
// the reference model's shape: 6 layers × 8 heads of each attention kind,
// 29 words + EOS on both sides, peaked random attention.
func benchRun(b *testing.B, n int) string {
	b.Helper()
	const layers, heads, words = 6, 8, 29
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	var exs []store.Example
	for i := range n {
		ex := store.Example{ExampleID: int32(i), ID: fmt.Sprint(i), Source: "소스"}
		var hyp, ref []string
		for j := range words {
			w := fmt.Sprint("w", rng.IntN(40))
			hyp, ref = append(hyp, w), append(ref, fmt.Sprint("w", rng.IntN(40)))
			ex.SrcPieces, ex.SrcIDs = append(ex.SrcPieces, "▁s"), append(ex.SrcIDs, int32(10+j))
			ex.TgtPieces, ex.TgtIDs = append(ex.TgtPieces, "▁"+w), append(ex.TgtIDs, int32(100+rng.IntN(40)))
			ex.RefPieces, ex.RefIDs = append(ex.RefPieces, "▁"+ref[j]), append(ex.RefIDs, int32(100+rng.IntN(40)))
			ex.TokenLogprobs, ex.RefLogprobs = append(ex.TokenLogprobs, -rng.Float32()), append(ex.RefLogprobs, -rng.Float32())
		}
		ex.SrcPieces, ex.SrcIDs = append(ex.SrcPieces, "</s>"), append(ex.SrcIDs, 3)
		ex.TgtPieces, ex.TgtIDs, ex.TokenLogprobs = append(ex.TgtPieces, "</s>"), append(ex.TgtIDs, 3), append(ex.TokenLogprobs, -0.05)
		ex.RefPieces, ex.RefIDs, ex.RefLogprobs = append(ex.RefPieces, "</s>"), append(ex.RefIDs, 3), append(ex.RefLogprobs, -0.05)
		ex.Hypothesis, ex.Reference = strings.Join(hyp, " "), strings.Join(ref, " ")
		ex.SeqLogprob = float32(metrics.SeqLogprob(ex.TokenLogprobs))
		exs = append(exs, ex)
	}
	ew, err := store.NewExampleWriter(dir, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := ew.Write(exs...); err != nil {
		b.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		b.Fatal(err)
	}
	aw, err := store.NewAttentionWriter(dir, store.AttentionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, ex := range exs {
		for _, pass := range []string{store.PassForced, store.PassFree} {
			for _, kind := range []string{store.KindCross, store.KindDecoderSelf, store.KindEncoderSelf} {
				for l := range layers {
					for h := range heads {
						m := randomAttention(rng, words+1, words+1, kind == store.KindDecoderSelf)
						a := store.Attention{ExampleID: ex.ExampleID, Pass: pass, Kind: kind, Layer: int16(l), Head: int16(h), Weights: m}
						if err := aw.Write(a); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// randomAttention is a softmax of log-normal scores: peaked rows like a
// trained model's, causal (zero above the diagonal) when asked.
func randomAttention(rng *rand.Rand, rows, cols int, causal bool) metrics.Matrix {
	m := metrics.NewMatrix(rows, cols)
	for t := range rows {
		row := m.Row(t)
		n := cols
		if causal {
			n = min(t+1, cols)
		}
		var s float64
		for j := range n {
			row[j] = float32(math.Exp(3 * rng.NormFloat64()))
			s += float64(row[j])
		}
		for j := range n {
			row[j] = float32(float64(row[j]) / s)
		}
	}
	return m
}

// BenchmarkComputeMetrics measures the metrics stage end to end (reading
// the attention, scoring, writing both metric files) over 32 examples × 2
// passes of the reference model's shape; the pass/s metric is what to
// compare with inference's throughput.
func BenchmarkComputeMetrics(b *testing.B) {
	const n = 32
	dir := benchRun(b, n)
	cfg := metrics.DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ComputeMetrics(dir, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*n*b.N)/b.Elapsed().Seconds(), "pass/s")
}

// The stage's output does not depend on how many workers score: rows,
// summary and sentence scores equal those of one worker.
func TestComputeMetricsWorkers(t *testing.T) {
	dir, _ := writeRun(t)
	run := func(procs int) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		sum, err := ComputeMetrics(dir, metrics.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		hm, err := store.ReadHeadMetrics(dir)
		if err != nil {
			t.Fatal(err)
		}
		sm, err := store.ReadSentenceMetrics(dir)
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(sum)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s\n%+v\n%+v", js, hm, sm)
	}
	if one, many := run(1), run(8); one != many {
		t.Errorf("8 workers give\n%s\none gives\n%s", many, one)
	}
}

// A failing keep stops submissions and surfaces from wait; keep sees jobs
// in submission order and nothing blocks.
func TestScoringStopsOnError(t *testing.T) {
	boom := errors.New("disk full")
	var kept []int32
	p := startScoring(metrics.DefaultConfig(), 3, func(j *scoreJob) error {
		kept = append(kept, j.input.ExampleID)
		if len(kept) == 5 {
			return boom
		}
		return nil
	})
	var err error
	for i := range 1000 {
		if err = p.submit(&scoreJob{input: metrics.PassInput{ExampleID: int32(i)}}); err != nil {
			break
		}
	}
	if !errors.Is(err, errScoringStopped) {
		t.Errorf("submit after a failed keep: %v", err)
	}
	if err := p.wait(); !errors.Is(err, boom) {
		t.Errorf("wait: %v, want %v", err, boom)
	}
	if !slices.Equal(kept, []int32{0, 1, 2, 3, 4}) {
		t.Errorf("kept %v", kept)
	}
}
