package metrics

import (
	"math"
	"strings"
)

// SeqLogprob is mean_t log p(y_t | y_<t, x) over the hypothesis tokens
// (Seq-Logprob; Guerreiro et al. 2023, "Looking for a Needle in a Haystack",
// and the HalOmi benchmark, Dale et al. 2023, where it is the strongest
// single detector). Low values are suspicious. NaN without tokens.
func SeqLogprob(logprobs []float32) float64 {
	if len(logprobs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, l := range logprobs {
		s += float64(l)
	}
	return s / float64(len(logprobs))
}

// RepNgram is the share of the hypothesis' word 3-grams (whitespace words)
// that repeat an earlier 3-gram: 1 − distinct/total. 0 for a hypothesis of
// fewer than three words; "a b a b a b" gives ½, and a repetition loop
// approaches 1.
func RepNgram(hypothesis string) float64 {
	words := strings.Fields(hypothesis)
	if len(words) < 3 {
		return 0
	}
	seen := make(map[[3]string]bool, len(words))
	total := len(words) - 2
	for i := range total {
		seen[[3]string{words[i], words[i+1], words[i+2]}] = true
	}
	return 1 - float64(len(seen))/float64(total)
}
