package metrics

import (
	"math"
	"regexp"
	"strings"
	"unicode"
)

// The formulas below follow sacreBLEU 2.x (Post 2018, "A Call for Clarity in
// Reporting BLEU Scores", WMT; github.com/mjpost/sacrebleu, metrics/bleu.py,
// metrics/chrf.py, tokenizers/tokenizer_13a.py) exactly, with one
// reference per hypothesis; metrics/testdata/sacrebleu_fixture.json, made by
// sacreBLEU itself, checks them to 0.01.

// bleuOrder is BLEU's maximum n-gram order.
const bleuOrder = 4

// BLEUStats are BLEU's sufficient statistics: sums over sentences make a
// corpus.
type BLEUStats struct {
	SysLen, RefLen int
	Correct        [bleuOrder]int
	Total          [bleuOrder]int
}

// Add accumulates o into s.
func (s *BLEUStats) Add(o BLEUStats) {
	s.SysLen += o.SysLen
	s.RefLen += o.RefLen
	for n := range bleuOrder {
		s.Correct[n] += o.Correct[n]
		s.Total[n] += o.Total[n]
	}
}

// BLEUStatistics tokenises hyp and ref with the 13a tokeniser and counts
// clipped n-gram matches (Papineni et al. 2002, "BLEU: a Method for
// Automatic Evaluation of Machine Translation").
func BLEUStatistics(hyp, ref string) BLEUStats {
	h := newTokens(Tokenize13a(strings.TrimRightFunc(hyp, pyIsSpace)))
	r := newTokens(Tokenize13a(strings.TrimRightFunc(ref, pyIsSpace)))
	st := BLEUStats{SysLen: h.len(), RefLen: r.len()}
	for n := 1; n <= bleuOrder; n++ {
		refCounts := r.ngrams(n)
		for g, c := range h.ngrams(n) {
			st.Total[n-1] += c
			st.Correct[n-1] += min(c, refCounts[g])
		}
	}
	return st
}

// tokens is a Tokenize13a line with each token's byte span. Its tokens are
// separated by single spaces, so an n-gram joined by spaces is a substring
// of it: counting n-grams then allocates the maps only.
type tokens struct {
	line       string
	start, end []int
}

func newTokens(line string) tokens {
	t := tokens{line: line}
	for i := 0; i < len(line); {
		j := strings.IndexByte(line[i:], ' ')
		if j < 0 {
			j = len(line) - i
		}
		t.start, t.end = append(t.start, i), append(t.end, i+j)
		i += j + 1
	}
	return t
}

func (t tokens) len() int { return len(t.start) }

func (t tokens) ngrams(n int) map[string]int {
	out := make(map[string]int, max(t.len()-n+1, 0))
	for i := 0; i+n <= t.len(); i++ {
		out[t.line[t.start[i]:t.end[i+n-1]]]++
	}
	return out
}

// Score is BLEU in [0, 100] from the statistics with sacreBLEU's "exp"
// smoothing (NIST mteval-v13a: the k-th order with no match counts as
// 1/(2^k · total)). effectiveOrder averages only the orders the hypothesis
// has n-grams of, as sacreBLEU does for sentence BLEU.
func (s BLEUStats) Score(effectiveOrder bool) float64 {
	bp := 1.0
	if s.SysLen < s.RefLen {
		bp = 0
		if s.SysLen > 0 {
			bp = math.Exp(1 - float64(s.RefLen)/float64(s.SysLen))
		}
	}
	anyCorrect := false
	for _, c := range s.Correct {
		anyCorrect = anyCorrect || c > 0
	}
	if !anyCorrect {
		return 0
	}
	var prec [bleuOrder]float64
	smooth := 1.0
	eff := bleuOrder
	for n := range bleuOrder {
		if s.Total[n] == 0 {
			break
		}
		if effectiveOrder {
			eff = n + 1
		}
		if s.Correct[n] == 0 {
			smooth *= 2
			prec[n] = 100 / (smooth * float64(s.Total[n]))
		} else {
			prec[n] = 100 * float64(s.Correct[n]) / float64(s.Total[n])
		}
	}
	var logSum float64
	for _, p := range prec[:eff] {
		if p == 0 {
			logSum += -9999999999 // sacreBLEU's my_log(0)
		} else {
			logSum += math.Log(p)
		}
	}
	return bp * math.Exp(logSum/float64(eff))
}

// SentenceBLEU is sacreBLEU's sentence_bleu(hyp, [ref]): 13a tokens, exp
// smoothing, effective order.
func SentenceBLEU(hyp, ref string) float64 { return BLEUStatistics(hyp, ref).Score(true) }

// CorpusBLEU is sacreBLEU's corpus_bleu(hyps, [refs]): statistics summed
// over the pairs, exp smoothing, no effective order. Pairs beyond the
// shorter slice are ignored.
func CorpusBLEU(hyps, refs []string) float64 {
	var s BLEUStats
	for i := range min(len(hyps), len(refs)) {
		s.Add(BLEUStatistics(hyps[i], refs[i]))
	}
	return s.Score(false)
}

var (
	re13aSymbols      = regexp.MustCompile("([{-~\\[-` -&(-+:-@/])")
	re13aPeriodAfter  = regexp.MustCompile(`([^0-9])([\.,])`)
	re13aPeriodBefore = regexp.MustCompile(`([\.,])([^0-9])`)
	re13aDash         = regexp.MustCompile(`([0-9])(-)`)
)

// Tokenize13a is the 13a tokeniser of mteval-v13a.pl as sacreBLEU
// implements it: unescape a few HTML entities, split off punctuation and
// symbols, split periods and commas not between digits and dashes after a
// digit, and collapse whitespace.
func Tokenize13a(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	line = " " + line + " "
	line = re13aSymbols.ReplaceAllString(line, " ${1} ")
	line = re13aPeriodAfter.ReplaceAllString(line, "${1} ${2} ")
	line = re13aPeriodBefore.ReplaceAllString(line, " ${1} ${2}")
	line = re13aDash.ReplaceAllString(line, "${1} ${2} ")
	return strings.Join(pyFields(line), " ")
}

// pyIsSpace is Python's str.isspace for one character: Go's unicode.IsSpace
// plus the ASCII separators U+001C–U+001F, which Python's str.split() also
// splits on.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// pyFields is Python's str.split() without arguments.
func pyFields(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }
