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
type Parallelism struct {
	Threads int `json:"threads"`  // CPU threads for inference in all
	Workers int `json:"workers"`  // batches decoded at the same time
	IntraOp int `json:"intra_op"` // ONNX Runtime threads per call
}

func (p Parallelism) String() string {
	return fmt.Sprintf("%d threads: %d workers × %d intra-op", p.Threads, p.Workers, p.IntraOp)
}

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
