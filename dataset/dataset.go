// Package dataset reads attnaudit's evaluation sets (../shared/SPEC.md §3):
// TSV (source<TAB>reference), JSONL ({"id", "source", "reference",
// "alignment"?, "label"?}) and plain text (one source per line), with
// optional Pharaoh gold alignments.
//
// Error contract: problems with the data are not errors. Each is recorded
// as a Problem with its file:line, and loading goes on: a line that cannot
// give an example (blank, bad UTF-8, malformed JSON, no source, too long)
// is skipped; a bad optional field (alignment, label) is dropped and its
// example kept. With Options.Strict any problem fails the load instead.
// Errors are for what stops reading altogether: a missing file, bad
// Options.
package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Format is a dataset's file format.
type Format string

// Formats. FormatAuto picks one from the file name's extension (.tsv,
// .jsonl, .txt) or, failing that, from the content: a first line starting
// with '{' is JSONL, one holding a tab is TSV, anything else plain text.
const (
	FormatAuto  Format = ""
	FormatTSV   Format = "tsv"
	FormatJSONL Format = "jsonl"
	FormatText  Format = "txt"
)

// Options control loading.
type Options struct {
	// Strict fails the load on the first problem instead of skipping it.
	Strict bool
	// Format forces a format; FormatAuto detects it.
	Format Format
	// MaxChars skips examples whose source or reference has more
	// characters (runes) than this; 0 means no limit.
	MaxChars int
	// MaxTokens skips examples whose source or reference has more tokens,
	// as CountTokens counts them, than this: the model's positions. 0 means
	// no limit. CountTokens must count what the model will see (EOS
	// included), or the caller lowers MaxTokens to match.
	MaxTokens   int
	CountTokens func(string) int
}

// Dataset is a loaded evaluation set.
type Dataset struct {
	Name     string // the path, or the name given to LoadBytes
	Hash     string // sha256 of the file's bytes, hex: identifies the data a run used
	Format   Format
	Examples []Example
	Problems []Problem // in file order
}

// Example is one usable line of a dataset.
type Example struct {
	Index        int    // 0-based position among the kept examples: the runs' example_id
	ID           string // the dataset's id, or "line-N"
	Line         int    // 1-based line in the file
	Source       string
	Reference    string
	HasReference bool
	Alignment    *Alignment // gold alignment, nil without one
	Label        *bool      // true: a known hallucination; nil without a label
}

// Problem is something wrong with one line of a file.
type Problem struct {
	File string
	Line int // 1-based; 0 for the file as a whole
	Msg  string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// ProblemsError is the error of a strict load: every problem found.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	const show = 10
	var b strings.Builder
	for i, p := range e.Problems {
		if i == show {
			fmt.Fprintf(&b, "\n(and %d more problems)", len(e.Problems)-show)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads the dataset at path.
func Load(path string, opts Options) (*Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return LoadBytes(path, data, opts)
}

// LoadBytes reads a dataset held in memory (such as the embedded demo set);
// name stands for the file in problems and chooses the format by extension.
func LoadBytes(name string, data []byte, opts Options) (*Dataset, error) {
	if opts.MaxTokens > 0 && opts.CountTokens == nil {
		return nil, fmt.Errorf("dataset %s: MaxTokens %d needs CountTokens", name, opts.MaxTokens)
	}
	if opts.MaxTokens < 0 || opts.MaxChars < 0 {
		return nil, fmt.Errorf("dataset %s: negative MaxTokens or MaxChars", name)
	}
	format, err := detectFormat(name, data, opts.Format)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	l := &loader{d: &Dataset{Name: name, Hash: hex.EncodeToString(sum[:]), Format: format}, opts: opts, ids: map[string]int{}}
	for n, line := range lines(data) {
		l.line(n, line)
	}
	if opts.Strict && len(l.d.Problems) > 0 {
		return nil, &ProblemsError{Problems: l.d.Problems}
	}
	return l.d, nil
}

func detectFormat(name string, data []byte, f Format) (Format, error) {
	switch f {
	case FormatTSV, FormatJSONL, FormatText:
		return f, nil
	case FormatAuto:
	default:
		return "", fmt.Errorf("dataset %s: unknown format %q (want tsv, jsonl or txt)", name, f)
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".tsv":
		return FormatTSV, nil
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	case ".txt":
		return FormatText, nil
	}
	for _, line := range lines(data) {
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0:
			continue
		case t[0] == '{':
			return FormatJSONL, nil
		case bytes.IndexByte(line, '\t') >= 0:
			return FormatTSV, nil
		}
		return FormatText, nil
	}
	return FormatText, nil
}

// lines yields each line with its 1-based number, without the line ending
// (\n or \r\n) and without a UTF-8 byte order mark at the start of the file.
// A final line ending does not start another line.
func lines(data []byte) func(yield func(int, []byte) bool) {
	return func(yield func(int, []byte) bool) {
		data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		for n := 1; len(data) > 0; n++ {
			line, rest, _ := bytes.Cut(data, []byte("\n"))
			data = rest
			if !yield(n, bytes.TrimSuffix(line, []byte("\r"))) {
				return
			}
		}
	}
}

type loader struct {
	d    *Dataset
	opts Options
	ids  map[string]int // id → line where it was first seen
}

func (l *loader) problem(line int, format string, args ...any) {
	l.d.Problems = append(l.d.Problems, Problem{File: l.d.Name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) line(n int, line []byte) {
	if !utf8.Valid(line) {
		l.problem(n, "invalid UTF-8 at byte %d", invalidAt(line))
		return
	}
	if len(bytes.TrimSpace(line)) == 0 {
		l.problem(n, "blank line")
		return
	}
	ex := Example{Line: n}
	var ok bool
	switch l.d.Format {
	case FormatTSV:
		ok = l.tsv(n, string(line), &ex)
	case FormatJSONL:
		ok = l.jsonl(n, line, &ex)
	default:
		ex.Source, ok = strings.TrimSpace(string(line)), true
	}
	if !ok || !l.fits(n, &ex) {
		return
	}
	if ex.ID == "" {
		ex.ID = fmt.Sprintf("line-%d", n)
	}
	if first, dup := l.ids[ex.ID]; dup {
		l.problem(n, "duplicate id %q (first on line %d)", ex.ID, first)
		return
	}
	l.ids[ex.ID] = n
	ex.Index = len(l.d.Examples)
	l.d.Examples = append(l.d.Examples, ex)
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func (l *loader) tsv(n int, line string, ex *Example) bool {
	fields := strings.Split(line, "\t")
	if len(fields) != 2 {
		l.problem(n, "%d tab-separated fields, want 2 (source<TAB>reference)", len(fields))
		return false
	}
	ex.Source, ex.Reference = strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
	if ex.Source == "" {
		l.problem(n, "empty source")
		return false
	}
	if ex.Reference == "" {
		l.problem(n, "empty reference")
		return false
	}
	ex.HasReference = true
	return true
}

// fits checks the length limits on the source and the reference.
func (l *loader) fits(n int, ex *Example) bool {
	texts := []struct{ what, s string }{{"source", ex.Source}, {"reference", ex.Reference}}
	for _, t := range texts {
		if l.opts.MaxChars > 0 {
			if c := utf8.RuneCountInString(t.s); c > l.opts.MaxChars {
				l.problem(n, "%s has %d characters, more than the limit of %d", t.what, c, l.opts.MaxChars)
				return false
			}
		}
		if l.opts.MaxTokens > 0 && t.s != "" {
			if c := l.opts.CountTokens(t.s); c > l.opts.MaxTokens {
				l.problem(n, "%s has %d tokens, more than the model's %d positions", t.what, c, l.opts.MaxTokens)
				return false
			}
		}
	}
	return true
}
