package inference

import (
	"reflect"
	"runtime"
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
	cases := []struct {
		plan    Parallelism
		batches int
		want    Parallelism
	}{
		{auto, 0, auto},  // not known
		{auto, 50, auto}, // more batches than workers
		{auto, 16, auto},
		// batch 64 on 16 cores, 792 sentences: 3 threads left to the first 3 workers
		{auto, 13, Parallelism{Threads: 16, Workers: 13, IntraOp: 1, Wide: 3, WideIntraOp: 2}},
		{auto, 4, Parallelism{Threads: 16, Workers: 4, IntraOp: 4}},
		{auto, 5, Parallelism{Threads: 16, Workers: 5, IntraOp: 3, Wide: 1, WideIntraOp: 4}},
		{auto, 1, Parallelism{Threads: 16, Workers: 1, IntraOp: 4}}, // at most 4 a worker: 12 round
		{auto, 3, Parallelism{Threads: 16, Workers: 3, IntraOp: 4}},
		// a split of the user's (several intra-op threads) stays
		{Parallelism{Threads: 16, Workers: 8, IntraOp: 2}, 3, Parallelism{Threads: 16, Workers: 8, IntraOp: 2}},
	}
	for _, c := range cases {
		got := c.plan.fitBatches(c.batches)
		if got != c.want {
			t.Errorf("%+v.fitBatches(%d) = %+v, want %+v", c.plan, c.batches, got, c.want)
		}
		threads := got.Wide*got.WideIntraOp + (got.Workers-got.Wide)*got.IntraOp
		if c.plan == auto && threads != got.Threads && got.IntraOp < maxFitIntraOp {
			t.Errorf("%+v: %d threads in use, want all %d", got, threads, got.Threads)
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
