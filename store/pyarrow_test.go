package store

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// pyarrowPython is the Python that has pyarrow: ATTNAUDIT_PYARROW_PYTHON
// (`make setup` installs a pinned pyarrow in third_party/pyarrow and `make
// test` names it, so CI runs this test), else python3 when it has pyarrow.
func pyarrowPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("ATTNAUDIT_PYARROW_PYTHON")
	required := py != ""
	if py == "" {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import pyarrow").Run(); err != nil {
		if required {
			t.Fatalf("ATTNAUDIT_PYARROW_PYTHON=%s cannot import pyarrow (make setup installs it): %v", py, err)
		}
		t.Skip("pyarrow check skipped: no python3 with pyarrow (make setup installs it; make test uses it)")
	}
	return py
}

// TestPyarrowReadsProbabilities reads attention parts of every precision
// with pyarrow and readers/attnaudit_attention.py: fixed, float32 and
// float16 parts store weights as list<float> or list<halffloat>
// probabilities, compact stores weights_plus_one, the packed default
// weights_packed, and the helper gives weights as probabilities for each,
// in the same place.
func TestPyarrowReadsProbabilities(t *testing.T) {
	py := pyarrowPython(t)
	rows := fixtureAttention(4, 2, 2, 9)
	for _, tt := range []struct {
		precision, stored, column, weights string
		tol                                float64
	}{
		{PrecisionPacked, "list<element: float not null>", PackedColumn, "list<element: float not null>", 1e-4},
		{PrecisionCompact, "list<element: float not null>", CompactColumn, "list<element: float not null>", 1e-4},
		{PrecisionFloat32, "list<element: float not null>", "weights", "list<element: float not null>", 1e-5},
		{PrecisionFixed, "list<element: float not null>", "weights", "list<element: float not null>", 1e-4},
		{PrecisionFloat16, "list<element: halffloat not null>", "weights", "list<element: halffloat not null>", 1e-2},
	} {
		t.Run(tt.precision, func(t *testing.T) {
			dir := t.TempDir()
			writeAttention(t, dir, rows, AttentionOptions{Precision: tt.precision, PartRows: 30})
			out, err := exec.Command(py, "testdata/pyarrow/read.py", dir).Output()
			if err != nil {
				t.Fatalf("pyarrow: %v\n%s", err, exitStderr(err))
			}
			var got struct {
				Pyarrow      string
				Rows         int
				Types        map[string]string
				Weights      string
				Columns      []string
				First        []float64
				MaxRowSumErr float64 `json:"max_row_sum_err"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("pyarrow output %s: %v", out, err)
			}
			if got.Rows != len(rows) || got.Types[tt.column] != tt.stored || len(got.Types) != 8 || got.Types["q_len"] != "int32" {
				t.Errorf("pyarrow %s reads %d rows, types %v; want %d rows, %s %s", got.Pyarrow, got.Rows, got.Types, len(rows), tt.column, tt.stored)
			}
			if want := []string{"example_id", "pass", "kind", "layer", "head", "q_len", "k_len", "weights"}; !slices.Equal(got.Columns, want) || got.Weights != tt.weights {
				t.Errorf("read_attention gives columns %v, weights %s; want %v, weights %s", got.Columns, got.Weights, want, tt.weights)
			}
			for j, w := range rows[0].Weights.Data[:3] {
				if d := math.Abs(got.First[j] - float64(w)); d > tt.tol {
					t.Errorf("weight %d = %g, want %g within %g", j, got.First[j], w, tt.tol)
				}
			}
			if got.MaxRowSumErr > tt.tol*10 {
				t.Errorf("rows sum to 1 within %g, want %g", got.MaxRowSumErr, tt.tol*10)
			}
		})
	}
}

func exitStderr(err error) string {
	if e, ok := err.(*exec.ExitError); ok {
		return string(e.Stderr)
	}
	return ""
}

// TestPyarrowRestoresPacked reads every case of the packed layout
// (packedFixture: triangles, left-out last weights, rows that keep every
// value, NaN, empty matrices) with readers/attnaudit_attention.py and
// checks each weight against attnaudit's own reader, exactly.
func TestPyarrowRestoresPacked(t *testing.T) {
	py := pyarrowPython(t)
	rows, _ := packedFixture()
	dir := t.TempDir()
	writeAttention(t, dir, rows, AttentionOptions{})
	want := readAttention(t, dir)
	out, err := exec.Command(py, "testdata/pyarrow/read.py", dir, "all").Output()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, exitStderr(err))
	}
	var got struct{ All [][]any }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("pyarrow output %s: %v", out, err)
	}
	if len(got.All) != len(want) {
		t.Fatalf("pyarrow reads %d rows, want %d", len(got.All), len(want))
	}
	for i, r := range want {
		if len(got.All[i]) != len(r.Weights.Data) {
			t.Errorf("case %d (%s %d×%d): %d weights, want %d", i, r.Kind, r.Weights.Rows, r.Weights.Cols, len(got.All[i]), len(r.Weights.Data))
			continue
		}
		for j, w := range r.Weights.Data {
			g := math.NaN()
			if f, ok := got.All[i][j].(float64); ok {
				g = f
			}
			if g != float64(w) && !(math.IsNaN(g) && math.IsNaN(float64(w))) {
				t.Errorf("case %d (%s %d×%d) weight %d: pyarrow %v, attnaudit %g", i, r.Kind, r.Weights.Rows, r.Weights.Cols, j, got.All[i][j], w)
			}
		}
	}
}
