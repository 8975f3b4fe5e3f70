package metrics

import (
	"math"
	"slices"
)

// DefaultGuidedSigma is g of the guided-attention prior used by Diagonality.
const DefaultGuidedSigma = 0.2

// Entropy is H = mean_t −Σ_j A_tj ln A_tj, in nats, with 0 ln 0 = 0.
func Entropy(m Matrix) float64 {
	if m.Rows == 0 || m.Cols == 0 {
		return math.NaN()
	}
	var sum float64
	for _, a := range m.Data {
		if a > 0 {
			x := float64(a)
			sum -= x * fastLog(x)
		}
	}
	return sum / float64(m.Rows)
}

// EntropyNorm is Entropy divided by ln n_k, the entropy of a uniform row: 1
// means every row is uniform. It is NaN when n_k ≤ 1.
func EntropyNorm(m Matrix) float64 {
	if m.Cols <= 1 {
		return math.NaN()
	}
	return Entropy(m) / math.Log(float64(m.Cols))
}

// Confidence is mean_t max_j A_tj, the average weight of each query's
// strongest key (Voita et al. 2019, "Analyzing Multi-Head Self-Attention:
// Specialized Heads Do the Heavy Lifting, the Rest Can Be Pruned").
func Confidence(m Matrix) float64 { return confidence(m, m.Cols) }

// ConfidenceNoEOS is Confidence with the last column (EOS) dropped, so a
// head parked on EOS does not look confident. NaN when n_k ≤ 1.
func ConfidenceNoEOS(m Matrix) float64 {
	if m.Cols <= 1 {
		return math.NaN()
	}
	return confidence(m, m.Cols-1)
}

func confidence(m Matrix, cols int) float64 {
	if m.Rows == 0 || cols == 0 {
		return math.NaN()
	}
	var sum float64
	for t := range m.Rows {
		row := m.Row(t)[:cols]
		best := row[0]
		for _, a := range row[1:] {
			if a > best {
				best = a
			}
		}
		sum += float64(best)
	}
	return sum / float64(m.Rows)
}

// GuidedPrior returns the guided-attention penalty W of Tachibana et al.
// 2018 ("Efficiently Trainable Text-to-Speech System Based on Deep
// Convolutional Networks with Guided Attention"), rows × cols, row-major:
// W_tj = 1 − exp(−(u_t − v_j)² / (2g²)) with u_t = (t+½)/rows and
// v_j = (j+½)/cols. All heads of one attention kind of one example share a
// shape, so callers compute W once and pass it to DiagonalityWith.
func GuidedPrior(rows, cols int, g float64) []float64 { return guidedPrior(nil, rows, cols, g) }

// guidedPrior is GuidedPrior into dst's storage when it is large enough.
func guidedPrior(dst []float64, rows, cols int, g float64) []float64 {
	w := slices.Grow(dst[:0], rows*cols)[:rows*cols]
	for t := range rows {
		u := (float64(t) + 0.5) / float64(rows)
		for j := range cols {
			d := u - (float64(j)+0.5)/float64(cols)
			w[t*cols+j] = 1 - math.Exp(-d*d/(2*g*g))
		}
	}
	return w
}

// Diagonality is 1 − mean_t Σ_j A_tj W_tj with W the guided-attention prior
// of GuidedPrior at g = DefaultGuidedSigma: 1 when all mass lies on the
// (relative-position) diagonal, lower the further it strays.
func Diagonality(m Matrix) float64 {
	return DiagonalityWith(m, GuidedPrior(m.Rows, m.Cols, DefaultGuidedSigma))
}

// DiagonalityWith is Diagonality with a precomputed prior w (GuidedPrior of
// m's shape).
func DiagonalityWith(m Matrix, w []float64) float64 {
	if m.Rows == 0 || m.Cols == 0 {
		return math.NaN()
	}
	var sum float64
	for i, a := range m.Data {
		sum += float64(a) * w[i]
	}
	return 1 - sum/float64(m.Rows)
}

// FirstMass is mean_t A_t0, the weight on the first key; LastMass is
// mean_t A_t,n_k−1, the weight on the last key (EOS for encoder and cross
// attention). Large values mark attention sinks (Clark et al. 2019, "What
// Does BERT Look At? An Analysis of BERT's Attention").
func FirstMass(m Matrix) float64 { return columnMean(m, 0) }

// LastMass: see FirstMass.
func LastMass(m Matrix) float64 { return columnMean(m, m.Cols-1) }

func columnMean(m Matrix, j int) float64 {
	if m.Rows == 0 || m.Cols == 0 {
		return math.NaN()
	}
	var sum float64
	for t := range m.Rows {
		sum += float64(m.Data[t*m.Cols+j])
	}
	return sum / float64(m.Rows)
}

// DefaultIgnSrcLambda is λ of IgnSrc.
const DefaultIgnSrcLambda = 0.2

// IgnSrc is the share of source tokens, EOS (the last column) excluded,
// whose incoming mass Σ_t A_tj is below lambda: Attn-ign-SRC of Berard et
// al. 2019 as used for hallucination detection by Guerreiro et al. 2023
// ("Looking for a Needle in a Haystack", EACL). m is a cross-attention
// matrix (usually head-averaged). NaN when there is no source token.
func IgnSrc(m Matrix, lambda float64) float64 {
	n := m.Cols - 1
	if n <= 0 {
		return math.NaN()
	}
	ignored := 0
	for j := range n {
		var in float64
		for t := range m.Rows {
			in += float64(m.Data[t*m.Cols+j])
		}
		if in < lambda {
			ignored++
		}
	}
	return float64(ignored) / float64(n)
}

// RowSumErr is max_t |Σ_j A_tj − 1|: 0 for proper softmax rows, 1 for an
// all-zero row. It flags broken masks. NaN for an empty matrix.
func RowSumErr(m Matrix) float64 {
	if m.Rows == 0 {
		return math.NaN()
	}
	var worst float64
	for t := range m.Rows {
		var s float64
		for _, a := range m.Row(t) {
			s += float64(a)
		}
		worst = max(worst, math.Abs(s-1))
	}
	return worst
}

// ZeroRows counts the rows whose weights are all exactly zero: the "black
// plot" of a fully masked query.
func ZeroRows(m Matrix) int {
	n := 0
	for t := range m.Rows {
		zero := true
		for _, a := range m.Row(t) {
			if a != 0 {
				zero = false
				break
			}
		}
		if zero {
			n++
		}
	}
	return n
}

// RepeatMass is the decoder self-attention mass from each step to earlier
// steps whose input token equals the step's own input token, averaged over
// steps: high values mean the decoder looks back at copies of what it is
// reading, the signature of repetition loops. inputs are the decoder's input
// ids row by row ([bos, y_1, …, y_n]; pass a value no token has, such as
// −1, for BOS); m is square with len(inputs) rows. NaN when m is empty or
// its shape does not match inputs.
func RepeatMass(m Matrix, inputs []int32) float64 {
	if m.Rows == 0 || m.Rows != len(inputs) || m.Cols < m.Rows {
		return math.NaN()
	}
	var sum float64
	for t := range m.Rows {
		row := m.Row(t)
		for s := range t {
			if inputs[s] == inputs[t] {
				sum += float64(row[s])
			}
		}
	}
	return sum / float64(m.Rows)
}

// HeadDiversity is the mean pairwise Jensen–Shannon divergence (natural
// log, so in [0, ln 2]) between the heads of one layer, each pair compared
// row by row and averaged over rows (Lin 1991, "Divergence measures based
// on the Shannon entropy"). 0 means every head attends alike. heads must
// share one shape; NaN with fewer than two heads or mismatched shapes.
func HeadDiversity(heads []Matrix) float64 {
	plogp := make([]float64, len(heads))
	for i, h := range heads {
		plogp[i] = sumPLogP(h.Data)
	}
	return headDiversity(heads, plogp)
}

// headDiversity is HeadDiversity given each head's Σ p ln p (scoreHead sums
// it anyway, for the entropy). JS(P‖Q) = ½Σ(p ln p + q ln q) − Σ m ln m with
// m = (p+q)/2, so each of the n(n−1)/2 pairs needs one log per weight, and
// none where both weights are 0 (masked keys).
func headDiversity(heads []Matrix, plogp []float64) float64 {
	if len(heads) < 2 || heads[0].Rows == 0 {
		return math.NaN()
	}
	r, c := heads[0].Rows, heads[0].Cols
	for _, h := range heads {
		if h.Rows != r || h.Cols != c || len(h.Data) != r*c {
			return math.NaN()
		}
	}
	var sum float64
	for a := range heads {
		p := heads[a].Data
		for b := a + 1; b < len(heads); b++ {
			sum += (plogp[a]+plogp[b])/2 - sumMLogM(p, heads[b].Data)
		}
	}
	pairs := len(heads) * (len(heads) - 1) / 2
	return max(sum/float64(pairs)/float64(r), 0)
}

// sumPLogP is Σ p ln p over the positive weights.
func sumPLogP(p []float32) float64 {
	var s float64
	for _, a := range p {
		if a > 0 {
			x := float64(a)
			s += x * fastLog(x)
		}
	}
	return s
}

// sumMLogM is Σ m ln m with m = (p+q)/2 over the weights where m > 0;
// float32 weights add exactly in float64. p and q have the same length.
func sumMLogM(p, q []float32) float64 {
	q = q[:len(p)]
	var s float64
	for i, a := range p {
		if m := (float64(a) + float64(q[i])) / 2; m > 0 {
			s += m * fastLog(m)
		}
	}
	return s
}

// logTableBits sets fastLog's table: 2^8 entries of 24 bytes stay in L1.
const logTableBits = 8

// logTable holds, for each of the 2^logTableBits leading mantissa patterns
// c = 1 + i/2^logTableBits, 1/c and ln c.
var logTable = func() (t [1 << logTableBits]struct{ inv, ln float64 }) {
	for i := range t {
		c := 1 + float64(i)/(1<<logTableBits)
		t[i].inv, t[i].ln = 1/c, math.Log(c)
	}
	return t
}()

// fastLog is ln x, within 2e-13 absolute error of math.Log (tested) and
// exact at 1 and at powers of two, about twice as fast: the head metrics
// take a log of every weight and, for head diversity, of every pair of
// heads' weights, and a JS divergence or entropy built from these logs is
// off by at most that same 2e-13 (Σ m·δ over a row whose Σ m is 1), far
// below the float32 the metrics are stored in. It splits x = 2^e·m with m
// in [1, 2), looks up c, the table point at or below m, and adds ln c to
// ln(m/c) = ln(1+r), 0 ≤ r < 2^−8, from four terms of its series (the
// fifth, r⁵/5, is below 2e-13).
func fastLog(x float64) float64 {
	if !(x >= 0x1p-1022 && x <= math.MaxFloat64) { // subnormal, ≤ 0, +Inf or NaN
		return math.Log(x)
	}
	bits := math.Float64bits(x)
	e := float64(int(bits>>52) - 1023)
	const frac = 52 - logTableBits
	t := &logTable[(bits>>frac)&(1<<logTableBits-1)]
	// m − c is exact: it keeps only the mantissa bits below the table index.
	r := math.Float64frombits(bits&(1<<frac-1)|1023<<52) - 1
	r *= t.inv
	return e*math.Ln2 + t.ln + r*(1-r*(0.5-r*(1.0/3-r*0.25)))
}

// MeanHeads returns the element-wise mean of heads sharing one shape (the
// head-averaged attention of a layer), or a zero-sized Matrix when heads is
// empty or the shapes differ.
func MeanHeads(heads ...Matrix) Matrix {
	var b headMean
	return b.of(heads)
}

// headMean is MeanHeads with its buffers kept for the next call.
type headMean struct {
	sum  []float64
	mean []float32
}

// of is MeanHeads(heads...) in b's buffers: valid until the next call.
func (b *headMean) of(heads []Matrix) Matrix {
	if len(heads) == 0 {
		return Matrix{}
	}
	r, c := heads[0].Rows, heads[0].Cols
	n := r * c
	for _, h := range heads {
		if h.Rows != r || h.Cols != c || len(h.Data) != n {
			return Matrix{}
		}
	}
	b.sum = slices.Grow(b.sum[:0], n)[:n]
	b.mean = slices.Grow(b.mean[:0], n)[:n]
	clear(b.sum)
	for _, h := range heads {
		for i, a := range h.Data {
			b.sum[i] += float64(a)
		}
	}
	for i, s := range b.sum {
		b.mean[i] = float32(s / float64(len(heads)))
	}
	return Matrix{Rows: r, Cols: c, Data: b.mean}
}
