package main

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"attnaudit/store"
)

// TestDefaultPrecisionKeepsMetricsWithin1e4 runs the same inputs stored as
// float32 and at the default precision (compact, which stores the fixed
// precision's weights exactly: TestCompactIsFixedPlusOne) and checks that
// every head metric and sentence score computed from the stored weights
// agrees within 1e-4.
func TestDefaultPrecisionKeepsMetricsWithin1e4(t *testing.T) {
	const tol = 1e-4
	data := smallDataset(t, 24)
	exact := attnaudit(t, runArgs("run", data, t.TempDir(), "--precision", store.PrecisionFloat32)...)
	fixed := attnaudit(t, runArgs("run", data, t.TempDir())...)
	if m, err := os.ReadFile(filepath.Join(fixed, "manifest.json")); err != nil || !strings.Contains(string(m), `"precision": "compact"`) {
		t.Fatalf("the default run's manifest does not record precision compact (%v)", err)
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

// TestStoreKeepsTheSelectedRows runs with --store free,cross,layer=-1: the
// run announces its expected size, stores only the free pass's last-layer
// cross attention and skips the stages that need every layer; with
// --store free,cross the metrics and report finish.
func TestStoreKeepsTheSelectedRows(t *testing.T) {
	data := smallDataset(t, 8)
	cmd := exec.Command(binary, runArgs("run", data, t.TempDir(), "--store", "free,cross,layer=-1")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run --store: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "infer: expect about ") || !strings.Contains(stderr.String(), "store free,cross,layer=-1") {
		t.Errorf("no expected size announced:\n%s", stderr.String())
	}
	dir := strings.TrimSpace(stdout.String())
	n, layers := 0, map[int16]bool{}
	err := store.ScanAttention(dir, func(a store.Attention) error {
		n++
		layers[a.Layer] = true
		if a.Pass != store.PassFree || a.Kind != store.KindCross {
			t.Errorf("stored %s %s layer %d", a.Pass, a.Kind, a.Layer)
		}
		return nil
	})
	if len(layers) != 1 || layers[0] {
		t.Errorf("stored layers %v, want the last only", layers)
	}
	if err != nil || n == 0 {
		t.Fatalf("scan: %d rows, %v", n, err)
	}
	if !strings.Contains(stderr.String(), "are skipped") {
		t.Errorf("no word of the skipped stages:\n%s", stderr.String())
	}
	attnaudit(t, "verify", dir)

	dir = attnaudit(t, runArgs("run", data, t.TempDir(), "--store", "free,cross")...)
	if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
		t.Errorf("no report: %v", err)
	}
}
