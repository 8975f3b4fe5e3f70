package parallel

import (
	"sync/atomic"
	"testing"
)

func TestForCallsEveryIterationOnce(t *testing.T) {
	for _, c := range []struct{ n, procs int }{{0, 4}, {1, 4}, {5, 1}, {5, 0}, {100, 3}, {3, 16}} {
		counts := make([]atomic.Int32, c.n)
		For(c.n, c.procs, func(i int) { counts[i].Add(1) })
		for i := range counts {
			if got := counts[i].Load(); got != 1 {
				t.Errorf("For(%d, %d): iteration %d ran %d times", c.n, c.procs, i, got)
			}
		}
	}
}
