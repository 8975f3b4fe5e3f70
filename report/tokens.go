package report

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokenLabel is how a SentencePiece piece reads on a page and in a figure.
type tokenLabel struct {
	// Text is what is drawn: the piece without its word marker ▁, a
	// byte-fallback piece as the character its run of bytes spells, a
	// piece that continues a word after "·".
	Text string
	// Title says what Text stands for, for tooltips: the piece as
	// stored, whether it starts a word, which byte of a character it is.
	Title string
}

// continueMark prefixes a piece that continues the word before it. Marking
// continuations rather than word starts keeps most labels bare (on a
// tokenizer without a dummy prefix the first word has no ▁ either), and
// "·" is in every font the figures use.
const continueMark = "·"

// tokenLabels makes pieces readable (SentencePiece conventions,
// DEVELOPERS.md): ▁ marks a word start and is dropped; a word that goes on
// in the next piece shows that piece as "·piece"; a run of byte-fallback
// pieces (<0xEC><0x9E><0x8C>) that spells valid UTF-8 shows each byte as
// the character it belongs to, numbered when the character takes several
// (잌[1/3], 잌[2/3], 잌[3/3]); a run that does not decode keeps the raw
// pieces. Special pieces (<s>, </s>, <unk>, <pad>) are kept as they are and
// end a word. The figures and the explorer both label tokens with this.
func tokenLabels(pieces []string) []tokenLabel {
	out := make([]tokenLabel, len(pieces))
	wordOpen := false // a word is going on, so a bare piece continues it
	for i := 0; i < len(pieces); {
		p := pieces[i]
		if _, ok := byteOf(p); ok {
			j := i
			var run []byte
			for ; j < len(pieces); j++ {
				b, ok := byteOf(pieces[j])
				if !ok {
					break
				}
				run = append(run, b)
			}
			wordOpen = labelBytes(out[i:j], pieces[i:j], run, wordOpen)
			i = j
			continue
		}
		switch {
		case isSpecial(p):
			out[i] = tokenLabel{Text: p, Title: p + " (special token)"}
			wordOpen = false
		case p == "▁":
			out[i] = tokenLabel{Text: p, Title: "▁ (a space)"}
			wordOpen = false
		case strings.HasPrefix(p, "▁"):
			out[i] = tokenLabel{Text: strings.TrimPrefix(p, "▁"), Title: p + " (starts a word)"}
			wordOpen = true
		case wordOpen:
			out[i] = tokenLabel{Text: continueMark + p, Title: p + " (continues the word)"}
		default:
			out[i] = tokenLabel{Text: p, Title: p + " (starts a word)"}
			wordOpen = true
		}
		i++
	}
	return out
}

// labelBytes labels a run of byte-fallback pieces and returns whether a
// word is open after it.
func labelBytes(out []tokenLabel, pieces []string, run []byte, wordOpen bool) bool {
	k := 0
	for k < len(run) {
		r, size := utf8.DecodeRune(run[k:])
		if r == utf8.RuneError && size <= 1 {
			out[k] = tokenLabel{Text: pieces[k], Title: pieces[k] + " (a byte that spells no character here)"}
			k++
			continue
		}
		ch := printable(r)
		mark := ""
		if wordOpen {
			mark = continueMark
		}
		for b := range size {
			t := tokenLabel{Text: mark + ch, Title: fmt.Sprintf("%s: byte of %q (U+%04X)", pieces[k+b], string(r), r)}
			if size > 1 {
				t.Text = fmt.Sprintf("%s%s[%d/%d]", mark, ch, b+1, size)
				t.Title = fmt.Sprintf("%s: byte %d of %d of %q (U+%04X)", pieces[k+b], b+1, size, string(r), r)
			}
			out[k+b] = t
		}
		wordOpen = r != ' '
		k += size
	}
	return wordOpen
}

// printable shows a control character or space as its code point.
func printable(r rune) string {
	if r < 0x20 || r == 0x7f || r == ' ' {
		return fmt.Sprintf("U+%04X", r)
	}
	return string(r)
}

// byteOf reads a byte-fallback piece, "<0xEC>".
func byteOf(p string) (byte, bool) {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(p[3:5], 16, 8)
	return byte(v), err == nil
}

func isSpecial(p string) bool {
	return len(p) > 2 && p[0] == '<' && p[len(p)-1] == '>' && !strings.ContainsAny(p[1:len(p)-1], "<> ")
}

// labelTexts is the drawn text of each piece.
func labelTexts(pieces []string) []string {
	ls := tokenLabels(pieces)
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}
