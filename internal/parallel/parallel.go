// Package parallel runs independent iterations on several goroutines: the
// one loop that inference (rows of a decoding step) and store (rows a
// writer rounds) both need.
package parallel

import (
	"sync"
	"sync/atomic"
)

// For calls f(i) for every i in [0, n) on up to procs goroutines, each
// taking the next i until none is left; with one goroutine or fewer it
// runs them in order on the caller's. f must touch only iteration i's
// data.
func For(n, procs int, f func(i int)) {
	workers := min(n, procs)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}
