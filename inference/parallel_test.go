package inference

import (
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
)

func TestPlanParallelism(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	cases := []struct {
		threads, workers int
		cuda             bool
		want             Parallelism
	}{
		{0, 0, false, Parallelism{Threads: procs, Workers: procs, IntraOp: 1}},
		{0, 0, true, Parallelism{Threads: procs, Workers: 1, IntraOp: procs}},
		{16, 0, false, Parallelism{Threads: 16, Workers: 16, IntraOp: 1}},
		{16, 4, false, Parallelism{Threads: 16, Workers: 4, IntraOp: 4}},
		{16, 3, false, Parallelism{Threads: 16, Workers: 3, IntraOp: 5}}, // 3 × 5 ≤ 16: one core left to Go
		{2, 8, false, Parallelism{Threads: 2, Workers: 8, IntraOp: 1}},   // more workers than threads: one each
		{8, 2, true, Parallelism{Threads: 8, Workers: 2, IntraOp: 4}},
	}
	for _, c := range cases {
		got, err := PlanParallelism(c.threads, c.workers, c.cuda)
		if err != nil || got != c.want {
			t.Errorf("PlanParallelism(%d, %d, cuda %v) = %+v, %v; want %+v", c.threads, c.workers, c.cuda, got, err, c.want)
		}
	}
	for _, bad := range [][2]int{{-1, 0}, {0, -2}} {
		if _, err := PlanParallelism(bad[0], bad[1], false); err == nil {
			t.Errorf("PlanParallelism(%d, %d): no error", bad[0], bad[1])
		}
	}
}

func TestFitBatches(t *testing.T) {
	auto := Parallelism{Threads: 16, Workers: 16, IntraOp: 1}
	equal := func(n int) []int { return slices.Repeat([]int{100}, n) }
	// batch 64 on the 16-core machine (bench/RESULTS.md): 792 sentences,
	// 13 batches, costs of sentences × longest source; the three of 14656
	// took 0.9–2.0 s each on one thread, the others 0.1–0.5 s.
	bench := []int{14656, 14656, 4032, 3840, 3008, 3008, 2304, 2304, 14656, 4416, 3328, 2560, 3840}
	cases := []struct {
		name  string
		plan  Parallelism
		costs []int
		want  Parallelism
	}{
		{"not known", auto, nil, auto},
		{"more batches than workers", auto, equal(50), auto},
		{"as many", auto, equal(16), auto},
		// K threads only for the costliest, the rest one a worker: 3 × 3
		// (estimated 14656/3^0.6 = 7.6k) beats 3 × 2 (9.6k) and 3 × 4
		// (4 workers left for 32,640 of light batches: 8.2k).
		{"the benchmark", auto, bench, Parallelism{Threads: 16, Workers: 10, IntraOp: 1, Wide: 3, WideIntraOp: 3}},
		// equal batches: more threads for some would not end sooner
		{"13 equal", auto, equal(13), Parallelism{Threads: 16, Workers: 13, IntraOp: 1}},
		{"4 equal", auto, equal(4), Parallelism{Threads: 16, Workers: 4, IntraOp: 4}},
		{"5 equal", auto, equal(5), Parallelism{Threads: 16, Workers: 5, IntraOp: 3}},
		{"one", auto, equal(1), Parallelism{Threads: 16, Workers: 1, IntraOp: 4}}, // at most 4: 12 round
		// one long batch, four short: the long one gets 4
		{"one long", auto, []int{1000, 10, 10, 10, 10}, Parallelism{Threads: 16, Workers: 5, IntraOp: 1, Wide: 1, WideIntraOp: 4}},
		// a split of the user's (several intra-op threads) stays
		{"user's split", Parallelism{Threads: 16, Workers: 8, IntraOp: 2}, equal(3), Parallelism{Threads: 16, Workers: 8, IntraOp: 2}},
	}
	for _, c := range cases {
		got := c.plan.fitBatches(c.costs)
		if got != c.want {
			t.Errorf("%s: fitBatches = %+v, want %+v", c.name, got, c.want)
		}
		if threads := got.Wide*got.WideIntraOp + (got.Workers-got.Wide)*got.IntraOp; threads > got.Threads {
			t.Errorf("%s: %+v uses %d threads of %d", c.name, got, threads, got.Threads)
		}
	}
}

// TestWorkersDecodeAtOnce translates batches on every worker handle at the
// same time (run it with -race) and checks each result equals the same
// batch translated alone on the model: hypotheses, log-probs and every
// attention matrix, bit for bit.
func TestWorkersDecodeAtOnce(t *testing.T) {
	for _, m := range tinyModels(t) {
		hs := m.Workers()
		if len(hs) != m.Parallelism().Workers || len(hs) < 2 || hs[0] != m {
			t.Fatalf("contract %d: %d handles for %+v; want the model first and at least two", m.io.contract, len(hs), m.Parallelism())
		}
		var batches [][]Request
		for i := 0; i < len(testSentences); i += 2 {
			batches = append(batches, testSentences[i:min(i+2, len(testSentences))])
		}
		opts := DecodeOptions{MaxLen: 12}
		want := make([][]Result, len(batches))
		for b, reqs := range batches {
			var err error
			if want[b], err = m.TranslateBatch(reqs, opts); err != nil {
				t.Fatal(err)
			}
		}
		got := make([][]Result, len(batches))
		errs := make([]error, len(batches))
		var wg sync.WaitGroup
		for w, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := w; b < len(batches); b += len(hs) {
					got[b], errs[b] = h.TranslateBatch(batches[b], opts)
				}
			}()
		}
		wg.Wait()
		for b := range batches {
			if errs[b] != nil {
				t.Fatalf("contract %d, batch %d: %v", m.io.contract, b, errs[b])
			}
			if !reflect.DeepEqual(got[b], want[b]) {
				t.Errorf("contract %d, batch %d: translated on a worker differs from alone", m.io.contract, b)
			}
		}
	}
}
