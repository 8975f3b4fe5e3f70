package metrics

import (
	"maps"
	"math"
	"slices"
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
func PieceWords(pieces []string) []int { return pieceWords(make([]int, 0, len(pieces)), pieces) }

// pieceWords is PieceWords appending to dst[:0].
func pieceWords(dst []int, pieces []string) []int {
	out := dst[:0]
	word, content := 0, false
	for _, p := range pieces {
		rest := strings.TrimLeft(p, wordBoundary)
		if rest != p && content {
			word++
			content = false
		}
		if rest != "" {
			content = true
		}
		out = append(out, word)
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
	var h hardLinker
	h.reset(srcPieces, tgtPieces)
	return slices.Clone(h.links(m))
}

// hardLinker computes HardLinks for every head of one pass: the pieces'
// word maps are built once per pass and the buffers reused, where the 48
// cross heads of the reference model would otherwise allocate them 48 times.
type hardLinker struct {
	src, tgt   int   // piece counts the matrices must match
	sw, tw     []int // word of each piece, EOS left out
	nSrc, nTgt int
	words      []float64 // target word × source word mass
	out        []Link
}

// reset prepares h for one pass's pieces.
func (h *hardLinker) reset(srcPieces, tgtPieces []string) {
	h.src, h.tgt = len(srcPieces), len(tgtPieces)
	if h.src < 2 || h.tgt < 2 {
		return
	}
	h.sw = pieceWords(h.sw, srcPieces[:h.src-1])
	h.tw = pieceWords(h.tw, tgtPieces[:h.tgt-1])
	h.nSrc, h.nTgt = h.sw[len(h.sw)-1]+1, h.tw[len(h.tw)-1]+1
}

// links returns HardLinks of m in a buffer the next call reuses, or nil.
func (h *hardLinker) links(m Matrix) []Link {
	if m.Rows != h.tgt || m.Cols != h.src || m.Rows < 2 || m.Cols < 2 {
		return nil
	}
	nSrc := h.nSrc
	// Averaging rows does not move the argmax, so summing them is enough.
	h.words = slices.Grow(h.words[:0], h.nTgt*nSrc)[:h.nTgt*nSrc]
	clear(h.words)
	for t, w := range h.tw {
		row := m.Row(t)
		for j, s := range h.sw {
			h.words[w*nSrc+s] += float64(row[j])
		}
	}
	h.out = h.out[:0]
	for w := range h.nTgt {
		ws := h.words[w*nSrc : (w+1)*nSrc]
		best := 0
		for s := 1; s < nSrc; s++ {
			if ws[s] > ws[best] {
				best = s
			}
		}
		h.out = append(h.out, Link{Src: best, Tgt: w})
	}
	return h.out
}

// AER is the alignment error rate of links against gold (Och and Ney 2003,
// "A Systematic Comparison of Various Statistical Alignment Models"):
// 1 − (|A∩S| + |A∩P|)/(|A| + |S|), with P the possible links, sure ones
// included. 0 is perfect. NaN when both A and S are empty.
func AER(links []Link, gold Alignment) float64 {
	a := make(map[Link]bool, len(links))
	for _, l := range links {
		a[l] = true
	}
	return newGoldSets(gold).aer(slices.Collect(maps.Keys(a)))
}

// goldSets is a gold alignment as sets, built once per pass and shared by
// the AER of every head.
type goldSets struct {
	sure, possible map[Link]bool
}

func newGoldSets(gold Alignment) goldSets {
	g := goldSets{sure: make(map[Link]bool, len(gold.Sure)), possible: make(map[Link]bool, len(gold.Sure)+len(gold.Possible))}
	for _, l := range gold.Sure {
		g.sure[l] = true
		g.possible[l] = true
	}
	for _, l := range gold.Possible {
		g.possible[l] = true
	}
	return g
}

// aer is AER of links that are distinct, as HardLinks' are (one per target
// word).
func (g goldSets) aer(links []Link) float64 {
	if len(links)+len(g.sure) == 0 {
		return math.NaN()
	}
	as, ap := 0, 0
	for _, l := range links {
		if g.sure[l] {
			as++
		}
		if g.possible[l] {
			ap++
		}
	}
	return 1 - float64(as+ap)/float64(len(links)+len(g.sure))
}
