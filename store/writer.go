package store

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"attnaudit/internal/parallel"
)

// Errors of writers used after Close or Abort.
var (
	ErrClosed  = errors.New("store: writer is closed")
	ErrAborted = errors.New("store: writer was aborted")
)

// Writer streams rows of one file kind into Parquet files. It holds at most
// one row group in memory. Each file is written under a temporary name in
// its folder and renamed to its final name when it is complete, so a file
// with a final name is always whole: a crash leaves only a hidden
// ".NAME.tmp-…" file, which readers never list.
//
// A Write that fails (a row out of order, an invalid row, an I/O error)
// aborts the writer: the unfinished file is removed and every later call
// returns that error. Parts finished before the failure stay. The usual
// pattern is
//
//	w, err := store.NewAttentionWriter(dir, opts)
//	…
//	defer w.Abort() // no-op once Close has run
//	… w.Write(rows…) …
//	return w.Close()
//
// Writer is not safe for concurrent use.
type Writer[T any] struct {
	s         *schema[T]
	dir       string
	name      func(k int) string // final name of the writer's k-th part
	cfg       writerConfig
	partRows  int64
	partBytes int64
	props     *parquet.WriterProperties
	arrow     *arrow.Schema

	// the part being written
	file    *os.File
	buf     *bufio.Writer
	count   *countingWriter
	pw      *pqarrow.FileWriter
	tmp     string
	builder *array.RecordBuilder
	append  []func(*T)
	prepare []func(*T) // the columns' prepare functions
	scratch []T        // Write's copies of the rows it prepares
	rgRows  int
	rgBytes int64
	pRows   int64

	parts   []string // finished parts, final paths
	infos   []PartInfo
	prev    T
	hasPrev bool
	rows    int64
	err     error // sticky: set by a failure, Close or Abort
	closed  bool
}

func newWriter[T any](dir string, s *schema[T], name func(int) string, cfg writerConfig, partRows, partBytes int64) (*Writer[T], error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s writer: %w", s.stem, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s writer: %s is not a folder", s.stem, dir)
	}
	w := &Writer[T]{s: s, dir: dir, name: name, cfg: cfg, partRows: partRows, partBytes: partBytes, arrow: s.arrowSchema()}
	for _, c := range s.cols {
		if c.prepare != nil {
			w.prepare = append(w.prepare, c.prepare)
		}
	}
	w.props = w.writerProperties()
	return w, nil
}

// writerProperties: zstd everywhere; dictionaries only where the schema asks
// for them; floats byte-split; row groups ended by the writer, not pqarrow;
// the sort order recorded for readers that use it.
func (w *Writer[T]) writerProperties() *parquet.WriterProperties {
	props := []parquet.WriterProperty{
		parquet.WithAllocator(w.cfg.mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(w.cfg.zstdLevel),
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(int64(w.cfg.rowGroupRows) + 1),
		parquet.WithCreatedBy("attnaudit"),
	}
	var sorting []parquet.SortingColumn
	for i, c := range w.s.cols {
		if c.dict {
			props = append(props, parquet.WithDictionaryFor(c.parquetPath(), true))
		}
		if c.zstdLevel > 0 {
			props = append(props, parquet.WithCompressionLevelFor(c.parquetPath(), c.zstdLevel))
		}
		if c.encoding != parquet.Encodings.Plain {
			props = append(props,
				parquet.WithEncodingFor(c.parquetPath(), c.encoding),
				parquet.WithStatsFor(c.parquetPath(), false))
		}
		// Every column here has one leaf, so column i is leaf i.
		for _, k := range w.s.sortBy {
			if k == c.name {
				sorting = append(sorting, parquet.SortingColumn{ColumnIdx: int32(i)})
			}
		}
	}
	props = append(props, parquet.WithSortingColumns(sorting))
	return parquet.NewWriterProperties(props...)
}

// Write appends rows, which must continue the file's sort order. Each row
// is first turned into what is stored (attention weights rounded to the
// grid, into new slices: the rows passed are left as they are), on several
// goroutines when there are many: rounding costs more than encoding, so
// give the writer an example's rows in one call.
func (w *Writer[T]) Write(rows ...T) error {
	if w.err != nil {
		return w.err
	}
	if len(w.prepare) > 0 {
		w.scratch = append(w.scratch[:0], rows...)
		rows = w.scratch
		prepareRows(w.prepare, rows)
		defer clear(w.scratch) // drop the references to the rounded copies
	}
	for i := range rows {
		if err := w.write(&rows[i]); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

// Prepared is rows already turned into what a writer of one schema
// stores (attention weights rounded to the grid), made by Prepare
// functions such as PrepareAttention, so that the costly part of writing
// can run where there are idle cores, before the writer exists. Only a
// writer of the same schema takes them (WritePrepared).
type Prepared[T any] struct {
	s    *schema[T]
	rows []T
}

// prepare turns copies of rows into what s stores, on the calling
// goroutine: its callers spread their rows over goroutines of their own.
func prepare[T any](s *schema[T], rows []T) Prepared[T] {
	rows = append([]T(nil), rows...)
	for _, c := range s.cols {
		if c.prepare != nil {
			for i := range rows {
				c.prepare(&rows[i])
			}
		}
	}
	return Prepared[T]{s: s, rows: rows}
}

// WritePrepared appends prepared rows, in the order given, as Write would
// append the rows they were made from. Rows prepared for another schema
// (another precision) are an error; the zero Prepared holds no rows.
func (w *Writer[T]) WritePrepared(ps ...Prepared[T]) error {
	if w.err != nil {
		return w.err
	}
	for _, p := range ps {
		if len(p.rows) == 0 { // the zero Prepared too: nothing to write
			continue
		}
		if p.s != w.s {
			return w.fail(fmt.Errorf("%s writer: rows prepared for another precision or file kind", w.s.stem))
		}
		for i := range p.rows {
			if err := w.write(&p.rows[i]); err != nil {
				return w.fail(err)
			}
		}
	}
	return nil
}

// prepareRows runs the columns' prepare on every row, on up to GOMAXPROCS
// goroutines, a few rows each.
func prepareRows[T any](prepare []func(*T), rows []T) {
	if len(prepare) == 0 {
		return
	}
	const perGoroutine = 8
	procs := min(runtime.GOMAXPROCS(0), (len(rows)+perGoroutine-1)/perGoroutine)
	parallel.For(len(rows), procs, func(i int) {
		for _, p := range prepare {
			p(&rows[i])
		}
	})
}

func (w *Writer[T]) write(r *T) error {
	if err := w.s.check(r); err != nil {
		return fmt.Errorf("%s row %s: %w", w.s.stem, w.s.key(r), err)
	}
	if w.hasPrev && w.s.compare(&w.prev, r) >= 0 {
		return fmt.Errorf("%s row %s after %s: rows must be sorted by (%s) without duplicates",
			w.s.stem, w.s.key(r), w.s.key(&w.prev), strings.Join(w.s.sortBy, ", "))
	}
	if w.pw == nil {
		if err := w.openPart(); err != nil {
			return err
		}
	}
	for _, a := range w.append {
		a(r)
	}
	w.prev, w.hasPrev = *r, true
	w.rows++
	w.pRows++
	w.rgRows++
	w.rgBytes += int64(w.s.size(r))
	if w.rgRows >= w.cfg.rowGroupRows || w.rgBytes >= w.cfg.rowGroupBytes {
		if err := w.flushRowGroup(); err != nil {
			return err
		}
	}
	if (w.partRows > 0 && w.pRows >= w.partRows) || (w.partBytes > 0 && w.count.n >= w.partBytes) {
		return w.finishPart()
	}
	return nil
}

func (w *Writer[T]) openPart() error {
	final := filepath.Join(w.dir, w.name(len(w.parts)))
	f, err := os.CreateTemp(w.dir, "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s writer: %w", w.s.stem, err)
	}
	w.file, w.tmp = f, f.Name()
	w.buf = bufio.NewWriterSize(f, 1<<20)
	w.count = &countingWriter{w: w.buf, h: sha256.New()}
	// countingWriter is not an io.Closer, so pqarrow's Close leaves the file
	// open for Sync.
	w.pw, err = pqarrow.NewFileWriter(w.arrow, w.count, w.props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(w.cfg.mem)))
	if err != nil {
		return fmt.Errorf("%s writer: %s: %w", w.s.stem, final, err)
	}
	w.builder = array.NewRecordBuilder(w.cfg.mem, w.arrow)
	w.append = make([]func(*T), len(w.s.cols))
	for i, c := range w.s.cols {
		w.append[i] = c.appender(w.builder.Field(i))
	}
	w.pRows = 0
	return nil
}

func (w *Writer[T]) flushRowGroup() error {
	if w.rgRows == 0 {
		return nil
	}
	rec := w.builder.NewRecordBatch()
	defer rec.Release()
	w.rgRows, w.rgBytes = 0, 0
	if err := w.pw.Write(rec); err != nil {
		return fmt.Errorf("%s writer: %s: %w", w.s.stem, w.tmp, err)
	}
	return nil
}

// finishPart writes the open part's last row group and footer, syncs it and
// gives it its final name.
func (w *Writer[T]) finishPart() error {
	final := filepath.Join(w.dir, w.name(len(w.parts)))
	err := w.flushRowGroup()
	if err == nil {
		err = w.pw.Close()
	}
	w.pw = nil
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.file.Sync()
	}
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	w.file = nil
	w.releaseBuilder()
	if err == nil {
		err = os.Rename(w.tmp, final)
	}
	if err != nil {
		os.Remove(w.tmp)
		return fmt.Errorf("%s writer: %s: %w", w.s.stem, final, err)
	}
	syncDir(w.dir)
	w.parts = append(w.parts, final)
	w.infos = append(w.infos, PartInfo{Name: filepath.Base(final), Bytes: w.count.n, SHA256: hex.EncodeToString(w.count.h.Sum(nil)), Rows: w.pRows})
	return nil
}

func (w *Writer[T]) releaseBuilder() {
	if w.builder != nil {
		w.builder.Release()
		w.builder, w.append = nil, nil
	}
}

// fail aborts the writer with err and returns err.
func (w *Writer[T]) fail(err error) error {
	w.discard()
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("%w: the disk is full; the unfinished part was removed, parts already finished stay", err)
	}
	w.err, w.closed = err, true
	return err
}

// discard drops the open part, if any.
func (w *Writer[T]) discard() {
	if w.pw != nil {
		w.pw.Close()
		w.pw = nil
	}
	if w.file != nil {
		w.file.Close()
		os.Remove(w.tmp)
		w.file = nil
	}
	w.releaseBuilder()
}

// Close finishes the open part and gives it its final name. A writer that
// got no rows still writes one part with the schema and no rows, so a
// finished empty stage is told apart from an unfinished one. Close returns
// the error that aborted the writer, if any; calling it again returns the
// same result.
func (w *Writer[T]) Close() error {
	if w.closed {
		if errors.Is(w.err, ErrClosed) {
			return nil
		}
		return w.err
	}
	if w.pw == nil && len(w.parts) == 0 {
		if err := w.openPart(); err != nil {
			return w.fail(err)
		}
	}
	if w.pw != nil {
		if err := w.finishPart(); err != nil {
			return w.fail(err)
		}
	}
	w.err, w.closed = ErrClosed, true
	return nil
}

// Abort drops the unfinished part, leaving no file under its final name.
// Parts already finished stay. Abort after Close does nothing; Write and
// Close after Abort return ErrAborted.
func (w *Writer[T]) Abort() {
	if w.closed {
		return
	}
	w.discard()
	w.err, w.closed = ErrAborted, true
}

// Parts returns the final paths of the parts finished so far.
func (w *Writer[T]) Parts() []string { return append([]string(nil), w.parts...) }

// PartInfos returns the size, sha256 and row count of the parts finished
// so far, taken from the bytes written, as a run records them to check
// its files later (CheckPart).
func (w *Writer[T]) PartInfos() []PartInfo { return append([]PartInfo(nil), w.infos...) }

// Rows returns the number of rows written so far.
func (w *Writer[T]) Rows() int64 { return w.rows }

// countingWriter counts and hashes the bytes of the part written so far.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

// syncDir makes a rename durable. It is best effort: some file systems
// cannot sync a folder, and the rename itself has already happened.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
