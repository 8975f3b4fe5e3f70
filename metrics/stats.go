package metrics

import (
	"math"
	"slices"
)

// Quantile is the q-quantile (0 ≤ q ≤ 1) of xs with linear interpolation
// between order statistics (Hyndman and Fan 1996, definition 7, numpy's
// default). NaNs are ignored; the result is NaN when nothing is left.
func Quantile(xs []float64, q float64) float64 {
	s := sortedFinite(xs)
	return quantileSorted(s, q)
}

func sortedFinite(xs []float64) []float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return s
}

func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	if lo < 0 {
		return s[0]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

// Mean is the mean of xs, NaNs ignored; NaN when nothing is left.
func Mean(xs []float64) float64 {
	var s float64
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// Dist summarises a metric's values: count (NaNs left out), mean and
// quantiles.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P05  float64 `json:"p05"`
	P25  float64 `json:"p25"`
	P50  float64 `json:"p50"`
	P75  float64 `json:"p75"`
	P95  float64 `json:"p95"`
}

// Describe summarises xs; ok is false when xs holds no number.
func Describe(xs []float64) (d Dist, ok bool) {
	s := sortedFinite(xs)
	if len(s) == 0 {
		return Dist{}, false
	}
	return Dist{
		N: len(s), Mean: Mean(s),
		P05: quantileSorted(s, 0.05), P25: quantileSorted(s, 0.25), P50: quantileSorted(s, 0.5),
		P75: quantileSorted(s, 0.75), P95: quantileSorted(s, 0.95),
	}, true
}

// AUROC is the area under the ROC curve of score as a detector of the
// positive labels, higher scores meaning "more likely positive": the
// probability that a random positive outscores a random negative, ties
// counting one half (the Mann–Whitney U statistic, Hanley and McNeil 1982).
// Pairs with a NaN score are left out. NaN without both classes.
func AUROC(scores []float64, labels []bool) float64 {
	pos, neg := split(scores, labels)
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	slices.Sort(neg)
	var u float64
	for _, p := range pos {
		below, _ := slices.BinarySearch(neg, p) // negatives < p
		upTo := below
		for upTo < len(neg) && neg[upTo] == p {
			upTo++
		}
		u += float64(below) + 0.5*float64(upTo-below)
	}
	return u / float64(len(pos)) / float64(len(neg))
}

// FPRAtTPR is the false-positive rate of the detector "score ≥ θ" at the
// highest threshold θ (one of the scores) whose true-positive rate reaches
// tpr, e.g. 0.9 for FPR@90%TPR. Pairs with a NaN score are left out. NaN
// without both classes.
func FPRAtTPR(scores []float64, labels []bool, tpr float64) float64 {
	pos, neg := split(scores, labels)
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	slices.Sort(pos)
	slices.Sort(neg)
	// The k highest positives must be caught: θ is the k-th highest one.
	k := int(math.Ceil(tpr*float64(len(pos)) - 1e-9))
	k = min(max(k, 1), len(pos))
	theta := pos[len(pos)-k]
	at, _ := slices.BinarySearch(neg, theta) // negatives < θ
	return float64(len(neg)-at) / float64(len(neg))
}

func split(scores []float64, labels []bool) (pos, neg []float64) {
	for i, s := range scores {
		if i >= len(labels) || math.IsNaN(s) {
			continue
		}
		if labels[i] {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	return pos, neg
}
