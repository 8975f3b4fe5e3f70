package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"attnaudit/configs"
	"attnaudit/metrics"
	"attnaudit/report"
	"attnaudit/store"
)

// writeReportRun writes a finished run folder by hand: 3 examples with
// 2 layers × 2 heads of every kind, metrics rows, and a manifest.
func writeReportRun(t *testing.T, dir string, epoch int, chrf float64, suspect bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ew, err := store.NewExampleWriter(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	aw, err := store.NewAttentionWriter(dir, store.AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hw, err := store.NewHeadMetricsWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := store.NewSentenceMetricsWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, tgt := []string{"나는", "▁간다", "</s>"}, []string{"I", "▁go", "</s>"}
	for id := range int32(3) {
		ex := store.Example{ExampleID: id, ID: fmt.Sprint("ex", id), Source: "나는 간다", Reference: "I go", Hypothesis: "I go",
			SrcPieces: src, TgtPieces: tgt, SrcIDs: []int32{5, 6, 3}, TgtIDs: []int32{7, 8, 3},
			TokenLogprobs: []float32{-0.1, -0.5, -0.2}, SeqLogprob: -0.27, Chrf: 50, Bleu: 20}
		for _, pass := range []string{store.PassForced, store.PassFree} {
			for _, kind := range []string{store.KindCross, store.KindDecoderSelf, store.KindEncoderSelf} {
				for l := range int16(2) {
					for h := range int16(2) {
						m := metrics.NewMatrix(3, 3)
						for i := range 3 {
							m.Data[i*3+i] = 1
						}
						if err := aw.Write(store.Attention{ExampleID: id, Pass: pass, Kind: kind, Layer: l, Head: h, Weights: m}); err != nil {
							t.Fatal(err)
						}
						hm := store.HeadMetrics{ExampleID: id, Pass: pass, Kind: kind, Layer: l, Head: h, QLen: 3, KLen: 3, Values: [metrics.NumHeadMetrics]float32{metrics.HeadEntropyNorm: 0, metrics.HeadConfidence: 1, metrics.HeadDiagonality: 0.9, metrics.HeadLastMass: 1.0 / 3, metrics.HeadAER: float32(math.NaN())}}
						if err := hw.Write(hm); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		s := store.SentenceMetrics{ExampleID: id, Pass: store.PassFree, Values: [metrics.NumSentenceMetrics]float32{metrics.SentSeqLogprob: -0.27, metrics.SentAER: float32(math.NaN())}, Flags: metrics.Flags{metrics.FlagHallucinationSuspect: suspect && id == 1}}
		if s.Flags[metrics.FlagHallucinationSuspect] {
			s.Reasons = "seq_logprob below the pool's 5th percentile"
		}
		if err := sw.Write(s); err != nil {
			t.Fatal(err)
		}
		if err := ew.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []interface{ Close() error }{aw, hw, sw, ew} {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manifest{RunID: fmt.Sprint("run", epoch), Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Provider: "cpu",
		Checkpoint: CheckpointInfo{Path: "ck", Hash: "abc", Meta: checkpointMeta(json.RawMessage(fmt.Sprintf(`{"name":"tiny","epoch":%d,"step":%d}`, epoch, 100*epoch)))},
		Dataset:    DatasetInfo{Path: "demo.tsv", Hash: "def", Examples: 3},
		Stages:     map[string]Stage{StageInfer: {Seconds: 1.5}, StageMetrics: {Seconds: 0.5}},
		Summary:    &metrics.RunSummary{CorpusChrF: &chrf}}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReportAndCompare(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "tiny-epoch0002"), filepath.Join(root, "tiny-epoch0001")
	writeReportRun(t, a, 2, 40, true)
	writeReportRun(t, b, 1, 45, false)
	opts := report.DefaultOptions()

	data, err := LoadRunData(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Examples) != 3 || len(data.Sentences) != 3 || data.Summary.Epoch != 2 || data.Summary.CorpusChrF != 40 {
		t.Errorf("loaded %d examples, %d sentences, summary %+v", len(data.Examples), len(data.Sentences), data.Summary)
	}
	att := data.Attention[1]
	if len(att.Cross) != 2 || len(att.Cross[1]) != 2 || att.Cross[1][1].At(2, 2) != 1 || len(att.EncoderSelf) != 2 {
		t.Errorf("attention of the flagged example not loaded as [layer][head]: %+v", att)
	}
	if got := data.Heads.Means[store.KindCross]["diagonality"]; got.Rows != 2 || got.Cols != 2 || math.Abs(float64(got.At(1, 1))-0.9) > 1e-6 {
		t.Errorf("head means = %+v", got)
	}

	path, err := WriteReport(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"attnaudit: tiny on demo.tsv", "seq_logprob below the pool&#39;s 5th percentile", "나는 간다", "40.00"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}

	out := filepath.Join(root, "cmp", "compare.html")
	regs, err := WriteCompare([]string{a}, b, out, opts, configs.Default().Audit)
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) == 0 || regs[0].Gate != configs.GateChrFDrop || regs[0].Run != a || regs[0].Against != b {
		t.Errorf("regressions against the baseline = %+v, want chrF drop of %s against %s first", regs, a, b)
	}
	page, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	if !strings.Contains(s, "tiny-epoch0001 <b>(baseline)</b>") || !strings.Contains(s, "corpus chrF dropped") {
		t.Errorf("compare.html lacks the baseline or its chrF regression")
	}
	if strings.Index(s, "tiny-epoch0001") > strings.Index(s, "tiny-epoch0002") {
		t.Errorf("runs not in epoch order")
	}
	if _, err := WriteCompare([]string{filepath.Join(root, "missing")}, "", out, opts, configs.Default().Audit); err == nil {
		t.Error("a folder without a manifest was accepted")
	}
}

// BenchmarkWriteReport times the report stage over a real run folder named
// by ATTNAUDIT_BENCH_RUN (a finished `attnaudit run`), e.g.
//
//	ATTNAUDIT_BENCH_RUN=runs/ko-en-small-epoch0027-… go test ./pipeline -run '^$' -bench WriteReport -benchtime 1x -cpuprofile cpu.out
func BenchmarkWriteReport(b *testing.B) {
	run := os.Getenv("ATTNAUDIT_BENCH_RUN")
	if run == "" {
		b.Skip("set ATTNAUDIT_BENCH_RUN to a finished run folder")
	}
	for range b.N {
		path, err := WriteReport(run, report.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		if st, err := os.Stat(path); err == nil {
			b.ReportMetric(float64(st.Size())/1e6, "MB")
		}
	}
}
