package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// scan calls fn with every row of schema s under path, part by part, in
// order. Later parts are decoded ahead on their own goroutines (see
// scanAhead), since decoding one part uses one core.
func scan[T any](path string, s *schema[T], cfg readerConfig, fn func(*T) error) error {
	paths, err := Parts(path, s.stem)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.stem, err)
	}
	if ahead := readAhead(); ahead > 1 {
		return scanAhead(paths, s, cfg, ahead, fn)
	}
	for _, p := range paths {
		if err := scanFile(p, s, cfg, fn); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// readAhead is how many row groups are decoded at once: half the cores and
// one more, at most eight (one core: none ahead, the scan decodes as it
// goes). On two cores, two ahead instead of none made metrics 1.13x and
// report 1.12x as fast (bench/RESULTS.md, 2026-12-08).
func readAhead() int { return min(8, runtime.GOMAXPROCS(0)/2+1) }

// scanUnit is what one read-ahead goroutine decodes: a row group of a part
// (group -1: the part could not be opened, err says why).
type scanUnit struct {
	path  string
	group int
	rows  int64
	err   error
}

// scanUnits lists the row groups of every part in order, those that may
// hold cfg.ids when it is set, after checking each part's schema against s
// (a part of another kind fails even when it has no row group to read).
func scanUnits[T any](paths []string, s *schema[T], cfg readerConfig) []scanUnit {
	var units []scanUnit
	for _, p := range paths {
		func() {
			var err error
			defer func() {
				if err != nil {
					units = append(units, scanUnit{path: p, group: -1, err: err})
				}
			}()
			defer recoverDamaged(p, &err)
			var rdr *file.Reader
			if rdr, _, err = openChecked(p, s, cfg); err != nil {
				return
			}
			defer rdr.Close()
			meta := rdr.MetaData()
			for _, g := range rowGroups(meta, cfg.ids) {
				units = append(units, scanUnit{path: p, group: g, rows: meta.RowGroup(g).NumRows()})
			}
		}()
	}
	return units
}

// scanAhead decodes up to ahead row groups at once, each on its own
// goroutine sending batches of rows (copies: readers clone what they read)
// over its own channel, and hands the rows to fn group after group, so fn
// sees the same order as a sequential scan. A group's channel holds all
// of its rows, so that the groups ahead are decoded while fn works through
// the first (decoding is the slower side, and one part's groups would
// otherwise be decoded one after another); a row group's size is bounded
// (DefaultRowGroupBytes), which bounds memory to ahead of them. An error
// or ErrStop from fn stops every reader.
func scanAhead[T any](paths []string, s *schema[T], cfg readerConfig, ahead int, fn func(*T) error) error {
	const batchRows, maxAheadBatches = 256, 4096
	type part struct {
		rows chan []T
		err  error // set before rows is closed
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Readers are stopped and waited for, so nothing reads after return.
	defer func() {
		close(stop)
		wg.Wait()
	}()
	errStopped := errors.New("scan stopped")
	units := scanUnits(paths, s, cfg)
	parts := make([]*part, len(units))
	start := func(i int) {
		u := units[i]
		// Room for the whole group, as its footer counts it: a damaged
		// footer's count (negative, or billions) is bounded here, and a
		// group larger than the room only waits for fn.
		p := &part{rows: make(chan []T, min(max(u.rows/batchRows, 0), maxAheadBatches)+2)}
		parts[i] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(p.rows)
			if u.err != nil {
				p.err = u.err
				return
			}
			buf := make([]T, 0, batchRows)
			send := func() error {
				select {
				case p.rows <- buf:
					buf = make([]T, 0, batchRows)
					return nil
				case <-stop:
					return errStopped
				}
			}
			err := scanGroups(u.path, s, cfg, []int{u.group}, func(r *T) error {
				buf = append(buf, *r)
				if len(buf) == batchRows {
					return send()
				}
				return nil
			})
			if err == nil && len(buf) > 0 {
				err = send()
			}
			p.err = err
		}()
	}
	for i := range min(ahead, len(units)) {
		start(i)
	}
	for i := range units {
		for batch := range parts[i].rows {
			for k := range batch {
				if err := fn(&batch[k]); err != nil {
					if errors.Is(err, ErrStop) {
						return nil
					}
					return err
				}
			}
		}
		if err := parts[i].err; err != nil {
			return err
		}
		parts[i] = nil
		if next := i + ahead; next < len(units) {
			start(next)
		}
	}
	return nil
}

func scanFile[T any](path string, s *schema[T], cfg readerConfig, fn func(*T) error) error {
	return scanGroups(path, s, cfg, nil, fn)
}

// scanGroups reads the given row groups of a part (nil: those that may
// hold cfg.ids, or all).
func scanGroups[T any](path string, s *schema[T], cfg readerConfig, groups []int, fn func(*T) error) (err error) {
	defer recoverDamaged(path, &err)
	rdr, fr, err := openChecked(path, s, cfg)
	if err != nil {
		return err
	}
	defer rdr.Close()
	if groups == nil {
		groups = rowGroups(rdr.MetaData(), cfg.ids)
	}
	if len(groups) == 0 {
		return nil
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, groups)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer rr.Release()
	var row T
	for rr.Next() {
		if err := scanBatch(rr.RecordBatch(), s, cfg, &row, fn); err != nil {
			if errors.Is(err, ErrStop) {
				return err
			}
			return fmt.Errorf("reading %s: %w", path, err)
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// openChecked opens a part (openPart) and its Arrow reader, and checks its
// schema against s; errors name the file. The caller closes rdr.
func openChecked[T any](path string, s *schema[T], cfg readerConfig) (rdr *file.Reader, fr *pqarrow.FileReader, err error) {
	rdr, err = openPart(path, file.WithReadProps(parquet.NewReaderProperties(cfg.mem)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var sc *arrow.Schema
	if fr, err = pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: cfg.batchRows}, cfg.mem); err == nil {
		if sc, err = fr.Schema(); err == nil {
			err = checkFileSchema(s, sc)
		}
	}
	if err != nil {
		rdr.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return rdr, fr, nil
}

// recoverDamaged turns a panic of the Parquet library, which some damaged
// files cause (a data page without its header: a nil dereference in
// arrow-go v18.8.0, found by FuzzReadCorruptedPart), into an error naming
// the file. It must be deferred by the goroutine that reads.
func recoverDamaged(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("reading %s: damaged Parquet file (the reader failed: %v)", path, p)
	}
}

// checkFileSchema says which expected column a file lacks or holds in
// another type. Extra columns are allowed, so files from a later version
// with added columns still read.
func checkFileSchema[T any](s *schema[T], sc *arrow.Schema) error {
	for _, c := range s.cols {
		fc, idx, ok := c.in(sc)
		if !ok && c.optional {
			continue
		}
		if !ok {
			return fmt.Errorf("no column %s: not an attnaudit %s file", c.names(), s.stem)
		}
		if t := sc.Field(idx).Type; !fc.readable(t) {
			return fmt.Errorf("column %q is %s, want %s", fc.name, t, fc.typ)
		}
	}
	return nil
}

func scanBatch[T any](rec arrow.RecordBatch, s *schema[T], cfg readerConfig, row *T, fn func(*T) error) error {
	sc := rec.Schema()
	readers := make([]func(int, *T), len(s.cols))
	for i, c := range s.cols {
		fc, idx, ok := c.in(sc)
		if !ok { // an optional column the file lacks
			readers[i] = func(int, *T) {}
			continue
		}
		readers[i] = fc.reader(rec.Column(idx))
	}
	for i := range int(rec.NumRows()) {
		var zero T
		*row = zero
		// example_id is the first column of every schema: read it alone
		// first, so filtered rows cost nothing more.
		readers[0](i, row)
		if !cfg.wants(s.exampleID(row)) {
			continue
		}
		for _, r := range readers[1:] {
			r(i, row)
		}
		if err := s.check(row); err != nil {
			return fmt.Errorf("row %s: %w", s.key(row), err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

// rowGroups returns the row groups that may hold rows of the wanted
// examples, by the example_id statistics: all of them when ids is nil or a
// group has no statistics.
func rowGroups(meta *metadata.FileMetaData, ids []int32) []int {
	var out []int
	col := meta.Schema.ColumnIndexByName("example_id")
	for g := range meta.NumRowGroups() {
		if ids == nil || col < 0 || mayHold(meta.RowGroup(g), col, ids) {
			out = append(out, g)
		}
	}
	return out
}

func mayHold(rg *metadata.RowGroupMetaData, col int, ids []int32) bool {
	if rg.NumRows() == 0 {
		return false
	}
	cc, err := rg.ColumnChunk(col)
	if err != nil {
		return true
	}
	if ok, err := cc.StatsSet(); !ok || err != nil {
		return true
	}
	st, err := cc.Statistics()
	if err != nil {
		return true
	}
	is, ok := st.(*metadata.Int32Statistics)
	if !ok || !is.HasMinMax() {
		return true
	}
	i, _ := slices.BinarySearch(ids, is.Min())
	return i < len(ids) && ids[i] <= is.Max()
}
