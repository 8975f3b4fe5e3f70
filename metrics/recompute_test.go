package metrics

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// TestRecompute compares the Go metrics with testdata/recompute_expected.json,
// written by the independent stdlib-Python testdata/recompute.py from
// testdata/recompute_matrices.json.
func TestRecompute(t *testing.T) {
	var in struct {
		Matrices []struct {
			Name       string
			Rows, Cols int
			Data       []float32
		}
		Layers []struct {
			Name  string
			Heads []int
		}
	}
	var want struct {
		Matrices []map[string]any
		Layers   []struct {
			Name          string
			HeadDiversity *float64 `json:"head_diversity"`
		}
	}
	readJSON(t, "testdata/recompute_matrices.json", &in)
	readJSON(t, "testdata/recompute_expected.json", &want)
	if len(in.Matrices) == 0 || len(want.Matrices) != len(in.Matrices) || len(want.Layers) != len(in.Layers) {
		t.Fatalf("fixture sizes: %d matrices, %d expected; %d layers, %d expected",
			len(in.Matrices), len(want.Matrices), len(in.Layers), len(want.Layers))
	}
	mats := make([]Matrix, len(in.Matrices))
	for i, m := range in.Matrices {
		mats[i] = Matrix{Rows: m.Rows, Cols: m.Cols, Data: m.Data}
		m := mats[i]
		got := map[string]float64{
			"entropy": Entropy(m), "entropy_norm": EntropyNorm(m), "confidence": Confidence(m),
			"confidence_noeos": ConfidenceNoEOS(m), "diagonality": Diagonality(m),
			"first_mass": FirstMass(m), "last_mass": LastMass(m), "row_sum_err": RowSumErr(m),
			"zero_rows": float64(ZeroRows(m)), "ign_src": IgnSrc(m, DefaultIgnSrcLambda),
			"wass_to_unif":       WassToUnif(SourceDistribution([]Matrix{m}, false)),
			"wass_to_unif_noeos": WassToUnif(SourceDistribution([]Matrix{m}, true)),
		}
		checked := 0
		for name, g := range got {
			w, ok := want.Matrices[i][name]
			if !ok || w == nil {
				if !math.IsNaN(g) {
					t.Errorf("%s: %s = %v, Python has none", in.Matrices[i].Name, name, g)
				}
				continue
			}
			checked++
			if wf := w.(float64); math.Abs(g-wf) > 1e-4 {
				t.Errorf("%s: %s = %.6g, Python %.6g", in.Matrices[i].Name, name, g, wf)
			}
		}
		if checked == 0 {
			t.Errorf("%s: nothing compared", in.Matrices[i].Name)
		}
	}
	for i, l := range in.Layers {
		heads := make([]Matrix, len(l.Heads))
		for k, h := range l.Heads {
			heads[k] = mats[h]
		}
		w := want.Layers[i].HeadDiversity
		if w == nil {
			t.Fatalf("%s: Python has no head_diversity", l.Name)
		}
		near(t, l.Name+" head_diversity", HeadDiversity(heads), *w, 1e-4)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
