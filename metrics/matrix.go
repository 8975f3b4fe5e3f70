// Package metrics computes attention diagnostics (../shared/SPEC.md §5) as pure
// functions over attention matrices and examples. It does no I/O.
//
// Each metric and flag is described once, in table.go: HeadTable (head
// metrics), SentenceTable (sentence scores and detectors) and FlagTable
// (flags, their rules and reasons). head_metrics.parquet and
// sentence_metrics.parquet's columns, the run summary, the report and the
// compare page are generated from those tables. Scorer scores one pass;
// Run (AddHeads, AddSentence, AddExample, then Finish) scores a whole run:
// the reference pool, thresholds, flags and detector evaluation.
//
// Error contract: functions take matrices whose rows are probability
// distributions with padding already removed. Empty matrices give NaN
// results, never a panic; NaN or Inf weights propagate into the result.
package metrics

// Matrix is one head's attention: Rows query positions × Cols key positions,
// stored row-major. It is the one attention-matrix type of attnaudit: the
// inference, store and report packages all pass attention around as Matrix.
type Matrix struct {
	Rows, Cols int
	Data       []float32
}

// NewMatrix returns a zeroed rows × cols matrix.
func NewMatrix(rows, cols int) Matrix {
	return Matrix{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// At returns the weight from query row i to key column j.
func (m Matrix) At(i, j int) float32 { return m.Data[i*m.Cols+j] }

// Row returns query row i as a slice sharing m's storage.
func (m Matrix) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }
