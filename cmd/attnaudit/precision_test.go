package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"attnaudit/store"
)

// TestDefaultPrecisionKeepsMetricsWithin1e4 runs the same inputs stored as
// float32 and at the default precision (packed, whose readers restore the
// rounded weights exactly: store.TestPackedLayout) and checks that every
// head metric and sentence score computed from the stored weights agrees
// within 1e-4.
func TestDefaultPrecisionKeepsMetricsWithin1e4(t *testing.T) {
	const tol = 1e-4
	data := smallDataset(t, 24)
	exact := attnaudit(t, runArgs("run", data, t.TempDir(), "--precision", store.PrecisionFloat32)...)
	fixed := attnaudit(t, runArgs("run", data, t.TempDir())...)
	if m, err := os.ReadFile(filepath.Join(fixed, "manifest.json")); err != nil || !strings.Contains(string(m), `"precision": "packed"`) {
		t.Fatalf("the default run's manifest does not record precision packed (%v)", err)
	}

	close := func(a, b float32) bool {
		if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
			return math.IsNaN(float64(a)) == math.IsNaN(float64(b))
		}
		return math.Abs(float64(a-b)) <= tol
	}
	eh, err := store.ReadHeadMetrics(exact)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := store.ReadHeadMetrics(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if len(eh) != len(fh) || len(eh) == 0 {
		t.Fatalf("head_metrics: %d rows from float32, %d from fixed", len(eh), len(fh))
	}
	var worst float64
	for i := range eh {
		for m := range eh[i].Values {
			a, b := eh[i].Values[m], fh[i].Values[m]
			if !close(a, b) {
				t.Errorf("head metric %d of example %d %s %s layer %d head %d: float32 %g, fixed %g", m,
					eh[i].ExampleID, eh[i].Pass, eh[i].Kind, eh[i].Layer, eh[i].Head, a, b)
			} else if d := math.Abs(float64(a - b)); d > worst {
				worst = d
			}
		}
	}
	es, err := store.ReadSentenceMetrics(exact)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := store.ReadSentenceMetrics(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(fs) {
		t.Fatalf("sentence_metrics: %d rows from float32, %d from fixed", len(es), len(fs))
	}
	for i := range es {
		for m := range es[i].Values {
			a, b := es[i].Values[m], fs[i].Values[m]
			if !close(a, b) {
				t.Errorf("sentence score %d of example %d %s: float32 %g, fixed %g", m, es[i].ExampleID, es[i].Pass, a, b)
			} else if d := math.Abs(float64(a - b)); d > worst {
				worst = d
			}
		}
	}
	t.Logf("largest metric difference: %.2g", worst)
}
