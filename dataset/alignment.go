package dataset

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"attnaudit/metrics"
)

// Link is one alignment link between source word Src and target word Tgt,
// 0-based over whitespace-separated words. It is metrics.Link, so a parsed
// alignment goes to AER as it is.
type Link = metrics.Link

// Alignment is a gold word alignment in the Pharaoh format: "i-j" links are
// sure, "i?j" and "ipj" possible. Possible holds only the links marked
// possible; by the AER convention (Och & Ney 2003) every sure link is also
// possible. Both lists are sorted and hold no duplicates; a link marked
// both ways is kept as sure.
type Alignment = metrics.Alignment

// ParseAlignment parses one line of Pharaoh links and checks every index
// against the word counts of the source and target sentences.
func ParseAlignment(s string, srcWords, tgtWords int) (*Alignment, error) {
	sure, possible := map[Link]bool{}, map[Link]bool{}
	for _, tok := range strings.Fields(s) {
		i := strings.IndexAny(tok, "-?p")
		if i <= 0 || i == len(tok)-1 {
			return nil, fmt.Errorf("link %q: want i-j (sure), i?j or ipj (possible)", tok)
		}
		src, err1 := strconv.Atoi(tok[:i])
		tgt, err2 := strconv.Atoi(tok[i+1:])
		if err1 != nil || err2 != nil || src < 0 || tgt < 0 {
			return nil, fmt.Errorf("link %q: want non-negative word indices", tok)
		}
		if src >= srcWords {
			return nil, fmt.Errorf("link %q: source word %d is out of range (the source has %d words)", tok, src, srcWords)
		}
		if tgt >= tgtWords {
			return nil, fmt.Errorf("link %q: target word %d is out of range (the target has %d words)", tok, tgt, tgtWords)
		}
		if l := (Link{Src: src, Tgt: tgt}); tok[i] == '-' {
			sure[l] = true
		} else {
			possible[l] = true
		}
	}
	for l := range sure {
		delete(possible, l)
	}
	return &Alignment{Sure: sortedLinks(sure), Possible: sortedLinks(possible)}, nil
}

func sortedLinks(set map[Link]bool) []Link {
	out := make([]Link, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if a.Src != b.Src {
			return a.Src - b.Src
		}
		return a.Tgt - b.Tgt
	})
	return out
}

// LoadAlignments reads a Pharaoh file for d (SPEC §3): line N holds the
// links of the pair on line N of the dataset file, over its source and
// reference words. See AddAlignments.
func (d *Dataset) LoadAlignments(path string, strict bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("alignments: %w", err)
	}
	return d.AddAlignments(path, data, strict)
}

// AddAlignments sets the Alignment of d's examples from Pharaoh lines held
// in memory. A bad line is recorded in d.Problems (its example keeps no
// alignment) or, when strict, fails the call with every problem found.
// Lines of skipped dataset lines are ignored; an empty line is a pair
// without links.
func (d *Dataset) AddAlignments(name string, data []byte, strict bool) error {
	byLine := make(map[int]*Example, len(d.Examples))
	for i := range d.Examples {
		byLine[d.Examples[i].Line] = &d.Examples[i]
	}
	var problems []Problem
	bad := func(line int, format string, args ...any) {
		problems = append(problems, Problem{File: name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	parsed := map[*Example]*Alignment{}
	last := 0
	for n, line := range lines(data) {
		last = n
		ex := byLine[n]
		if ex == nil {
			continue
		}
		if !ex.HasReference {
			bad(n, "alignment for %s, which has no reference", ex.ID)
			continue
		}
		a, err := ParseAlignment(string(line), len(strings.Fields(ex.Source)), len(strings.Fields(ex.Reference)))
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		parsed[ex] = a
	}
	if len(d.Examples) > 0 {
		if want := d.Examples[len(d.Examples)-1].Line; last < want {
			bad(0, "%d lines, but the dataset's last example is on line %d", last, want)
		}
	}
	if strict && len(problems) > 0 {
		return &ProblemsError{Problems: problems}
	}
	for ex, a := range parsed {
		ex.Alignment = a
	}
	d.Problems = append(d.Problems, problems...)
	return nil
}
