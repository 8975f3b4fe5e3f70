package metrics

import (
	"strings"
	"unicode/utf8"
)

// chrfOrder is chrF's character n-gram order; chrfBeta weighs recall β
// times as much as precision (Popović 2015, "chrF: character n-gram F-score
// for automatic MT evaluation", WMT; β = 2 per Popović 2016).
const (
	chrfOrder = 6
	chrfBeta  = 2
)

// ChrFStats are chrF's sufficient statistics: per order n = 1…6, the
// hypothesis, reference and matching character n-gram counts. Sums over
// sentences make a corpus.
type ChrFStats struct {
	Hyp, Ref, Match [chrfOrder]int
}

// Add accumulates o into s.
func (s *ChrFStats) Add(o ChrFStats) {
	for n := range chrfOrder {
		s.Hyp[n] += o.Hyp[n]
		s.Ref[n] += o.Ref[n]
		s.Match[n] += o.Match[n]
	}
}

// ChrFStatistics counts character n-grams of hyp and ref with all
// whitespace removed, as sacreBLEU's CHRF does (word order 0). Like
// sacreBLEU, an order the reference has no n-gram of counts no hypothesis
// n-grams either.
func ChrFStatistics(hyp, ref string) ChrFStats {
	h := newChars(strings.Join(pyFields(hyp), ""))
	r := newChars(strings.Join(pyFields(ref), ""))
	var st ChrFStats
	for n := 1; n <= chrfOrder; n++ {
		refCounts := r.ngrams(n)
		hypCounts := h.ngrams(n)
		hypTotal, match, refTotal := 0, 0, 0
		for g, c := range hypCounts {
			hypTotal += c
			match += min(c, refCounts[g])
		}
		for _, c := range refCounts {
			refTotal += c
		}
		if refTotal > 0 {
			st.Hyp[n-1] = hypTotal
		}
		st.Ref[n-1] = refTotal
		st.Match[n-1] = match
	}
	return st
}

// chars is a string with the byte offset of each character and its length
// last, so that a character n-gram is a substring of it: counting n-grams
// then allocates the maps only.
type chars struct {
	s  string
	at []int
}

func newChars(s string) chars {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // each invalid byte a U+FFFD character
	}
	at := make([]int, 0, len(s)+1)
	for i := range s {
		at = append(at, i)
	}
	return chars{s: s, at: append(at, len(s))}
}

func (c chars) ngrams(n int) map[string]int {
	k := len(c.at) - 1
	out := make(map[string]int, max(k-n+1, 0))
	for i := 0; i+n <= k; i++ {
		out[c.s[c.at[i]:c.at[i+n]]]++
	}
	return out
}

// Score is chrF in [0, 100]: precision and recall averaged over the orders
// both sides have n-grams of (sacreBLEU's default effective-order rule, no
// epsilon smoothing), then combined as F_β.
func (s ChrFStats) Score() float64 {
	var avgP, avgR float64
	eff := 0
	for n := range chrfOrder {
		if s.Hyp[n] > 0 && s.Ref[n] > 0 {
			avgP += float64(s.Match[n]) / float64(s.Hyp[n])
			avgR += float64(s.Match[n]) / float64(s.Ref[n])
			eff++
		}
	}
	if eff == 0 {
		return 0
	}
	avgP /= float64(eff)
	avgR /= float64(eff)
	if avgP+avgR == 0 {
		return 0
	}
	b2 := float64(chrfBeta * chrfBeta)
	return 100 * (1 + b2) * avgP * avgR / (b2*avgP + avgR)
}

// SentenceChrF is sacreBLEU's sentence_chrf(hyp, [ref]) (chrF2).
func SentenceChrF(hyp, ref string) float64 { return ChrFStatistics(hyp, ref).Score() }

// CorpusChrF is sacreBLEU's corpus_chrf(hyps, [refs]): statistics summed
// over the pairs. Pairs beyond the shorter slice are ignored.
func CorpusChrF(hyps, refs []string) float64 {
	var s ChrFStats
	for i := range min(len(hyps), len(refs)) {
		s.Add(ChrFStatistics(hyps[i], refs[i]))
	}
	return s.Score()
}
