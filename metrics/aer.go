package metrics

import (
	"math"
	"strings"
)

// Link aligns source word Src with target word Tgt (0-based whitespace
// words, as in Pharaoh "i-j" files).
type Link struct{ Src, Tgt int }

// Alignment is a gold word alignment: Sure links (Pharaoh "i-j") and
// Possible-only links ("i?j" or "ipj"). Sure links count as possible too.
type Alignment struct {
	Sure, Possible []Link
}

// wordBoundary starts a word in SentencePiece pieces.
const wordBoundary = "▁"

// PieceWords maps each SentencePiece piece to the index of the whitespace
// word it belongs to. A piece starting with "▁" starts a new word; our
// tokenizer adds no dummy prefix, so the first piece starts word 0 without
// one. A piece made only of "▁" (a run of spaces) starts no word of its own:
// it joins the word that follows.
func PieceWords(pieces []string) []int {
	out := make([]int, len(pieces))
	word, content := 0, false
	for i, p := range pieces {
		rest := strings.TrimLeft(p, wordBoundary)
		if rest != p && content {
			word++
			content = false
		}
		if rest != "" {
			content = true
		}
		out[i] = word
	}
	return out
}

// HardLinks returns one link per target word: the source word with the most
// attention. m is a cross-attention matrix (one head, or heads averaged)
// with one row per target piece and one column per source piece; the last
// row and column (EOS) are left out. Rows of one target word are averaged,
// columns of one source word summed; ties go to the earlier source word. It
// returns nil when the shapes do not match the pieces.
func HardLinks(m Matrix, srcPieces, tgtPieces []string) []Link {
	if m.Rows != len(tgtPieces) || m.Cols != len(srcPieces) || m.Rows < 2 || m.Cols < 2 {
		return nil
	}
	sw := PieceWords(srcPieces[:m.Cols-1])
	tw := PieceWords(tgtPieces[:m.Rows-1])
	nSrc, nTgt := sw[len(sw)-1]+1, tw[len(tw)-1]+1
	// Averaging rows does not move the argmax, so summing them is enough.
	words := make([]float64, nTgt*nSrc)
	for t, w := range tw {
		row := m.Row(t)
		for j, s := range sw {
			words[w*nSrc+s] += float64(row[j])
		}
	}
	links := make([]Link, nTgt)
	for w := range nTgt {
		best := 0
		for s := 1; s < nSrc; s++ {
			if words[w*nSrc+s] > words[w*nSrc+best] {
				best = s
			}
		}
		links[w] = Link{Src: best, Tgt: w}
	}
	return links
}

// AER is the alignment error rate of links against gold (Och and Ney 2003,
// "A Systematic Comparison of Various Statistical Alignment Models"):
// 1 − (|A∩S| + |A∩P|)/(|A| + |S|), with P the possible links, sure ones
// included. 0 is perfect. NaN when both A and S are empty.
func AER(links []Link, gold Alignment) float64 {
	sure := make(map[Link]bool, len(gold.Sure))
	possible := make(map[Link]bool, len(gold.Sure)+len(gold.Possible))
	for _, l := range gold.Sure {
		sure[l] = true
		possible[l] = true
	}
	for _, l := range gold.Possible {
		possible[l] = true
	}
	a := make(map[Link]bool, len(links))
	for _, l := range links {
		a[l] = true
	}
	if len(a)+len(sure) == 0 {
		return math.NaN()
	}
	as, ap := 0, 0
	for l := range a {
		if sure[l] {
			as++
		}
		if possible[l] {
			ap++
		}
	}
	return 1 - float64(as+ap)/float64(len(a)+len(sure))
}
