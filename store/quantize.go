package store

import (
	"math"
	"slices"
	"sync"

	"attnaudit/metrics"
)

// grid is how quantizeRows rounds: to multiples of step, weights below
// one step to multiples of step/fine (fine > 1; 1 rounds them to step
// too), each within maxErr.
type grid struct {
	step, maxErr, fine float64
	// even sends a weight to an even multiple of step wherever one is
	// within maxErr (the packed precision): four in five weights can go
	// there, which leaves the grid index's last bit mostly 0 and the
	// column a little smaller. The row sum and entropy balancing then
	// moves some to odd multiples.
	even bool
	// goal is where the entropy balancing's pair moves stop (entropyGoal
	// when 0): once what a row and the rows before it moved the matrix's
	// entropy sum is below it. Each pair move leaves two weights off the
	// nearest (or even) multiple.
	goal float64
	// keepZeros leaves weights that are exactly 0 at 0 (the packed
	// precision): otherwise the row sum balancing may raise one to
	// step/fine, as it may any weight below one step, and a causal
	// matrix's masked keys would no longer be 0.
	keepZeros bool
}

// The grids of the precisions that round (attention.go).
var (
	fixedGrid   = grid{step: FixedStep, maxErr: FixedMaxError, fine: FixedFine}
	compactGrid = grid{step: CompactStep, maxErr: FixedMaxError, fine: CompactFine}
	packedGrid  = grid{step: PackedStep, maxErr: FixedMaxError, fine: PackedFine, even: true, goal: PackedEntropyGoal, keepZeros: true}
)

// quantizeRows rounds each row (cols values) of a row-major attention
// matrix to multiples of g.step, and the weights below one step to
// multiples of step/fine, writing them to out, so that
//
//   - every value moves by at most maxErr (≥ step/2): each is rounded down
//     or up, to the nearer multiple unless the other is also within maxErr;
//   - each row's sum stays within step/2 of its float32 sum (so row_sum_err
//     is kept): the row's rounded values add up to its sum rounded to step;
//   - weights below one step are kept to step/fine: one head's tiny
//     weight where another head's is large weighs heavily in head
//     diversity (JS divergence), which rounding them to 0 or one step
//     moved by up to 1.2e-4 (TestQuantizeRowsKeepsHeadDiversity; 1.0e-4 on
//     the demo run, 3.8e-5 with fine 16 at 2^-14, 4.5e-5 at 2^-13), while
//     they are few (2% of the demo run's weights) and their fine grid
//     costs 2% of the file;
//   - the matrix's entropy (the mean of its rows' −Σ p ln p) moves as
//     little as those choices allow, each row balanced against what the
//     earlier rows left; the function returns how far it moved:
//     rounding to the nearest multiple alone biases entropy (the many tiny
//     weights that round to 0 drop their −p ln p), which the choices of
//     direction among the values with two allowed multiples undo.
//
// Values outside [0, 1] and NaN are copied as they are; a row holding one
// is only rounded to nearest.
func quantizeRows(in, out []float32, cols int, g grid) float64 {
	q := quantizers.Get().(*rowQuantizer)
	defer quantizers.Put(q)
	q.h = entropyTerms(g.step)
	// Each row's entropy is balanced against what the rows before it left
	// (entropy is the mean over rows, so their errors cancel).
	var left float64
	for start := 0; start+cols <= len(in) && cols > 0; start += cols {
		left = q.row(in[start:start+cols], out[start:start+cols], g, left)
	}
	if cols == 0 || len(in) < cols {
		return 0
	}
	return left / float64(len(in)/cols)
}

// quantizeWithin rounds a matrix with quantizeRows on the grid step and,
// while its entropy (SPEC §5: the mean over rows of −Σ p ln p) moves by
// more than entropyBound(cols) or its diagonality (at the default
// guided_sigma) by more than 9e-5, on grids twice, four … times finer, down
// to minStep; a matrix still off is copied as it is. Short rows leave the
// entropy balancing few choices (a few 4×4 to 8×8 matrices of the demo run
// at 2^-13); diagonality weighs each row's rounding errors by the guided
// prior, which row sums do not cancel (3 of the demo run's 66,528 matrices
// at 2^-13). The other per-head metrics move by at most the largest error
// per weight: confidence, first_mass and last_mass are a row's largest
// weight or one column, averaged over rows.
func quantizeWithin(in, out []float32, cols int, g grid) {
	goal := entropyBound(cols)
	for ; g.step >= minStep; g.step /= 2 {
		e := quantizeRows(in, out, cols, g)
		if math.Abs(e) <= goal && math.Abs(diagonalityChange(in, out, cols)) <= 9e-5 {
			return
		}
	}
	copy(out, in)
}

// diagonalityChange is how much metrics.Diagonality moves from in to out
// (row-major, cols a row): −mean_t Σ_j (out−in)_tj W_tj, W the guided prior
// at metrics.DefaultGuidedSigma.
func diagonalityChange(in, out []float32, cols int) float64 {
	if cols == 0 || len(in) < cols {
		return 0
	}
	rows := len(in) / cols
	const g = metrics.DefaultGuidedSigma
	// Along a row the prior exp(−v²/2g²), v = u − (j+½)/cols, is a
	// Gaussian sampled at even spacing δ = 1/cols: each term is the one
	// before times a ratio that itself changes by the constant factor
	// exp(−δ²/g²), two multiplications a weight instead of an exp.
	delta := 1 / float64(cols)
	kappa := math.Exp(-delta * delta / (g * g))
	var sum float64
	for t := range rows {
		u := (float64(t) + 0.5) / float64(rows)
		v := u - delta/2
		prior := math.Exp(-v * v / (2 * g * g))
		ratio := math.Exp((2*v*delta - delta*delta) / (2 * g * g))
		for j := range cols {
			d := float64(out[t*cols+j]) - float64(in[t*cols+j])
			if d != 0 && !math.IsNaN(d) {
				sum += d * (1 - prior)
			}
			prior *= ratio
			ratio *= kappa
		}
	}
	return -sum / float64(rows)
}

// minStep is quantizeWithin's finest grid.
const minStep = 1.0 / (1 << 16)

// entropyBound is how far quantizeWithin lets a matrix's entropy move:
// 9e-5, and 9e-5·ln(cols) below 3 columns, so that entropy_norm (entropy /
// ln cols) stays within it too.
func entropyBound(cols int) float64 {
	return 9e-5 * min(1, math.Log(float64(max(cols, 2))))
}

// quantizers keeps rowQuantizers and their buffers between matrices.
var quantizers = sync.Pool{New: func() any { return new(rowQuantizer) }}

type rowQuantizer struct {
	h      []float64 // h(n·step) for n = 0 … 1/step
	x      []float64 // value / step
	n      []float64 // chosen multiple
	lo, hi []bool    // whether n-1, n+1 are allowed
	ups    []move    // candidate moves up and down (downs sorted by entropy change)
	downs  []move
	used   []bool    // moved in a pair already
	saved  []float64 // shiftFine's copy of the fine values
}

type move struct {
	j     int
	delta float64 // change of the row's entropy error
}

// h is one weight's entropy term −p ln p, 0 at 0.
func h(p float64) float64 {
	if p <= 0 {
		return 0
	}
	return -p * math.Log(p)
}

var (
	termsMu sync.Mutex
	terms   = map[float64][]float64{}
)

// entropyTerms returns h(n·step) for every multiple of step in [0, 1],
// computed once per step: rounding a row then takes one logarithm per
// weight.
func entropyTerms(step float64) []float64 {
	termsMu.Lock()
	defer termsMu.Unlock()
	if t, ok := terms[step]; ok {
		return t
	}
	t := make([]float64, int(math.Round(1/step))+1)
	for n := range t {
		t[n] = h(float64(n) * step)
	}
	terms[step] = t
	return t
}

// row rounds one row, balancing its entropy error (the sum of its
// −p ln p terms' changes) together with entErr, what earlier rows left,
// and returns the two's sum.
func (q *rowQuantizer) row(in, out []float32, g grid, entErr float64) float64 {
	step, maxErr, fine := g.step, g.maxErr, g.fine
	goal := g.goal
	if goal == 0 {
		goal = entropyGoal
	}
	k := len(in)
	entIn := entErr
	q.x, q.n = resize(q.x, k), resize(q.n, k)
	q.lo, q.hi = resize(q.lo, k), resize(q.hi, k)
	var sumX, sumN, fineSum float64
	plain := false
	for j, v := range in {
		if !(v >= 0 && v <= 1) {
			plain = true
			continue
		}
		x := float64(v) / step
		n := math.RoundToEven(x)
		if x < 1 && fine > 1 {
			n = math.RoundToEven(x*fine) / fine
			fineSum += n
		} else {
			// n is a whole number of steps (at most 1/step): its low bit
			// says odd, where math.Mod took a third of the rounding's time.
			if g.even && int64(n)&1 != 0 {
				// the even multiple on the other side of x, if within maxErr
				if e := 2 * math.Round(x/2); math.Abs(e-x) <= maxErr/step-1e-9 && e <= 1/step {
					n = e
				}
			}
			sumN += n
		}
		q.x[j], q.n[j] = x, n
		sumX += x
	}
	if plain {
		for j, v := range in {
			out[j] = v
			if v >= 0 && v <= 1 {
				out[j] = float32(q.n[j] * step)
			}
		}
		return entErr
	}
	// The fine values' total in steps is rarely whole; fine values move by
	// one fine unit at a time (those left nearest their weight first) until
	// it is, so that the row still sums to its float32 sum rounded to a step.
	if u := math.RoundToEven(fineSum) - fineSum; u != 0 {
		units, dir := int(math.Round(math.Abs(u)*fine)), math.Copysign(1, u)
		flipped := false
		for units > 0 {
			best, bestErr := -1, math.Inf(1)
			for j := range in {
				if q.x[j] >= 1 || (g.keepZeros && in[j] == 0) {
					continue
				}
				n := q.n[j] + dir/fine
				if e := math.Abs(n - q.x[j]); n >= 0 && e <= maxErr/step-1e-9 && e < bestErr {
					best, bestErr = j, e
				}
			}
			if best < 0 {
				if flipped || (dir > 0 && !g.keepZeros) {
					break
				}
				// no fine value left to lower (raise): raise (lower) them to
				// the next (last) whole step instead
				units, dir, flipped = int(fine)-units, -dir, true
				continue
			}
			q.n[best] += dir / fine
			fineSum += dir / fine
			units--
		}
	}
	for j := range in {
		if q.x[j] < 1 && fine > 1 {
			q.lo[j], q.hi[j] = false, false
			entErr += h(q.n[j]*step) - h(float64(in[j]))
			continue
		}
		// A float32 weight and float64 arithmetic: allow a hair of slack
		// below maxErr so rounding never breaks the bound.
		lim := maxErr/step - 1e-9
		q.lo[j] = q.n[j] >= 1 && q.x[j]-(q.n[j]-1) <= lim
		q.hi[j] = q.n[j] < 1/step && (q.n[j]+1)-q.x[j] <= lim
		entErr += q.h[int(q.n[j])] - h(float64(in[j]))
	}
	// Keep the row sum: move the values whose move helps entropy most.
	for target := math.RoundToEven(sumX - fineSum); sumN != target; {
		dir := 1.0
		if sumN > target {
			dir = -1
		}
		best, bestErr := -1, math.Inf(1)
		for j := range k {
			if (dir > 0 && !q.hi[j]) || (dir < 0 && !q.lo[j]) {
				continue
			}
			e := math.Abs(entErr + q.h[int(q.n[j]+dir)] - q.h[int(q.n[j])])
			if e < bestErr {
				best, bestErr = j, e
			}
		}
		if best < 0 {
			// no value of a step or more can move in dir: the weights
			// below one step move by one step together, if they can
			if d, ok := q.shiftFine(in, g, dir); ok {
				entErr += d
				target -= dir
				continue
			}
			if g.even {
				// the even multiples left no move in dir: round this row
				// to the nearest multiples instead
				g.even = false
				return q.row(in, out, g, entIn)
			}
			break
		}
		entErr += q.apply(best, dir)
		sumN += dir
	}
	// Then pairs of moves, one up and one down, that keep the sum and
	// bring the entropy error towards 0: each round takes the pair whose
	// two entropy changes best cancel it. The candidates are sorted once;
	// a value moved in a pair is not moved again (moving it back would
	// undo the pair), so later rounds skip it.
	if math.Abs(entErr) >= goal {
		q.ups, q.downs = q.candidates(q.ups, k, 1), q.candidates(q.downs, k, -1)
		slices.SortFunc(q.downs, byDelta)
		q.used = resize(q.used, k)
		clear(q.used)
		for range 8 {
			up, down, e := q.bestPair(entErr)
			if up < 0 || e >= math.Abs(entErr) {
				break
			}
			entErr += q.apply(up, 1)
			entErr += q.apply(down, -1)
			q.used[up], q.used[down] = true, true
			if math.Abs(entErr) < goal {
				break
			}
		}
	}
	for j := range in {
		out[j] = float32(q.n[j] * step)
	}
	return entErr
}

// shiftFine moves the row's weights below one step (those on the fine
// grid) by one step in all, in dir, one fine unit at a time, each time
// the one that stays nearest its weight, each within maxErr (zeros stay
// 0 under keepZeros). It returns the change of the row's entropy error,
// or false, leaving them as they were, when they cannot move so far.
func (q *rowQuantizer) shiftFine(in []float32, g grid, dir float64) (float64, bool) {
	if g.fine <= 1 {
		return 0, false
	}
	lim := g.maxErr/g.step - 1e-9
	before := q.saved[:0]
	for j := range in {
		if q.x[j] < 1 {
			before = append(before, q.n[j])
		}
	}
	q.saved = before
	for range int(g.fine) {
		best, bestErr := -1, math.Inf(1)
		for j := range in {
			if q.x[j] >= 1 || (g.keepZeros && in[j] == 0) {
				continue
			}
			n := q.n[j] + dir/g.fine
			if e := math.Abs(n - q.x[j]); n >= 0 && e <= lim && e < bestErr {
				best, bestErr = j, e
			}
		}
		if best < 0 {
			i := 0
			for j := range in {
				if q.x[j] < 1 {
					q.n[j] = before[i]
					i++
				}
			}
			return 0, false
		}
		q.n[best] += dir / g.fine
	}
	var d float64
	i := 0
	for j := range in {
		if q.x[j] < 1 {
			d += h(q.n[j]*g.step) - h(before[i]*g.step)
			i++
		}
	}
	return d, true
}

// entropyGoal is where the pair moves stop by default: a tenth of the
// 1e-4 of entropy that the fixed precision keeps.
const entropyGoal = 1e-5

// bestPair finds the unused up move and unused down move (of different
// values) whose entropy changes bring entErr nearest 0, and that |error|;
// up is -1 when there is no such pair.
func (q *rowQuantizer) bestPair(entErr float64) (up, down int, best float64) {
	up, down, best = -1, -1, math.Inf(1)
	downs := q.downs
	for _, u := range q.ups {
		if q.used[u.j] {
			continue
		}
		// the down moves whose delta is nearest −(entErr + u.delta): the
		// nearest usable one on either side of where it would go
		want := -(entErr + u.delta)
		i, _ := slices.BinarySearchFunc(downs, want, func(m move, w float64) int {
			switch {
			case m.delta < w:
				return -1
			case m.delta > w:
				return 1
			}
			return 0
		})
		for c := i - 1; c >= 0; c-- {
			if d := downs[c]; !q.used[d.j] && d.j != u.j {
				if e := math.Abs(entErr + u.delta + d.delta); e < best {
					up, down, best = u.j, d.j, e
				}
				break
			}
		}
		for c := i; c < len(downs); c++ {
			if d := downs[c]; !q.used[d.j] && d.j != u.j {
				if e := math.Abs(entErr + u.delta + d.delta); e < best {
					up, down, best = u.j, d.j, e
				}
				break
			}
		}
	}
	return up, down, best
}

// byDelta orders moves by entropy change (never NaN: the terms are finite).
func byDelta(a, b move) int {
	switch {
	case a.delta < b.delta:
		return -1
	case a.delta > b.delta:
		return 1
	}
	return 0
}

// apply moves value j one multiple in dir and returns the change of the
// entropy error.
func (q *rowQuantizer) apply(j int, dir float64) float64 {
	before := q.h[int(q.n[j])]
	q.n[j] += dir
	// The value can now move back only.
	q.lo[j], q.hi[j] = dir > 0, dir < 0
	return q.h[int(q.n[j])] - before
}

// candidates lists the allowed moves in dir.
func (q *rowQuantizer) candidates(out []move, k int, dir float64) []move {
	out = out[:0]
	for j := range k {
		if (dir > 0 && q.hi[j]) || (dir < 0 && q.lo[j]) {
			out = append(out, move{j, q.h[int(q.n[j]+dir)] - q.h[int(q.n[j])]})
		}
	}
	return out
}

func resize[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}
