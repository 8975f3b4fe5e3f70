package main

import (
	"bytes"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/pipeline"
	"attnaudit/store"
)

// TestStoreKeepsTheSelectedRows runs with store selections of passes,
// kinds and layers: each run announces its expected size, stores only the
// selected rows, goes through metrics and report (and compare with the
// full run), and every head metric and sentence score it computes equals
// the full run's; what it could not compute is NaN and named in the
// summary's not_computed, and said in report.html.
func TestStoreKeepsTheSelectedRows(t *testing.T) {
	data := smallDataset(t, 8)
	full := attnaudit(t, runArgs("run", data, t.TempDir())...)
	fullHeads := map[string]store.HeadMetrics{}
	for _, h := range readHeads(t, full) {
		fullHeads[headKey(h)] = h
	}
	fullSents := map[string]store.SentenceMetrics{}
	for _, s := range readSentences(t, full) {
		fullSents[fmt.Sprint(s.ExampleID, s.Pass)] = s
	}
	for _, choice := range []string{"free,cross,layer=-1", "layer=0,layer=-1", "cross", "free"} {
		t.Run(choice, func(t *testing.T) {
			sel, err := store.ParseSelection(choice)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary, runArgs("run", data, t.TempDir(), "--store", choice)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("run --store: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "infer: expect about ") || !strings.Contains(stderr.String(), "store "+choice) {
				t.Errorf("no expected size announced:\n%s", stderr.String())
			}
			if !strings.Contains(stderr.String(), "metrics: not computed for ") {
				t.Errorf("the metrics stage does not say what it did not compute:\n%s", stderr.String())
			}
			dir := strings.TrimSpace(stdout.String())
			attnaudit(t, "verify", dir)
			n := 0
			err = store.ScanAttention(dir, func(a store.Attention) error {
				n++
				if !sel.Keeps(a.Pass, a.Kind, int(a.Layer), 6) {
					t.Errorf("stored %s %s layer %d", a.Pass, a.Kind, a.Layer)
				}
				return nil
			})
			if err != nil || n == 0 {
				t.Fatalf("scan: %d rows, %v", n, err)
			}

			// Head metrics: a row for every stored row, equal to the full run's.
			kept := 0
			for _, h := range fullHeads {
				if sel.Keeps(h.Pass, h.Kind, int(h.Layer), 6) {
					kept++
				}
			}
			heads := readHeads(t, dir)
			if len(heads) != kept || kept != n {
				t.Errorf("%d head metric rows, %d attention rows; the full run has %d of the stored rows", len(heads), n, kept)
			}
			for _, h := range heads {
				if want, ok := fullHeads[headKey(h)]; !ok || !sameFloats(h.Values[:], want.Values[:]) || h.QLen != want.QLen {
					t.Errorf("head metrics %s: %+v, full run %+v", headKey(h), h, want)
				}
			}

			// Sentence scores: every score computed equals the full run's;
			// one not computed is NaN and named in not_computed for its pass.
			var m pipeline.Manifest
			readJSON(t, filepath.Join(dir, pipeline.ManifestName), &m)
			if m.Summary == nil || len(m.Summary.NotComputed) == 0 {
				t.Fatalf("the summary lists nothing not computed: %+v", m.Summary)
			}
			named := func(pass, what string) bool {
				for _, o := range m.Summary.NotComputed {
					if slices.Contains(o.Passes, pass) && regexp.MustCompile(`\b`+regexp.QuoteMeta(what)+`\b`).MatchString(o.What) {
						return true
					}
				}
				return false
			}
			sents := readSentences(t, dir)
			if len(sents) != len(fullSents) {
				t.Errorf("%d sentence rows, the full run has %d", len(sents), len(fullSents))
			}
			computed := 0
			for _, s := range sents {
				want, ok := fullSents[fmt.Sprint(s.ExampleID, s.Pass)]
				if !ok {
					t.Errorf("sentence row %d %s is not in the full run", s.ExampleID, s.Pass)
					continue
				}
				for i, sm := range metrics.SentenceTable {
					got, w := s.Values[i], want.Values[i]
					switch {
					case sameFloats([]float32{got}, []float32{w}):
						computed++
					case got != got && named(s.Pass, sm.Name): // NaN: not computed, and said so
					default:
						t.Errorf("example %d %s: %s = %v, full run %v", s.ExampleID, s.Pass, sm.Name, got, w)
					}
				}
				for f, raised := range s.Flags {
					name := metrics.FlagIndex(f).Name()
					if raised != want.Flags[f] && !named(s.Pass, name) && !(name == "copying" && named(s.Pass, "repeat_mass")) {
						t.Errorf("example %d %s: flag %s %v, full run %v", s.ExampleID, s.Pass, name, raised, want.Flags[f])
					}
				}
			}
			if computed == 0 {
				t.Error("no sentence score computed")
			}
			// The stored layers' summary is the full run's; no other layer is summarised.
			var fm pipeline.Manifest
			readJSON(t, filepath.Join(full, pipeline.ManifestName), &fm)
			for _, l := range m.Summary.Heads {
				if !sel.Keeps(l.Pass, l.Kind, l.Layer, 6) {
					t.Errorf("summary of %s %s layer %d, not stored", l.Pass, l.Kind, l.Layer)
				}
				i := slices.IndexFunc(fm.Summary.Heads, func(f metrics.LayerSummary) bool {
					return f.Pass == l.Pass && f.Kind == l.Kind && f.Layer == l.Layer
				})
				if i < 0 || fmt.Sprint(fm.Summary.Heads[i].Metrics) != fmt.Sprint(l.Metrics) {
					t.Errorf("summary of %s %s layer %d differs from the full run's", l.Pass, l.Kind, l.Layer)
				}
			}

			page, err := os.ReadFile(filepath.Join(dir, "report.html"))
			if err != nil {
				t.Fatalf("no report: %v", err)
			}
			if !strings.Contains(string(page), "Not computed") || !strings.Contains(string(page), html.EscapeString(m.Summary.NotComputed[0].Why)) {
				t.Error("report.html does not say what was not computed")
			}
			attnaudit(t, "compare", "--runs", full, "--runs", dir, "--output", filepath.Join(t.TempDir(), "compare.html"))
		})
	}
}

func readHeads(t *testing.T, dir string) []store.HeadMetrics {
	t.Helper()
	hs, err := store.ReadHeadMetrics(filepath.Join(dir, store.HeadMetricsStem+".parquet"))
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func readSentences(t *testing.T, dir string) []store.SentenceMetrics {
	t.Helper()
	ss, err := store.ReadSentenceMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func headKey(h store.HeadMetrics) string {
	return fmt.Sprintf("%d %s %s %d %d", h.ExampleID, h.Pass, h.Kind, h.Layer, h.Head)
}

// sameFloats compares bit for bit, NaN equal to NaN.
func sameFloats(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}
