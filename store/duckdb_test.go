package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The DuckDB checks read attnaudit's files with an independent Parquet
// reader (DuckDB, through its Node API), as SPEC §4 promises users can.
const duckdbInstall = "cd store/testdata/duckdb && npm ci"

// duckdb runs named SQL queries through testdata/duckdb/query.mjs and
// returns each query's rows. Missing tools fail the test, naming the install
// command, unless ATTNAUDIT_SKIP_DUCKDB=1.
func duckdb(t *testing.T, queries map[string]string) map[string][]map[string]any {
	t.Helper()
	if os.Getenv("ATTNAUDIT_SKIP_DUCKDB") == "1" {
		t.Skip("ATTNAUDIT_SKIP_DUCKDB=1")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed; the DuckDB checks need Node.js and `%s` (or set ATTNAUDIT_SKIP_DUCKDB=1)", duckdbInstall)
	}
	if _, err := os.Stat("testdata/duckdb/node_modules/@duckdb/node-api"); err != nil {
		t.Fatalf("@duckdb/node-api is not installed; run `%s` (or set ATTNAUDIT_SKIP_DUCKDB=1)", duckdbInstall)
	}
	type query struct {
		Name string `json:"name"`
		SQL  string `json:"sql"`
	}
	var qs []query
	for name, sql := range queries {
		qs = append(qs, query{name, sql})
	}
	// in name order, so a query can set up what later ones use
	slices.SortFunc(qs, func(a, b query) int { return strings.Compare(a.Name, b.Name) })
	in, err := json.Marshal(qs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "testdata/duckdb/query.mjs")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("DuckDB queries failed: %v\n%s", err, stderr.String())
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("DuckDB output: %v\n%s", err, stdout.String())
	}
	res := map[string][]map[string]any{}
	for name, raw := range out {
		if name == "duckdb_version" {
			t.Logf("DuckDB %s", raw)
			continue
		}
		var rows []map[string]any
		if err := json.Unmarshal(raw, &rows); err != nil {
			t.Fatalf("DuckDB result %s: %v", name, err)
		}
		res[name] = rows
	}
	return res
}

// num reads a DuckDB JSON number: BIGINTs come as strings, NaN as "NaN".
func num(t *testing.T, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return x
	case string:
		var f float64
		if x == "NaN" {
			return math.NaN()
		}
		if _, err := fmt.Sscan(x, &f); err != nil {
			t.Fatalf("not a number: %q", x)
		}
		return f
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

// columnTypes turns DESCRIBE rows into "name TYPE, …".
func columnTypes(rows []map[string]any) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %s", r["column_name"], r["column_type"]))
	}
	return strings.Join(parts, ", ")
}

func sqlGlob(dir, pattern string) string {
	return fmt.Sprintf("read_parquet('%s')", filepath.ToSlash(filepath.Join(dir, pattern)))
}

func TestDuckDBReadsEveryFile(t *testing.T) {
	dir := t.TempDir()
	f16dir, fixdir, compactDir, packedDir, edgeDir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	rows := fixtureAttention(6, 2, 2, 7)
	// Two shards' parts in one folder, rolled over by rows.
	half := len(rows) / 2
	writeAttention(t, dir, rows[:half], AttentionOptions{Prefix: "s000", PartRows: 25, Precision: PrecisionFloat32}, WithRowGroupRows(10))
	writeAttention(t, dir, rows[half:], AttentionOptions{Prefix: "s001", PartRows: 25, Precision: PrecisionFloat32}, WithRowGroupRows(10))
	writeAttention(t, f16dir, rows, AttentionOptions{Precision: PrecisionFloat16, PartRows: 40})
	writeAttention(t, fixdir, rows, AttentionOptions{Precision: PrecisionFixed, PartRows: 40})
	writeAttention(t, compactDir, rows, AttentionOptions{Precision: PrecisionCompact, PartRows: 40})
	writeAttention(t, packedDir, rows, AttentionOptions{PartRows: 40})
	// every case of the packed layout (packed_test.go), read back by Go
	edge, _ := packedFixture()
	writeAttention(t, edgeDir, edge, AttentionOptions{})
	edgeBack := readAttention(t, edgeDir)
	var queryRows int
	for _, r := range rows {
		queryRows += r.Weights.Rows
	}

	exs := fixtureExamples()
	for part, rs := range [][]Example{exs[:1], exs[1:]} {
		w, err := NewExampleWriter(dir, part)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rs...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	hw, err := NewHeadMetricsWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	heads := fixtureHeadMetrics()
	if err := hw.Write(heads...); err != nil {
		t.Fatal(err)
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	sw, err := NewSentenceMetricsWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Write(fixtureSentenceMetrics()...); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}

	attn := sqlGlob(dir, "attention-*.parquet")
	attn16 := sqlGlob(f16dir, "attention-*.parquet")
	attnFix := sqlGlob(fixdir, "attention-*.parquet")
	// the packed default and compact through readers/attention.sql's macros, as documented
	macro, err := os.ReadFile("../readers/attention.sql")
	if err != nil {
		t.Fatal(err)
	}
	attnCompact := fmt.Sprintf("attention_compact('%s')", filepath.ToSlash(compactDir))
	attnPacked := fmt.Sprintf("attention('%s')", filepath.ToSlash(packedDir))
	rowSums := func(src string) string {
		return `WITH r AS (SELECT q_len, k_len, weights, unnest(range(q_len)) AS q FROM ` + src + `)
			SELECT count(*) AS query_rows,
			       max(abs(list_sum(weights[q*k_len + 1 : (q+1)*k_len]) - 1)) AS max_err FROM r`
	}
	res := duckdb(t, map[string]string{
		"0_macro":        string(macro), // names sort: the macro is created first
		"compact_stored": `DESCRIBE SELECT * FROM ` + sqlGlob(compactDir, "attention-*.parquet"),
		"compact_types":  `DESCRIBE SELECT * FROM ` + attnCompact,
		"compact_sums":   rowSums(attnCompact),
		"compact_first":  `SELECT weights[1:3] AS w FROM ` + attnCompact + ` WHERE example_id = 0 AND pass = 'forced' AND kind = 'cross' AND layer = 0 AND head = 0`,
		"compact_same":   `SELECT count(*) AS n, max(list_max(list_transform(range(1, len(c.weights) + 1), i -> abs(c.weights[i] - f.weights[i])))) AS max_err FROM ` + attnCompact + ` c JOIN ` + attn + ` f USING (example_id, pass, kind, layer, head)`,
		"packed_stored":  `DESCRIBE SELECT * FROM ` + sqlGlob(packedDir, "attention-*.parquet"),
		"packed_types":   `DESCRIBE SELECT * FROM ` + attnPacked,
		"packed_sums":    rowSums(attnPacked),
		"packed_first":   `SELECT weights[1:3] AS w FROM ` + attnPacked + ` WHERE example_id = 0 AND pass = 'forced' AND kind = 'cross' AND layer = 0 AND head = 0`,
		"packed_same":    `SELECT count(*) AS n, count(*) FILTER (WHERE len(c.weights) <> len(f.weights)) AS bad_len, max(list_max(list_transform(range(1, len(c.weights) + 1), i -> abs(c.weights[i] - f.weights[i])))) AS max_err FROM ` + attnPacked + ` c JOIN ` + attn + ` f USING (example_id, pass, kind, layer, head)`,
		"packed_edge":    `SELECT layer, weights AS w FROM attention('` + filepath.ToSlash(edgeDir) + `') ORDER BY layer`,
		"attn_count":     `SELECT count(*) AS n, count(DISTINCT filename) AS files, count(*) FILTER (WHERE len(weights) <> q_len*k_len) AS bad_len FROM read_parquet('` + filepath.Join(dir, "attention-*.parquet") + `', filename = true)`,
		"attn_types":     `DESCRIBE SELECT * FROM ` + attn,
		"attn_sums":      rowSums(attn),
		"attn_first":     `SELECT weights[1:3] AS w FROM ` + attn + ` WHERE example_id = 0 AND pass = 'forced' AND kind = 'cross' AND layer = 0 AND head = 0`,
		"attn_order":     `SELECT count(*) AS n FROM (SELECT example_id, pass, kind, layer, head, lag(struct_pack(example_id, pass, kind, layer, head)) OVER (ORDER BY filename, file_row_number) AS prev FROM read_parquet('` + filepath.Join(dir, "attention-*.parquet") + `', filename = true, file_row_number = true)) WHERE prev >= struct_pack(example_id, pass, kind, layer, head)`,
		"attn_meta":      `SELECT DISTINCT path_in_schema, compression, encodings FROM parquet_metadata('` + filepath.Join(dir, "attention-*.parquet") + `') WHERE path_in_schema IN ('pass', 'kind', 'weights, list, element', 'weights.list.element') ORDER BY 1`,
		"f16_types":      `DESCRIBE SELECT * FROM ` + attn16,
		"f16_sums":       rowSums(attn16),
		"f16_first":      `SELECT weights[1:3] AS w FROM ` + attn16 + ` WHERE example_id = 0 AND pass = 'forced' AND kind = 'cross' AND layer = 0 AND head = 0`,
		"fix_types":      `DESCRIBE SELECT * FROM ` + attnFix,
		"fix_sums":       rowSums(attnFix),
		"fix_first":      `SELECT weights[1:3] AS w FROM ` + attnFix + ` WHERE example_id = 0 AND pass = 'forced' AND kind = 'cross' AND layer = 0 AND head = 0`,
		"examples":       `SELECT count(*) AS n, count(*) FILTER (WHERE isnan(chrf)) AS nan_chrf, sum(len(src_pieces)) AS src_pieces, max(source) AS max_source FROM ` + sqlGlob(dir, "examples-*.parquet"),
		"examples_types": `DESCRIBE SELECT * FROM ` + sqlGlob(dir, "examples-*.parquet"),
		"heads":          `SELECT count(*) AS n, sum(zero_rows) AS zero_rows, count(*) FILTER (WHERE isnan(aer)) AS nan_aer FROM ` + sqlGlob(dir, "head_metrics.parquet"),
		"heads_types":    `DESCRIBE SELECT * FROM ` + sqlGlob(dir, "head_metrics.parquet"),
		"sents":          `SELECT count(*) AS n, count(*) FILTER (WHERE hallucination_suspect) AS suspects, max(reasons) AS reasons FROM ` + sqlGlob(dir, "sentence_metrics.parquet"),
		"sents_types":    `DESCRIBE SELECT * FROM ` + sqlGlob(dir, "sentence_metrics.parquet"),
	})

	ac := res["attn_count"][0]
	if n, files, bad := num(t, ac["n"]), num(t, ac["files"]), num(t, ac["bad_len"]); n != float64(len(rows)) || files != 6 || bad != 0 {
		t.Errorf("attention: DuckDB counts %v rows in %v files, %v with len(weights) ≠ q_len·k_len; want %d rows in 6 files, 0", n, files, bad, len(rows))
	}
	wantAttn := "example_id INTEGER, pass VARCHAR, kind VARCHAR, layer SMALLINT, head SMALLINT, q_len INTEGER, k_len INTEGER, weights FLOAT[]"
	if got := columnTypes(res["attn_types"]); got != wantAttn {
		t.Errorf("attention columns:\n got %s\nwant %s", got, wantAttn)
	}
	if got := columnTypes(res["f16_types"]); got != wantAttn {
		t.Errorf("float16 attention columns:\n got %s\nwant %s", got, wantAttn)
	}
	if got := columnTypes(res["fix_types"]); got != wantAttn {
		t.Errorf("fixed attention columns:\n got %s\nwant %s", got, wantAttn)
	}
	wantCompact := strings.Replace(wantAttn, "weights FLOAT[]", CompactColumn+" FLOAT[]", 1)
	if got := columnTypes(res["compact_stored"]); got != wantCompact {
		t.Errorf("compact attention columns as stored:\n got %s\nwant %s", got, wantCompact)
	}
	if got := columnTypes(res["compact_types"]); got != wantAttn {
		t.Errorf("compact attention columns through attention():\n got %s\nwant %s", got, wantAttn)
	}
	if c := res["compact_same"][0]; num(t, c["n"]) != float64(len(rows)) || !(num(t, c["max_err"]) <= fixedTol) {
		t.Errorf("compact weights through attention_compact() against float32: %v rows, max error %v; want %d, ≤ %g", c["n"], c["max_err"], len(rows), fixedTol)
	}
	wantPacked := strings.Replace(wantAttn, "weights FLOAT[]", PackedColumn+" FLOAT[]", 1)
	if got := columnTypes(res["packed_stored"]); got != wantPacked {
		t.Errorf("packed attention columns as stored:\n got %s\nwant %s", got, wantPacked)
	}
	if got := columnTypes(res["packed_types"]); got != wantAttn {
		t.Errorf("packed attention columns through attention():\n got %s\nwant %s", got, wantAttn)
	}
	if c := res["packed_same"][0]; num(t, c["n"]) != float64(len(rows)) || num(t, c["bad_len"]) != 0 || !(num(t, c["max_err"]) <= fixedTol) {
		t.Errorf("packed weights through attention() against float32: %v rows (%v of another length), max error %v; want %d, 0, ≤ %g", c["n"], c["bad_len"], c["max_err"], len(rows), fixedTol)
	}
	// DuckDB restores every packed case exactly as attnaudit's reader does
	if got := res["packed_edge"]; len(got) != len(edgeBack) {
		t.Errorf("packed cases: DuckDB reads %d rows, want %d", len(got), len(edgeBack))
	} else {
		for i, r := range edgeBack {
			w := got[i]["w"].([]any)
			if len(w) != len(r.Weights.Data) {
				t.Errorf("packed case %d (%s %d×%d): DuckDB gives %d weights, want %d", i, r.Kind, r.Weights.Rows, r.Weights.Cols, len(w), len(r.Weights.Data))
				continue
			}
			for j, x := range r.Weights.Data {
				if d := num(t, w[j]); d != float64(x) && !(math.IsNaN(d) && math.IsNaN(float64(x))) {
					t.Errorf("packed case %d (%s %d×%d) weight %d: DuckDB %v, attnaudit %g", i, r.Kind, r.Weights.Rows, r.Weights.Cols, j, w[j], x)
				}
			}
		}
	}
	for name, tol := range map[string]float64{"attn_sums": 1e-5, "f16_sums": 1e-2, "fix_sums": 1e-5 + 7*fixedTol, "compact_sums": 1e-5 + 7*fixedTol, "packed_sums": 1e-5 + 7*fixedTol} {
		s := res[name][0]
		if q, e := num(t, s["query_rows"]), num(t, s["max_err"]); q != float64(queryRows) || !(e <= tol) {
			t.Errorf("%s: %v query rows with max |Σ_j w - 1| = %g; want %d rows within %g", name, q, e, queryRows, tol)
		}
	}
	for name, tol := range map[string]float64{"attn_first": 1e-7, "f16_first": 1e-3, "fix_first": fixedTol, "compact_first": fixedTol, "packed_first": fixedTol} {
		got := res[name][0]["w"].([]any)
		for j, w := range rows[0].Weights.Data[:3] {
			if d := math.Abs(num(t, got[j]) - float64(w)); d > tol {
				t.Errorf("%s: weight %d = %v, want %g", name, j, got[j], w)
			}
		}
	}
	if n := num(t, res["attn_order"][0]["n"]); n != 0 {
		t.Errorf("attention: %v rows out of (example_id, pass, kind, layer, head) order in file order", n)
	}
	for _, m := range res["attn_meta"] {
		path, enc := fmt.Sprint(m["path_in_schema"]), fmt.Sprint(m["encodings"])
		if m["compression"] != "ZSTD" {
			t.Errorf("%s: compression %v, want ZSTD", path, m["compression"])
		}
		if wantDict := path == "pass" || path == "kind"; wantDict != strings.Contains(enc, "DICTIONARY") {
			t.Errorf("%s: encodings %s (dictionary wanted: %v)", path, enc, wantDict)
		}
	}
	if len(res["attn_meta"]) < 3 {
		t.Errorf("parquet_metadata rows %v: want pass, kind and weights", res["attn_meta"])
	}

	e := res["examples"][0]
	if num(t, e["n"]) != 2 || num(t, e["nan_chrf"]) != 1 || num(t, e["src_pieces"]) != 8 || e["max_source"] != "비가 온다" {
		t.Errorf("examples: %v", e)
	}
	wantEx := "example_id INTEGER, id VARCHAR, source VARCHAR, reference VARCHAR, hypothesis VARCHAR, " +
		"src_pieces VARCHAR[], tgt_pieces VARCHAR[], src_ids INTEGER[], tgt_ids INTEGER[], token_logprobs FLOAT[], " +
		"seq_logprob FLOAT, ref_pieces VARCHAR[], ref_ids INTEGER[], ref_logprobs FLOAT[], detached_from INTEGER, det_pieces VARCHAR[], det_ids INTEGER[], det_logprobs FLOAT[], chrf FLOAT, bleu FLOAT, " +
		"encoder_value_norms FLOAT[], cross_value_norms FLOAT[]"
	if got := columnTypes(res["examples_types"]); got != wantEx {
		t.Errorf("examples columns:\n got %s\nwant %s", got, wantEx)
	}
	h := res["heads"][0]
	if num(t, h["n"]) != float64(len(heads)) || num(t, h["zero_rows"]) != 6 || num(t, h["nan_aer"]) != float64(len(heads)) {
		t.Errorf("head_metrics: %v", h)
	}
	wantHeads := "example_id INTEGER, pass VARCHAR, kind VARCHAR, layer SMALLINT, head SMALLINT, q_len INTEGER, k_len INTEGER, " +
		"entropy FLOAT, entropy_norm FLOAT, confidence FLOAT, confidence_noeos FLOAT, diagonality FLOAT, first_mass FLOAT, " +
		"last_mass FLOAT, head_diversity FLOAT, repeat_mass FLOAT, row_sum_err FLOAT, zero_rows INTEGER, aer FLOAT, aer_norm FLOAT"
	if got := columnTypes(res["heads_types"]); got != wantHeads {
		t.Errorf("head_metrics columns:\n got %s\nwant %s", got, wantHeads)
	}
	s := res["sents"][0]
	if num(t, s["n"]) != 3 || num(t, s["suspects"]) != 1 || s["reasons"] != "seq_logprob in the bottom 5%; last_mass 0.62 > 0.5" {
		t.Errorf("sentence_metrics: %v", s)
	}
	wantSents := "example_id INTEGER, pass VARCHAR, seq_logprob FLOAT, ign_src FLOAT, ign_src_norm FLOAT, wass_to_unif FLOAT, " +
		"wass_to_unif_norm FLOAT, wass_to_data FLOAT, wass_combo FLOAT, src_contribution FLOAT, repeat_mass FLOAT, rep_ngram FLOAT, " +
		"chrf FLOAT, bleu FLOAT, aer FLOAT, aer_norm FLOAT, hallucination_suspect BOOLEAN, " +
		"diffuse_attention BOOLEAN, sink_dominated BOOLEAN, no_head_diversity BOOLEAN, copying BOOLEAN, broken_mask BOOLEAN, " +
		"untrained_like BOOLEAN, reasons VARCHAR"
	if got := columnTypes(res["sents_types"]); got != wantSents {
		t.Errorf("sentence_metrics columns:\n got %s\nwant %s", got, wantSents)
	}
}
