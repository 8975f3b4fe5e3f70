package metrics

import (
	"math"
	"slices"
	"sort"
)

// SourceDistribution returns π = mean_t of the head-averaged cross-attention
// of one layer: the share of attention each source token receives over the
// whole translation. With dropEOS the last column (EOS) is removed and π is
// renormalised over the remaining columns. heads must share one shape. It
// returns nil for no heads, no rows, or (with dropEOS) no mass outside EOS.
func SourceDistribution(heads []Matrix, dropEOS bool) []float64 {
	if len(heads) == 0 || heads[0].Rows == 0 || heads[0].Cols == 0 {
		return nil
	}
	r, c := heads[0].Rows, heads[0].Cols
	pi := make([]float64, c)
	for _, h := range heads {
		if h.Rows != r || h.Cols != c {
			return nil
		}
		for i, a := range h.Data {
			pi[i%c] += float64(a)
		}
	}
	scale := 1 / float64(r*len(heads))
	for j := range pi {
		pi[j] *= scale
	}
	if !dropEOS {
		return pi
	}
	pi = pi[:c-1]
	var s float64
	for _, p := range pi {
		s += p
	}
	if s <= 0 {
		return nil
	}
	for j := range pi {
		pi[j] /= s
	}
	return pi
}

// WassToUnif is ½ Σ_j |π_j − 1/n|: the Wasserstein distance under a 0/1
// cost between π and the uniform distribution over its n source tokens
// (Wass-to-Unif, Guerreiro et al. 2023, "Optimal Transport for Unsupervised
// Hallucination Detection in Neural Machine Translation", ACL). 0 for
// uniform attention, near 1 when all mass sits on one token of many. NaN
// for an empty π.
func WassToUnif(pi []float64) float64 {
	if len(pi) == 0 {
		return math.NaN()
	}
	u := 1 / float64(len(pi))
	var s float64
	for _, p := range pi {
		s += math.Abs(p - u)
	}
	return s / 2
}

// Wasserstein1D is the 1-Wasserstein distance ∫|F_p − F_q| between π and
// ρ placed at relative positions (j+½)/n of their own lengths, so sources of
// different lengths compare. Both must be distributions (sum 1); NaN if
// either is empty.
func Wasserstein1D(pi, rho []float64) float64 {
	n, m := len(pi), len(rho)
	if n == 0 || m == 0 {
		return math.NaN()
	}
	// Merge the two sets of support points, integrating |F_p − F_q| between
	// consecutive ones.
	var dist, fp, fq, x float64
	i, j := 0, 0
	for i < n || j < m {
		xi, xj := math.Inf(1), math.Inf(1)
		if i < n {
			xi = (float64(i) + 0.5) / float64(n)
		}
		if j < m {
			xj = (float64(j) + 0.5) / float64(m)
		}
		next := min(xi, xj)
		dist += math.Abs(fp-fq) * (next - x)
		x = next
		if xi == next {
			fp += pi[i]
			i++
		}
		if xj == next {
			fq += rho[j]
			j++
		}
	}
	return dist
}

// DefaultWassK and DefaultLengthTolerance are Wass-to-Data's neighbours
// and length window.
const (
	DefaultWassK           = 4
	DefaultLengthTolerance = 0.10
)

// PoolEntry is one reference example for WassToData: its π and the length
// (in tokens) of its hypothesis.
type PoolEntry struct {
	ID  int32 // excluded when it equals the scored example's ID (leave-one-out)
	Len int
	Pi  []float64
}

// Pool is a reference pool for WassToData, sorted by length so each query
// scans only the examples of similar length.
type Pool struct {
	entries []PoolEntry
}

// NewPool builds a pool. Entries without π are left out.
func NewPool(entries []PoolEntry) *Pool {
	p := &Pool{}
	for _, e := range entries {
		if len(e.Pi) > 0 {
			p.entries = append(p.entries, e)
		}
	}
	slices.SortStableFunc(p.entries, func(a, b PoolEntry) int { return a.Len - b.Len })
	return p
}

// Len is the number of entries.
func (p *Pool) Len() int { return len(p.entries) }

// WassToData is the mean of the k smallest Wasserstein1D distances between
// pi and the π of the pool's entries whose hypothesis length is within
// ±tol·length of length, the entry with the same id excluded (Wass-to-Data,
// Guerreiro et al. 2023). Fewer than k neighbours give the mean of those
// there are; none gives NaN.
func (p *Pool) WassToData(id int32, length int, pi []float64, k int, tol float64) float64 {
	if len(pi) == 0 || k <= 0 {
		return math.NaN()
	}
	lo, hi := float64(length)*(1-tol), float64(length)*(1+tol)
	start := sort.Search(len(p.entries), func(i int) bool { return float64(p.entries[i].Len) >= lo-1e-9 })
	best := make([]float64, 0, k+1) // the k smallest so far, ascending
	for _, e := range p.entries[start:] {
		if float64(e.Len) > hi+1e-9 {
			break
		}
		if e.ID == id {
			continue
		}
		d := Wasserstein1D(pi, e.Pi)
		if len(best) == k && d >= best[k-1] {
			continue
		}
		at, _ := slices.BinarySearch(best, d)
		best = slices.Insert(best, at, d)
		if len(best) > k {
			best = best[:k]
		}
	}
	if len(best) == 0 {
		return math.NaN()
	}
	var s float64
	for _, d := range best {
		s += d
	}
	return s / float64(len(best))
}

// DefaultComboPercentile is the percentile of Wass-to-Unif in the
// reference pool above which WassCombo switches to Wass-to-Unif.
const DefaultComboPercentile = 99.9

// WassCombo combines Wass-to-Unif and Wass-to-Data as in Guerreiro et al.
// 2023: above τ, the given percentile of Wass-to-Unif in the reference pool,
// the score is Wass-to-Unif min–max rescaled from the pool's Wass-to-Unif
// range into its Wass-to-Data range, so those extreme cases rank above the
// rest; otherwise it is Wass-to-Data.
type WassCombo struct {
	Tau              float64 // threshold on Wass-to-Unif
	UnifMin, UnifMax float64 // Wass-to-Unif range of the pool
	DataMin, DataMax float64 // Wass-to-Data range of the pool
}

// NewWassCombo fits WassCombo to the pool's scores (NaNs ignored).
func NewWassCombo(poolUnif, poolData []float64, percentile float64) WassCombo {
	c := WassCombo{Tau: Quantile(poolUnif, percentile/100)}
	c.UnifMin, c.UnifMax = minMax(poolUnif)
	c.DataMin, c.DataMax = minMax(poolData)
	return c
}

// Score is the WassCombo score of one example.
func (c WassCombo) Score(unif, data float64) float64 {
	if !math.IsNaN(unif) && unif > c.Tau {
		span := c.UnifMax - c.UnifMin
		if span <= 0 {
			return c.DataMax
		}
		return c.DataMin + (unif-c.UnifMin)/span*(c.DataMax-c.DataMin)
	}
	return data
}

func minMax(xs []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range xs {
		if math.IsNaN(x) {
			continue
		}
		if math.IsNaN(lo) || x < lo {
			lo = x
		}
		if math.IsNaN(hi) || x > hi {
			hi = x
		}
	}
	return lo, hi
}
