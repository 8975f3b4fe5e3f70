package inference

import (
	"fmt"
	"runtime"
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
// A run of fewer batches than threads gets one worker a batch, and the
// threads left over go to Wide of them (fitBatches), which run with
// WideIntraOp threads and take the slowest batches.
type Parallelism struct {
	Threads     int `json:"threads"`                 // CPU threads for inference in all
	Workers     int `json:"workers"`                 // batches decoded at the same time
	IntraOp     int `json:"intra_op"`                // ONNX Runtime threads per call
	Wide        int `json:"wide,omitempty"`          // of the workers, how many use WideIntraOp instead
	WideIntraOp int `json:"wide_intra_op,omitempty"` // ONNX Runtime threads per call of a wide worker
}

func (p Parallelism) String() string {
	if p.Wide > 0 {
		return fmt.Sprintf("%d threads: %d workers (%d × %d intra-op, %d × %d)", p.Threads, p.Workers, p.Wide, p.WideIntraOp, p.Workers-p.Wide, p.IntraOp)
	}
	return fmt.Sprintf("%d threads: %d workers × %d intra-op", p.Threads, p.Workers, p.IntraOp)
}

// fitBatches fits an automatic CPU plan (one worker a thread) to a run of
// batches batches (0: not known): with fewer batches than workers, every
// batch gets a worker, and the threads left over go to some of them, one
// more each (at batch 64 on 16 cores, 792 sentences make 13 batches: 3
// workers of 2 threads, 10 of one), up to maxFitIntraOp threads a worker;
// any still left round examples. The slowest batch bounds such a run (its
// longest sentences took a third of the decoding on one thread), and two
// threads decoded it in 1.11 s instead of 1.43–1.76 s on the 16-core
// machine (bench/RESULTS.md).
func (p Parallelism) fitBatches(batches int) Parallelism {
	if batches <= 0 || batches >= p.Workers || p.IntraOp != 1 {
		return p
	}
	per := min(maxFitIntraOp, p.Threads/batches)
	p.Workers, p.IntraOp = batches, per
	if left := p.Threads - per*batches; left > 0 && per < maxFitIntraOp {
		p.Wide, p.WideIntraOp = min(left, batches), per+1
	}
	return p
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
