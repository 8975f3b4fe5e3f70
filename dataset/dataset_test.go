package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func problemStrings(ps []Problem) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func boolp(b bool) *bool { return &b }

func TestLoadBytes(t *testing.T) {
	words := func(s string) int { return len(strings.Fields(s)) + 1 } // + EOS
	tests := []struct {
		name     string
		file     string
		data     string
		opts     Options
		format   Format
		want     []Example
		problems []string
	}{
		{
			name: "tsv", file: "dev.tsv", format: FormatTSV,
			data: "나는 학생이다.\tI am a student.\r\n\n비가 온다\tIt rains.\n하나\n하나\t둘\t셋\n\tno source\nno reference\t \n",
			want: []Example{
				{Index: 0, ID: "line-1", Line: 1, Source: "나는 학생이다.", Reference: "I am a student.", HasReference: true},
				{Index: 1, ID: "line-3", Line: 3, Source: "비가 온다", Reference: "It rains.", HasReference: true},
			},
			problems: []string{
				"dev.tsv:2: blank line",
				"dev.tsv:4: 1 tab-separated fields, want 2 (source<TAB>reference)",
				"dev.tsv:5: 3 tab-separated fields, want 2 (source<TAB>reference)",
				"dev.tsv:6: empty source",
				"dev.tsv:7: empty reference",
			},
		},
		{
			name: "plain text with BOM and bad UTF-8", file: "src.txt", format: FormatText,
			data: "\xef\xbb\xbf안녕하세요\nab\xffcd\n  \n  좋은 아침  \n",
			want: []Example{
				{Index: 0, ID: "line-1", Line: 1, Source: "안녕하세요"},
				{Index: 1, ID: "line-4", Line: 4, Source: "좋은 아침"},
			},
			problems: []string{"src.txt:2: invalid UTF-8 at byte 2", "src.txt:3: blank line"},
		},
		{
			name: "jsonl", file: "dev.jsonl", format: FormatJSONL,
			data: `{"id":"a","source":"고양이 가 잔다","reference":"the cat sleeps","alignment":"0-1 1?1 2-2 0p0 0-1","label":false}
{"id":7,"source":"개","reference":"dog","label":1}
{"source":"새"}
{"id":"b","source":"x","reference":"y"
{"id":"c","reference":"z"}
{"id":"d","source":3}
{"id":"a","source":"중복","reference":"dup"}
{"id":"e","source":"말","reference":"horse","alignment":"0-3"}
{"id":"f","source":"소","reference":"cow","label":"yes"}
{"id":"g","source":"닭","alignment":"0-0"}
[1,2]
null
{"id":"h","source":"   ","reference":"r"}
`,
			want: []Example{
				{Index: 0, ID: "a", Line: 1, Source: "고양이 가 잔다", Reference: "the cat sleeps", HasReference: true,
					Alignment: &Alignment{Sure: []Link{{Src: 0, Tgt: 1}, {Src: 2, Tgt: 2}}, Possible: []Link{{Src: 0, Tgt: 0}, {Src: 1, Tgt: 1}}}, Label: boolp(false)},
				{Index: 1, ID: "7", Line: 2, Source: "개", Reference: "dog", HasReference: true, Label: boolp(true)},
				{Index: 2, ID: "line-3", Line: 3, Source: "새"},
				{Index: 3, ID: "e", Line: 8, Source: "말", Reference: "horse", HasReference: true},
				{Index: 4, ID: "f", Line: 9, Source: "소", Reference: "cow", HasReference: true},
				{Index: 5, ID: "g", Line: 10, Source: "닭"},
			},
			problems: []string{
				"dev.jsonl:4: malformed JSON: unexpected end of JSON input",
				`dev.jsonl:5: missing field "source"`,
				`dev.jsonl:6: field "source": want a string`,
				`dev.jsonl:7: duplicate id "a" (first on line 1)`,
				`dev.jsonl:8: alignment: link "0-3": target word 3 is out of range (the target has 1 words)`,
				`dev.jsonl:9: field "label": want true, false, 0 or 1, not "yes": label dropped`,
				`dev.jsonl:10: field "alignment" without a reference: alignment dropped`,
				"dev.jsonl:11: malformed JSON: json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
				"dev.jsonl:12: malformed JSON: want an object, not null",
				"dev.jsonl:13: empty source",
			},
		},
		{
			name: "format from content: jsonl", file: "demo", format: FormatJSONL,
			data:     "\n{\"source\":\"하나\",\"reference\":\"one\"}\n",
			want:     []Example{{Index: 0, ID: "line-2", Line: 2, Source: "하나", Reference: "one", HasReference: true}},
			problems: []string{"demo:1: blank line"},
		},
		{
			name: "format from content: tsv", file: "stdin", format: FormatTSV,
			data: "하나\tone\n",
			want: []Example{{Index: 0, ID: "line-1", Line: 1, Source: "하나", Reference: "one", HasReference: true}},
		},
		{
			name: "forced format", file: "data.tsv", format: FormatText, opts: Options{Format: FormatText},
			data: "a\tb\n",
			want: []Example{{Index: 0, ID: "line-1", Line: 1, Source: "a\tb"}},
		},
		{
			name: "length limits", file: "dev.tsv", format: FormatTSV,
			opts: Options{MaxChars: 12, MaxTokens: 3, CountTokens: words},
			data: "하나 둘\tone two\n하나 둘 셋\tone\n하나\ta b c d\n열두글자를넘는아주긴문장입니다\tx\n",
			want: []Example{{Index: 0, ID: "line-1", Line: 1, Source: "하나 둘", Reference: "one two", HasReference: true}},
			problems: []string{
				"dev.tsv:2: source has 4 tokens, more than the model's 3 positions",
				"dev.tsv:3: reference has 5 tokens, more than the model's 3 positions",
				"dev.tsv:4: source has 15 characters, more than the limit of 12",
			},
		},
		{name: "empty file", file: "empty.txt", format: FormatText, data: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := LoadBytes(tt.file, []byte(tt.data), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != tt.format {
				t.Errorf("format %q, want %q", d.Format, tt.format)
			}
			if !reflect.DeepEqual(d.Examples, tt.want) {
				t.Errorf("examples:\n got %+v\nwant %+v", d.Examples, tt.want)
			}
			want := tt.problems
			if want == nil {
				want = []string{}
			}
			if got := problemStrings(d.Problems); !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
			sum := sha256.Sum256([]byte(tt.data))
			if d.Hash != hex.EncodeToString(sum[:]) || d.Name != tt.file {
				t.Errorf("name %q hash %s", d.Name, d.Hash)
			}
		})
	}
}

func TestStrict(t *testing.T) {
	data := "하나\tone\n\n둘\n"
	_, err := LoadBytes("dev.tsv", []byte(data), Options{Strict: true})
	var pe *ProblemsError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 {
		t.Fatalf("strict load = %v, want a ProblemsError with 2 problems", err)
	}
	if want := "dev.tsv:2: blank line\ndev.tsv:3: 1 tab-separated fields, want 2 (source<TAB>reference)"; err.Error() != want {
		t.Errorf("error:\n%s\nwant\n%s", err, want)
	}
	if d, err := LoadBytes("dev.tsv", []byte("하나\tone\n"), Options{Strict: true}); err != nil || len(d.Examples) != 1 {
		t.Errorf("strict load of a clean file = %v, %v", d, err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []Options{{MaxTokens: 5}, {MaxChars: -1}, {Format: "csv"}} {
		if _, err := LoadBytes("x.txt", []byte("a\n"), opts); err == nil {
			t.Errorf("LoadBytes accepted options %+v", opts)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":"x","source":"하나","reference":"one"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path, Options{})
	if err != nil || len(d.Examples) != 1 || d.Name != path || d.Examples[0].ID != "x" {
		t.Fatalf("Load = %+v, %v", d, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.tsv"), Options{}); err == nil || !strings.Contains(err.Error(), "missing.tsv") {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestParseAlignment(t *testing.T) {
	tests := []struct {
		in       string
		src, tgt int
		want     *Alignment
		err      string
	}{
		{in: "", src: 1, tgt: 1, want: &Alignment{Sure: []Link{}, Possible: []Link{}}},
		{in: "0-0 1-2 2?1", src: 3, tgt: 3, want: &Alignment{Sure: []Link{{Src: 0, Tgt: 0}, {Src: 1, Tgt: 2}}, Possible: []Link{{Src: 2, Tgt: 1}}}},
		{in: " 1p0\t0-1  1p0 ", src: 2, tgt: 2, want: &Alignment{Sure: []Link{{Src: 0, Tgt: 1}}, Possible: []Link{{Src: 1, Tgt: 0}}}},
		{in: "0?0 0-0", src: 1, tgt: 1, want: &Alignment{Sure: []Link{{Src: 0, Tgt: 0}}, Possible: []Link{}}},
		{in: "0-0 3-1", src: 3, tgt: 2, err: `link "3-1": source word 3 is out of range (the source has 3 words)`},
		{in: "0-2", src: 3, tgt: 2, err: `link "0-2": target word 2 is out of range (the target has 2 words)`},
		{in: "0:1", src: 3, tgt: 3, err: `link "0:1": want i-j (sure), i?j or ipj (possible)`},
		{in: "0-", src: 3, tgt: 3, err: `link "0-": want i-j (sure), i?j or ipj (possible)`},
		{in: "-1-0", src: 3, tgt: 3, err: `link "-1-0": want i-j (sure), i?j or ipj (possible)`},
		{in: "1--1", src: 3, tgt: 3, err: `link "1--1": want non-negative word indices`},
		{in: "a-b", src: 3, tgt: 3, err: `link "a-b": want non-negative word indices`},
	}
	for _, tt := range tests {
		got, err := ParseAlignment(tt.in, tt.src, tt.tgt)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseAlignment(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseAlignment(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestAddAlignments(t *testing.T) {
	d, err := LoadBytes("dev.tsv", []byte("고양이 가 잔다\tthe cat sleeps\n\n개\tdog\n새 가\ta bird\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	gold := "0-1 1?1 2-2\nignored: line 2 has no example\n0-0 0-1\n0-0 1-9\n"
	if err := d.AddAlignments("dev.align", []byte(gold), false); err != nil {
		t.Fatal(err)
	}
	if a := d.Examples[0].Alignment; a == nil || !reflect.DeepEqual(a.Sure, []Link{{Src: 0, Tgt: 1}, {Src: 2, Tgt: 2}}) || !reflect.DeepEqual(a.Possible, []Link{{Src: 1, Tgt: 1}}) {
		t.Errorf("example 0 alignment %+v", a)
	}
	if d.Examples[1].Alignment != nil || d.Examples[2].Alignment != nil {
		t.Errorf("bad lines gave alignments: %+v %+v", d.Examples[1].Alignment, d.Examples[2].Alignment)
	}
	want := []string{
		"dev.tsv:2: blank line",
		`dev.align:3: link "0-1": target word 1 is out of range (the target has 1 words)`,
		`dev.align:4: link "1-9": target word 9 is out of range (the target has 2 words)`,
	}
	if got := problemStrings(d.Problems); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}

	d2, _ := LoadBytes("dev.tsv", []byte("하나\tone\n둘\ttwo\n"), Options{})
	err = d2.AddAlignments("short.align", []byte("0-0\n"), true)
	if err == nil || err.Error() != "short.align: 1 lines, but the dataset's last example is on line 2" {
		t.Errorf("strict short alignment file = %v", err)
	}
	if d2.Examples[0].Alignment != nil {
		t.Error("a failed strict AddAlignments set alignments")
	}
	path := filepath.Join(t.TempDir(), "gold.txt")
	if err := os.WriteFile(path, []byte("0-0\n0-0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d2.LoadAlignments(path, true); err != nil || d2.Examples[1].Alignment == nil {
		t.Errorf("LoadAlignments = %v, alignment %+v", err, d2.Examples[1].Alignment)
	}
}
