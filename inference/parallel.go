package inference

import (
	"fmt"
	"math"
	"runtime"
	"slices"
)

// Parallelism is how a run spreads over the CPU: Workers decoders translate
// batches at the same time, each on its own handle of the same sessions
// (Model.Workers), and each ONNX Runtime call uses IntraOp threads.
//
// A small translation model gives ONNX Runtime's intra-op thread pool small
// matrices: on 16 cores one call with 16 threads ran at 0.36x PyTorch
// (bench/RESULTS.md). Sixteen calls with one thread each keep every core
// busy on whole batches instead, so on the CPU the default is one worker
// per thread. On CUDA the GPU does the arithmetic and one worker feeds it.
//
// A job of fewer batches than threads cuts its costliest batches into
// slices of rows (Slices, CutBatches), where the model's rows decode
// independently (rows.go); otherwise it is split by the batches' costs
// (fitBatches): Wide workers run with WideIntraOp threads and take the
// costliest batches, the others one thread each.
type Parallelism struct {
	Threads     int `json:"threads"`                 // CPU threads for inference in all
	Workers     int `json:"workers"`                 // batches decoded at the same time
	IntraOp     int `json:"intra_op"`                // ONNX Runtime threads per call
	Wide        int `json:"wide,omitempty"`          // of the workers, how many use WideIntraOp instead
	WideIntraOp int `json:"wide_intra_op,omitempty"` // ONNX Runtime threads per call of a wide worker
	// Slices: batches may be cut into slices of rows decoded by different
	// workers (CutBatches), the output unchanged (rows.go).
	Slices bool `json:"slices,omitempty"`
}

func (p Parallelism) String() string {
	if p.Wide > 0 {
		return fmt.Sprintf("%d threads: %d workers (%d × %d intra-op, %d × %d)", p.Threads, p.Workers, p.Wide, p.WideIntraOp, p.Workers-p.Wide, p.IntraOp)
	}
	s := fmt.Sprintf("%d threads: %d workers × %d intra-op", p.Threads, p.Workers, p.IntraOp)
	if p.Slices {
		s += ", costliest batches in slices"
	}
	return s
}

// fitBatches fits an automatic CPU plan (one worker a thread) to a job
// whose batches have the given costs (any unit, such as sentences × the
// longest source; none: not known). With fewer batches than threads, a
// worker a batch leaves threads idle while the slowest batch bounds the
// job: at batch 64 on 16 cores, 792 sentences make 13 batches, and the
// three of the longest sentences took 0.9–2.0 s each on one thread, the
// other ten 0.1–0.5 s. So the W costliest batches get wide workers of K
// intra-op threads and the others share the threads left, one a worker:
// of every W and K (K up to maxFitIntraOp), the plan whose estimated end
// is earliest, the later of the costliest batch on K threads (K^0.6 times
// as fast: two threads decoded it 1.45x as fast there, bench/RESULTS.md)
// and the other batches spread over their workers. Equal batches get as
// many threads each as there are for all (4 batches on 16 threads: 4 × 4).
func (p Parallelism) fitBatches(costs []int) Parallelism {
	b := len(costs)
	if b == 0 || b >= p.Workers || p.IntraOp != 1 {
		return p
	}
	c := slices.Sorted(slices.Values(costs))
	slices.Reverse(c)            // costliest first
	rest := make([]float64, b+1) // rest[w]: the cost of c[w:]
	for i := b - 1; i >= 0; i-- {
		rest[i] = rest[i+1] + float64(c[i])
	}
	best, bestEnd := Parallelism{Threads: p.Threads, Workers: b, IntraOp: 1}, float64(c[0])
	for k := 2; k <= maxFitIntraOp; k++ {
		for w := 1; w <= b && w*k <= p.Threads; w++ {
			narrow := min(b-w, p.Threads-w*k)
			if narrow == 0 && w < b {
				continue // the other batches need a worker
			}
			end := float64(c[0]) / math.Pow(float64(k), 0.6)
			if w < b {
				end = max(end, float64(c[w]), rest[w]/float64(narrow))
			}
			if end >= bestEnd*(1-1e-9) {
				continue
			}
			best, bestEnd = Parallelism{Threads: p.Threads, Workers: w + narrow, IntraOp: 1, Wide: w, WideIntraOp: k}, end
			if narrow == 0 {
				best = Parallelism{Threads: p.Threads, Workers: w, IntraOp: k}
			}
		}
	}
	return best
}

// maxFitIntraOp bounds the intra-op threads fitBatches gives a worker: a
// small model's matrices leave many threads of one call waiting (16 on one
// call ran slower than one).
const maxFitIntraOp = 4

// PlanParallelism splits threads (0: every core the process may use) into
// workers (0: automatic) and intra-op threads per worker. The workers need
// not divide the threads: each gets threads/workers, at least one.
func PlanParallelism(threads, workers int, cuda bool) (Parallelism, error) {
	if threads < 0 {
		return Parallelism{}, fmt.Errorf("threads %d: want 0 (every core) or more", threads)
	}
	if workers < 0 {
		return Parallelism{}, fmt.Errorf("workers %d: want 0 (automatic) or more", workers)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if workers == 0 {
		workers = threads
		if cuda {
			workers = 1
		}
	}
	return Parallelism{Threads: threads, Workers: workers, IntraOp: max(1, threads/workers)}, nil
}
