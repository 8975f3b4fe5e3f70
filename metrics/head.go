package metrics

import "math"

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
func GuidedPrior(rows, cols int, g float64) []float64 {
	w := make([]float64, rows*cols)
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
	if len(heads) < 2 || heads[0].Rows == 0 {
		return math.NaN()
	}
	r, c := heads[0].Rows, heads[0].Cols
	// JS(P‖Q) = ½Σ(p ln p + q ln q) − Σ m ln m with m = (p+q)/2, so each
	// head's Σ p ln p is computed once and each pair needs one log per
	// element instead of two.
	plogp := make([]float64, len(heads))
	for i, h := range heads {
		if h.Rows != r || h.Cols != c {
			return math.NaN()
		}
		for _, a := range h.Data {
			if a > 0 {
				x := float64(a)
				plogp[i] += x * fastLog(x)
			}
		}
	}
	var sum float64
	pairs := 0
	for a := range heads {
		for b := a + 1; b < len(heads); b++ {
			var mlogm float64
			q := heads[b].Data
			for i, x := range heads[a].Data {
				if m := (float64(x) + float64(q[i])) / 2; m > 0 {
					mlogm += m * fastLog(m)
				}
			}
			sum += (plogp[a]+plogp[b])/2 - mlogm
			pairs++
		}
	}
	return max(sum/float64(pairs)/float64(r), 0)
}

// fastLog is ln x for x > 0, within about 1e-10 relative error of math.Log
// and several times faster: the head metrics take a log of every weight,
// and of every pair of heads' weights. It splits x = 2^e·m with m in
// [√½, √2) and sums ln m = 2 atanh((m−1)/(m+1)) to the s¹¹ term.
func fastLog(x float64) float64 {
	const minNormal = 0x1p-1022
	if x < minNormal || math.IsInf(x, 1) || math.IsNaN(x) {
		return math.Log(x)
	}
	bits := math.Float64bits(x)
	e := float64(int((bits>>52)&0x7ff) - 1023)
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52)
	if m > math.Sqrt2 {
		m /= 2
		e++
	}
	s := (m - 1) / (m + 1)
	s2 := s * s
	return e*math.Ln2 + 2*s*(1+s2*(1.0/3+s2*(1.0/5+s2*(1.0/7+s2*(1.0/9+s2*(1.0/11))))))
}

// MeanHeads returns the element-wise mean of heads sharing one shape (the
// head-averaged attention of a layer), or a zero-sized Matrix when heads is
// empty or the shapes differ.
func MeanHeads(heads ...Matrix) Matrix {
	if len(heads) == 0 {
		return Matrix{}
	}
	out := NewMatrix(heads[0].Rows, heads[0].Cols)
	sum := make([]float64, len(out.Data))
	for _, h := range heads {
		if h.Rows != out.Rows || h.Cols != out.Cols {
			return Matrix{}
		}
		for i, a := range h.Data {
			sum[i] += float64(a)
		}
	}
	for i, s := range sum {
		out.Data[i] = float32(s / float64(len(heads)))
	}
	return out
}
