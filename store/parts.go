package store

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]*$`)

func checkPrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("part prefix %q: use letters, digits and '_' only", p)
	}
	return nil
}

// partName is stem-00007.parquet, or stem-PREFIX-00007.parquet; sub-part
// j ≥ 1 of part 7 is stem-00007.j.parquet (stem-PREFIX-00007.j.parquet).
func partName(stem, prefix string, n, sub int) string {
	name := fmt.Sprintf("%s-%05d", stem, n)
	if prefix != "" {
		name = fmt.Sprintf("%s-%s-%05d", stem, prefix, n)
	}
	if sub > 0 {
		name += fmt.Sprintf(".%d", sub)
	}
	return name + ".parquet"
}

// ShardPrefix is the part prefix for shard i of n: "s003" for 3 of 120. Its
// width grows with n, so the shards' parts sort by shard.
func ShardPrefix(i, n int) string {
	width := max(3, len(strconv.Itoa(n-1)))
	return fmt.Sprintf("s%0*d", width, i)
}

// Parts lists the files of one kind (stem "attention", "examples", …) under
// path in read order: stem.parquet first, then unprefixed parts by number
// and sub-part, then prefixed parts by prefix, number and sub-part.
// Temporary files of unfinished writers (".attention-00000.parquet.tmp-…")
// are never listed. If path is a file, it is the only part. It is an error
// to find none.
func Parts(path, stem string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(stem) + `(?:-(?:([A-Za-z0-9_]+)-)?(\d+)(?:\.(\d+))?)?\.parquet$`)
	type part struct {
		name, prefix string
		whole        bool
		n, sub       int
	}
	var parts []part
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		p := part{name: e.Name(), prefix: m[1], whole: m[2] == ""}
		if !p.whole {
			if p.n, err = strconv.Atoi(m[2]); err != nil {
				return nil, fmt.Errorf("%s: part number: %w", filepath.Join(path, e.Name()), err)
			}
			if m[3] != "" {
				if p.sub, err = strconv.Atoi(m[3]); err != nil {
					return nil, fmt.Errorf("%s: sub-part number: %w", filepath.Join(path, e.Name()), err)
				}
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s: no %s.parquet nor %s-*.parquet parts", path, stem, stem)
	}
	slices.SortFunc(parts, func(a, b part) int {
		if a.whole != b.whole {
			if a.whole {
				return -1
			}
			return 1
		}
		return compareKeys(strings.Compare(a.prefix, b.prefix), cmp.Compare(a.n, b.n), cmp.Compare(a.sub, b.sub))
	})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = filepath.Join(path, p.name)
	}
	return out, nil
}
