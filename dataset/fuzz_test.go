package dataset

import (
	"strings"
	"testing"
)

// FuzzLoadBytes loads arbitrary bytes as each of the three formats: it
// must return a dataset or an error, never panic, and a dataset's examples
// are numbered in order with their alignments inside their sentences.
// Seeds: testdata/fuzz/FuzzLoadBytes and the f.Add calls.
func FuzzLoadBytes(f *testing.F) {
	f.Add(uint8(0), []byte("안녕하세요\tHello\n오늘\tToday\t0-0\n"))
	f.Add(uint8(1), []byte(`{"id": "a", "source": "오늘 날씨가 좋습니다", "reference": "The weather is nice today", "alignment": "0-4 1?0 1-1"}`+"\n"))
	f.Add(uint8(1), []byte(`{"source": "x", "label": true}`+"\n{bad json\n"))
	f.Add(uint8(2), []byte("한 줄\n\n두 줄\n"))
	f.Add(uint8(0), []byte("\ufeffsrc\tref\textra\tmore\n\t\n"))
	exts := []string{"data.tsv", "data.jsonl", "data.txt"}
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		name := exts[int(format)%len(exts)]
		for _, opts := range []Options{{}, {Strict: true}, {MaxTokens: 8, CountTokens: func(s string) int { return len(strings.Fields(s)) + 1 }}} {
			ds, err := LoadBytes(name, data, opts)
			if err != nil {
				continue
			}
			for i, ex := range ds.Examples {
				if ex.Index != i {
					t.Fatalf("%s: example %d has Index %d", name, i, ex.Index)
				}
				if a := ex.Alignment; a != nil {
					src, tgt := len(strings.Fields(ex.Source)), len(strings.Fields(ex.Reference))
					for _, l := range append(append([]Link(nil), a.Sure...), a.Possible...) {
						if l.Src < 0 || l.Src >= src || l.Tgt < 0 || l.Tgt >= tgt {
							t.Fatalf("%s: example %d: link %v outside %d×%d words", name, i, l, src, tgt)
						}
					}
				}
			}
		}
	})
}

// FuzzParseAlignment parses arbitrary Pharaoh lines: an error or links
// inside the sentences, sorted and without duplicates.
func FuzzParseAlignment(f *testing.F) {
	f.Add("0-0 1-1 2-2 2?3 2-4", uint8(3), uint8(5))
	f.Add("0p1 1-0 1-0 1?0", uint8(2), uint8(2))
	f.Add("-1-0 0- x-y 99999999999999999999-0", uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, s string, src, tgt uint8) {
		a, err := ParseAlignment(s, int(src), int(tgt))
		if err != nil {
			return
		}
		for _, links := range [][]Link{a.Sure, a.Possible} {
			for i, l := range links {
				if l.Src < 0 || l.Src >= int(src) || l.Tgt < 0 || l.Tgt >= int(tgt) {
					t.Fatalf("%q: link %v outside %d×%d words", s, l, src, tgt)
				}
				if i > 0 && !(links[i-1].Src < l.Src || (links[i-1].Src == l.Src && links[i-1].Tgt < l.Tgt)) {
					t.Fatalf("%q: links %v not sorted without duplicates", s, links)
				}
			}
		}
	})
}
