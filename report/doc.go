// Package report draws attnaudit's figures with gonum.org/v1/plot and writes
// the self-contained HTML pages (../shared/SPEC.md §6): report.html for one
// run, compare.html for several, and the seed-compatible `visualize` PNGs.
//
// The package does no I/O of its own beyond writing to the io.Writer it is
// given (and WriteVisualizeFigures, which writes its PNGs into a folder):
// pipeline loads run folders into RunData and CompareData, plain structs,
// and calls Generate or GenerateCompare, in the manner of pprof's
// internal/report.
//
// Figures take attention as metrics.Matrix, rows = queries drawn top to
// bottom, columns = keys left to right, labelled with their tokens. Hangul
// is drawn with a font found at run time (PlotOptions.Font, then fontconfig,
// then well-known paths); without one, a warning is logged once and
// characters the fallback font lacks are drawn as escaped code points
// (\uD55C), never as empty boxes. Token labels follow tokenLabels
// (SentencePiece's ▁ as a word start, byte-fallback pieces as the
// characters they spell) in figures and pages alike.
//
// report.html also carries an attention explorer per shown example
// (explorer.go): every kind, layer and head, quantised to a byte per weight
// and decoded in the browser only when looked at.
//
// Error contract: an empty matrix, or head/label counts that do not match
// the matrix, is an error. NaN weights are drawn grey; +Inf and −Inf are
// drawn in the over- and underflow colours (red, blue) and left out of the
// colour scale. A matrix of all zeros (a broken mask) is drawn on a 0..1
// scale rather than failing.
package report
