package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/store"
)

// dataURL matches an embedded PNG; goldens keep its size, not its bytes,
// which vary with the platform's font rasteriser.
var dataURL = regexp.MustCompile(`data:image/png;base64,(?:[A-Za-z0-9+/=]|&#43;)+`)

// The explorer's script, style and data blobs are tested on their own
// (explorer_test.go, explorer_browser_test.go); goldens keep their place.
var explorerParts = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`'sha256-[A-Za-z0-9+/=]+'`), "'sha256-(explorer.js)'"},
	{regexp.MustCompile(`(?s)<script>.*?</script>`), "<script>(explorer.js)</script>"},
	{regexp.MustCompile(`(?s)<style>\.explorer .*?</style>`), "<style>(explorer.css)</style>"},
	{regexp.MustCompile(`data-z="[A-Za-z0-9_-]*"`), `data-z="(blob)"`},
}

func normalizePage(t *testing.T, page []byte) []byte {
	t.Helper()
	for _, p := range explorerParts {
		page = p.re.ReplaceAll(page, []byte(p.with))
	}
	return dataURL.ReplaceAllFunc(page, func(u []byte) []byte {
		raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(strings.TrimPrefix(string(u), "data:image/png;base64,")))
		if err != nil {
			t.Fatalf("bad base64 in page: %v", err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("embedded image is not a PNG: %v", err)
		}
		return []byte(fmt.Sprintf("data:image/png;base64,(%dx%d)", cfg.Width, cfg.Height))
	})
}

func checkGoldenText(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the golden file at line %d:\n got  %.300s\n want %.300s\n(regenerate with -update)", name, i+1, g, w)
			}
		}
	}
}

// smallOptions keeps golden pages short.
func smallOptions() Options {
	o := DefaultOptions()
	o.WorstExamples, o.SampleExamples, o.GalleryExamples = 2, 1, 1
	return o
}

func TestGenerateGolden(t *testing.T) {
	data := synthRun(12, 2, 4)
	var buf bytes.Buffer
	if err := Generate(&buf, data, smallOptions()); err != nil {
		t.Fatal(err)
	}
	keepFile(t, "small_report.html", buf.Bytes())
	checkGoldenText(t, "small_report.golden.html", normalizePage(t, buf.Bytes()))
}

func TestGenerateCompareGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := GenerateCompare(&buf, synthCompare(3, 8), smallOptions()); err != nil {
		t.Fatal(err)
	}
	keepFile(t, "small_compare.html", buf.Bytes())
	checkGoldenText(t, "small_compare.golden.html", normalizePage(t, buf.Bytes()))
}

// synthCompare is n runs at epochs 10, 20, …: diagonality rises, then the
// last run regresses (chrF and diagonality drop, more suspects), with the
// regressions pipeline's gates would find.
func synthCompare(n, examples int) CompareData {
	data := CompareData{Baseline: -1}
	for i := range n {
		rd := synthRun(examples, 2, 4)
		s := rd.Summary
		s.Name = fmt.Sprintf("ko-en-small-epoch%04d-run", 10*(i+1))
		s.Epoch, s.Step, s.CorpusChrF, s.CorpusBLEU = 10*(i+1), 3000*(i+1), 30+5*float64(i), 10+3*float64(i)
		last := i == n-1 && n > 2
		shift := float32(0.05 * float64(i))
		if last {
			shift = -0.2
			s.CorpusChrF -= 12
		}
		for _, kind := range kinds {
			for name, m := range rd.Heads.Means[kind] {
				if name == "diagonality" {
					for k := range m.Data {
						m.Data[k] = min(1, m.Data[k]+shift)
					}
				}
			}
		}
		for k := range rd.Sentences {
			if last && rd.Sentences[k].ExampleID%2 == 0 {
				rd.Sentences[k].Flags[metrics.FlagHallucinationSuspect] = true
			}
		}
		data.Runs = append(data.Runs, CompareRun{Summary: s, Heads: rd.Heads, Sentences: rd.Sentences, Examples: rd.Examples})
		if last {
			prev := data.Runs[i-1].Summary
			data.Regressions = append(data.Regressions,
				Regression{Run: s.Name, Against: prev.Name, What: "corpus chrF dropped", Before: prev.CorpusChrF, After: s.CorpusChrF, Limit: 1},
				Regression{Run: s.Name, Against: prev.Name, What: "hallucination-suspect share rose", Before: 0.125, After: 0.5, Limit: 0.05},
				Regression{Run: s.Name, Against: prev.Name, What: "layer 0 cross-attention diagonality dropped", Before: 0.6, After: 0.35, Limit: 0.05})
		}
	}
	return data
}

func TestGenerateStatesTheCap(t *testing.T) {
	data := synthRun(40, 1, 2)
	opts := DefaultOptions()
	opts.WorstExamples, opts.SampleExamples = 3, 2
	var buf bytes.Buffer
	if err := Generate(&buf, data, opts); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	sel := Select(data, opts)
	for _, want := range []string{
		fmt.Sprintf("the 3 most-flagged of %d flagged examples", sel.Flagged),
		fmt.Sprintf("then 2 of %d unflagged examples drawn at random", sel.Unflagged),
		`content="` + reportCSP + `"`,
		"나는 학교에 간다.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if got := strings.Count(page, `<section class="example"`); got != 5 {
		t.Errorf("%d example sections, want 3 + 2", got)
	}
}

func TestSelect(t *testing.T) {
	data := synthRun(80, 1, 2)
	opts := DefaultOptions()
	opts.WorstExamples, opts.SampleExamples = 5, 4
	sel := Select(data, opts)
	// Suspects (every 7th from 3) carry two flags, copiers (every 11th from
	// 5) one, and example 38 both: three flags, so it comes first.
	if len(sel.Worst) != 5 || sel.Worst[0] != 38 {
		t.Fatalf("worst = %v, want 5 starting with 38", sel.Worst)
	}
	flagged := 0
	for i := range 80 {
		if i%7 == 3 || i%11 == 5 {
			flagged++
		}
	}
	if sel.Flagged != flagged || sel.Unflagged != 80-flagged {
		t.Errorf("flagged %d / unflagged %d, want %d / %d", sel.Flagged, sel.Unflagged, flagged, 80-flagged)
	}
	for _, id := range sel.Sampled {
		if id%7 == 3 || id%11 == 5 {
			t.Errorf("sampled flagged example %d", id)
		}
	}
	if again := Select(data, opts); !slices.Equal(again.Sampled, sel.Sampled) {
		t.Errorf("sample not deterministic: %v then %v", sel.Sampled, again.Sampled)
	}
	opts.SampleSeed = 2
	if other := Select(data, opts); slices.Equal(other.Sampled, sel.Sampled) {
		t.Errorf("sample ignores the seed: %v", other.Sampled)
	}
	byName := map[string][]int32{}
	for _, g := range sel.Gallery {
		byName[g.Name] = g.IDs
	}
	for _, id := range byName["Suspected hallucination"] {
		if id%7 != 3 {
			t.Errorf("hallucination gallery has unflagged example %d", id)
		}
	}
	for _, id := range byName["Repetition"] {
		if id%11 != 5 {
			t.Errorf("repetition gallery has example %d, which does not repeat", id)
		}
	}
	for _, id := range byName["Clean alignment"] {
		if id%7 == 3 || id%11 == 5 {
			t.Errorf("clean gallery has flagged example %d", id)
		}
	}
	ids := sel.IDs()
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("IDs() not sorted and unique: %v", ids)
	}
}

func TestHeadAggregator(t *testing.T) {
	agg := NewHeadAggregator()
	nan := float32(math.NaN())
	rows := []store.HeadMetrics{
		{ExampleID: 0, Pass: store.PassFree, Kind: store.KindCross, Layer: 0, Head: 0, Values: [metrics.NumHeadMetrics]float32{metrics.HeadDiagonality: 0.2, metrics.HeadEntropyNorm: 0.5, metrics.HeadAER: 0.9}},
		{ExampleID: 1, Pass: store.PassFree, Kind: store.KindCross, Layer: 0, Head: 0, Values: [metrics.NumHeadMetrics]float32{metrics.HeadDiagonality: 0.6, metrics.HeadEntropyNorm: nan, metrics.HeadAER: nan}},
		{ExampleID: 0, Pass: store.PassFree, Kind: store.KindCross, Layer: 1, Head: 1, Values: [metrics.NumHeadMetrics]float32{metrics.HeadDiagonality: 1.0, metrics.HeadEntropyNorm: 0.1, metrics.HeadAER: nan}},
		{ExampleID: 0, Pass: store.PassForced, Kind: store.KindCross, Layer: 0, Head: 0, Values: [metrics.NumHeadMetrics]float32{metrics.HeadDiagonality: 100, metrics.HeadAER: 0.25}},
		{ExampleID: 0, Pass: store.PassFree, Kind: store.KindDecoderSelf, Layer: 0, Head: 0, Values: [metrics.NumHeadMetrics]float32{metrics.HeadRepeatMass: 0.3}},
	}
	for _, r := range rows {
		if err := agg.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	st := agg.Stats()
	if st.Count != 4 {
		t.Errorf("Count = %d, want 4 free-pass rows", st.Count)
	}
	d := st.Means[store.KindCross]["diagonality"]
	if d.Rows != 2 || d.Cols != 2 {
		t.Fatalf("diagonality is %d×%d, want 2×2", d.Rows, d.Cols)
	}
	if got := d.At(0, 0); math.Abs(float64(got)-0.4) > 1e-6 {
		t.Errorf("mean diagonality L0 h0 = %g, want 0.4 (forced pass ignored)", got)
	}
	if !math.IsNaN(float64(d.At(0, 1))) {
		t.Errorf("L0 h1 had no rows but is %g, want NaN", d.At(0, 1))
	}
	if got := st.Means[store.KindCross]["entropy_norm"].At(0, 0); got != 0.5 {
		t.Errorf("entropy_norm L0 h0 = %g, want 0.5 (NaN skipped)", got)
	}
	// AER comes from the forced pass alone (the free pass's 0.9 is not the
	// reference's alignment); a head without forced rows has none.
	if aer := st.Means[store.KindCross]["aer"]; aer.At(0, 0) != 0.25 || !math.IsNaN(float64(aer.At(1, 1))) {
		t.Errorf("AER L0 h0 = %g (want 0.25, the forced pass's), L1 h1 = %g (want NaN)", aer.At(0, 0), aer.At(1, 1))
	}
	if _, ok := st.Means[store.KindCross]["repeat_mass"]; ok {
		t.Error("repeat_mass is kept for cross-attention; it applies to decoder self-attention only")
	}
	ex := st.Examples[0]
	if math.Abs(ex.Diagonality[0]-0.2) > 1e-6 || ex.Diagonality[1] != 1.0 {
		t.Errorf("example 0 diagonality per layer = %v, want [0.2 1]", ex.Diagonality)
	}
	if got := layerMeans(d); math.Abs(got[0]-0.4) > 1e-6 || got[1] != 1 {
		t.Errorf("layerMeans = %v, want [0.4 1]", got)
	}
}

func TestRegressionsAndChangedFlags(t *testing.T) {
	data := synthCompare(3, 8)
	var buf bytes.Buffer
	if err := GenerateCompare(&buf, data, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"corpus chrF dropped", "layer 0 cross-attention diagonality dropped",
		"hallucination-suspect share rose", "regressions are measured against each run&#39;s predecessor"} {
		if !strings.Contains(page, want) {
			t.Errorf("compare page lacks %q", want)
		}
	}
	if strings.Count(page, `<tr class="bad">`) < 3 {
		t.Errorf("regressions not highlighted")
	}
	// Runs 1→2 change nothing; 2→3 makes even examples suspects.
	views := make([][]store.SentenceMetrics, 3)
	for i, r := range data.Runs {
		views[i] = freeSentences(r.Sentences)
	}
	ch := changedFlags(data, views, 2)
	if ch[0].Total != 0 {
		t.Errorf("runs 1→2: %d changed, want 0", ch[0].Total)
	}
	want := 0
	for id := range 8 {
		if id%2 == 0 && id%7 != 3 {
			want++
		}
	}
	if ch[1].Total != want || len(ch[1].Shown) != 2 {
		t.Errorf("runs 2→3: %d changed (%d shown), want %d (2 shown)", ch[1].Total, len(ch[1].Shown), want)
	}
	if !strings.Contains(page, `<tr class="bad"><td>`+data.Runs[2].Summary.Name) {
		t.Errorf("the regressed run is not highlighted in the runs table")
	}
	if err := GenerateCompare(&buf, CompareData{}, DefaultOptions()); err == nil {
		t.Error("no runs accepted")
	}
	if err := GenerateCompare(&buf, CompareData{Runs: data.Runs, Baseline: 7}, DefaultOptions()); err == nil {
		t.Error("baseline out of range accepted")
	}
}

func TestLogprobTokens(t *testing.T) {
	toks := logprobTokens([]string{"▁go", "x", "y"}, []float32{0, -10})
	if toks[0].Text != "go" || toks[0].Style != "background:#c7e9c0" {
		t.Errorf("certain token = %+v", toks[0])
	}
	if toks[1].Style != "background:#f4a3a3" {
		t.Errorf("unsure token = %+v", toks[1])
	}
	if toks[2].Style != "" || toks[2].Text != "·y" || toks[2].Title != "y (continues the word): no log-probability" {
		t.Errorf("token without log-prob = %+v", toks[2])
	}
}

func TestGenerateTolerates(t *testing.T) {
	data := synthRun(6, 1, 2)
	// An example whose attention was not loaded, one whose matrix does not
	// match its tokens, and an empty run must not break the page.
	delete(data.Attention, 3)
	att := data.Attention[5]
	att.Cross = [][]metrics.Matrix{{metrics.NewMatrix(1, 1), metrics.NewMatrix(1, 1)}}
	data.Attention[5] = att
	opts := DefaultOptions()
	var buf bytes.Buffer
	if err := Generate(&buf, data, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"No cross-attention stored", "Attention could not be drawn"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	buf.Reset()
	if err := Generate(&buf, RunData{}, opts); err != nil {
		t.Fatalf("empty run: %v", err)
	}
}
