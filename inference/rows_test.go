package inference

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSlicesDecodeAsTheWholeBatch translates the test sentences as one
// batch and again in slices padded to the batch's longest source
// (TranslateSlice), greedily, with a beam and with a repetition penalty,
// on both contracts: every result (hypothesis, log-probs, every attention
// matrix of the free and forced passes, value norms) must be the same bit
// for bit. It holds on x86-64 ONNX Runtime CPU kernels (rows.go); where it
// fails, so does the load-time check, and runs keep batches whole.
func TestSlicesDecodeAsTheWholeBatch(t *testing.T) {
	for _, m := range tinyModels(t) {
		for _, opts := range []DecodeOptions{{MaxLen: 16}, {Beam: 3, MaxLen: 12}, {MaxLen: 16, RepetitionPenalty: 1.3}} {
			sameInSlices(t, fmt.Sprintf("contract %d, %+v", m.io.contract, opts), m, testSentences, opts, [][]int{{0, 2}, {1, 3, 4}, {4}, {3}})
		}
	}
}

// sameInSlices translates reqs as one batch and each of slices (indices
// into reqs) with TranslateSlice, padded to the batch's longest source,
// and wants every sentence's result the same, bit for bit.
func sameInSlices(t *testing.T, what string, m *Model, reqs []Request, opts DecodeOptions, parts [][]int) {
	t.Helper()
	padTo := 0
	for _, r := range reqs {
		padTo = max(padTo, m.SourceTokens(r.Source))
	}
	whole, err := m.TranslateBatch(reqs, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range parts {
		part := make([]Request, len(rows))
		for k, i := range rows {
			part[k] = reqs[i]
		}
		got := make([]Result, len(rows))
		if err := m.TranslateSlice(part, padTo, opts, func(r Result) { got[r.Index] = r }); err != nil {
			t.Fatal(err)
		}
		for k, i := range rows {
			want := whole[i]
			want.Index = k
			if !reflect.DeepEqual(got[k], want) {
				t.Errorf("%s: sentence %d (%q) in slice %v differs from the whole batch", what, i, reqs[i].Source, rows)
			}
		}
	}
}

// TestRowsIndependent: the load-time check passes on the tiny models (as
// TestSlicesDecodeAsTheWholeBatch), and catches slices that decode other
// than the whole batch (here: to fewer tokens).
func TestRowsIndependent(t *testing.T) {
	for _, m := range tinyModels(t) {
		m.mu.Lock()
		same, why, err := m.rowsIndependent()
		differs, _, err2 := m.probeSlices(2)
		m.mu.Unlock()
		if err != nil || !same {
			t.Errorf("contract %d: rowsIndependent = %v, %q, %v; want true", m.io.contract, same, why, err)
		}
		if err2 != nil || differs {
			t.Errorf("contract %d: slices decoded to 2 tokens, the batch to %d: the same = %v, %v; want a difference", m.io.contract, probeMaxLen, differs, err2)
		}
	}
}

// TestForcedPassPadding: a forced pass pads [BOS, target] to a multiple
// of 8 of its own, within the model's positions.
func TestForcedPassPadding(t *testing.T) {
	m := loadTiny2(t)
	p := m.ck.meta.MaxPositions
	for _, c := range [][2]int{{0, 8}, {6, 8}, {7, 8}, {8, 16}, {15, 16}, {p - 2, min(p, (p-1+7)/8*8)}, {p - 1, p}} {
		if got := m.forcedLength(c[0]); got != c[1] || got < c[0]+1 {
			t.Errorf("forcedLength(%d) = %d, want %d (max positions %d)", c[0], got, c[1], p)
		}
	}
}

func TestCutBatches(t *testing.T) {
	sliced := Parallelism{Threads: 16, Workers: 16, IntraOp: 1, Slices: true}
	// batch 64 on the 16-core machine: the three batches of the longest
	// sources (14656: 64 sentences × 229 bytes) bound the run
	bench := []int{14656, 14656, 4032, 3840, 3008, 3008, 2304, 2304, 14656, 4416, 3328, 2560, 3840}
	rows := slices.Repeat([]int{64}, len(bench))
	rows[len(rows)-1] = 24
	ones := func(n int) []int { return slices.Repeat([]int{1}, n) }
	cases := []struct {
		name        string
		plan        Parallelism
		costs, rows []int
		want        []int
	}{
		// share 77,968/16 = 4873: ⌈2·14656/4873⌉ = 7 slices of 9 or 10 rows
		{"the benchmark", sliced, bench, rows, []int{7, 7, 1, 1, 1, 1, 1, 1, 7, 1, 1, 1, 1}},
		{"not sliced", Parallelism{Threads: 16, Workers: 10, IntraOp: 1, Wide: 3, WideIntraOp: 3}, bench, rows, ones(13)},
		{"as many batches as workers", sliced, slices.Repeat([]int{100}, 16), slices.Repeat([]int{64}, 16), ones(16)},
		// one batch: cut into at most a slice a worker, at most one a row
		{"one batch", sliced, []int{500}, []int{64}, []int{16}},
		{"one batch of 3", sliced, []int{500}, []int{3}, []int{3}},
		// a row count of 0 or 1 is never cut (detached passes)
		{"not to cut", sliced, []int{500, 10}, []int{0, 8}, []int{1, 1}},
		{"equal", sliced, []int{100, 100, 100, 100}, []int{64, 64, 64, 64}, []int{8, 8, 8, 8}},
	}
	for _, c := range cases {
		if got := c.plan.CutBatches(c.costs, c.rows); !slices.Equal(got, c.want) {
			t.Errorf("%s: CutBatches = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLoadForSlicesOrKeepsWhole: on two threads, a job of one batch loads
// with slices (two one-thread workers); with ATTNAUDIT_NO_SLICES, or when
// the probe itself fails (here: a model whose positions the probe
// sentences do not fit), it loads with the batch kept whole (one worker
// of two intra-op threads) and says why.
func TestLoadForSlicesOrKeepsWhole(t *testing.T) {
	var log strings.Builder
	old := testRuntime.log
	testRuntime.log = &log
	defer func() { testRuntime.log = old }()
	load := func(maxPositions int) Parallelism {
		t.Helper()
		ck, err := OpenCheckpoint(os.DirFS(tinyDir2), ".")
		if err != nil {
			t.Fatal(err)
		}
		if maxPositions > 0 {
			ck.meta.MaxPositions = maxPositions
		}
		m, err := testRuntime.LoadFor(ck, []int{100})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if len(m.Workers()) != m.Parallelism().Workers {
			t.Errorf("%d handles for %+v", len(m.Workers()), m.Parallelism())
		}
		return m.Parallelism()
	}
	sliced := Parallelism{Threads: 2, Workers: 2, IntraOp: 1, Slices: true}
	whole := Parallelism{Threads: 2, Workers: 1, IntraOp: 2}
	if got := load(0); got != sliced {
		t.Errorf("LoadFor = %+v, want %+v", got, sliced)
	}
	if got := load(6); got != whole || !strings.Contains(log.String(), "kept whole") || !strings.Contains(log.String(), "probing row independence") {
		t.Errorf("with 6 positions: LoadFor = %+v, want %+v; log %q", got, whole, log.String())
	}
	t.Setenv(NoSlicesEnv, "1")
	if got := load(0); got != whole {
		t.Errorf("with %s: LoadFor = %+v, want %+v", NoSlicesEnv, got, whole)
	}
}
