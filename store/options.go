package store

import (
	"errors"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrStop, returned by a scan callback, stops the scan without an error.
var ErrStop = errors.New("store: stop scanning")

// DefaultRowGroupBytes bounds a row group's uncompressed size. A writer holds
// one row group in memory and a reader one column chunk of it per column, so
// this is the memory a stage needs per open file; smaller groups also let a
// reader filtering by example skip more of a file.
const DefaultRowGroupBytes = 16 << 20

// WriterOption tunes a writer. The zero set of options is a good default.
type WriterOption func(*writerConfig)

type writerConfig struct {
	rowGroupRows  int
	rowGroupBytes int64
	zstdLevel     int
	mem           memory.Allocator
}

func newWriterConfig(defaultRows int, opts []WriterOption) writerConfig {
	c := writerConfig{rowGroupRows: defaultRows, rowGroupBytes: DefaultRowGroupBytes, zstdLevel: 3, mem: memory.DefaultAllocator}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithRowGroupRows ends a row group after n rows (n > 0). Fewer rows per
// group mean less memory and finer skipping, more rows better compression.
func WithRowGroupRows(n int) WriterOption {
	return func(c *writerConfig) {
		if n > 0 {
			c.rowGroupRows = n
		}
	}
}

// WithRowGroupBytes ends a row group once its rows' uncompressed size
// reaches n bytes (n > 0); see DefaultRowGroupBytes.
func WithRowGroupBytes(n int64) WriterOption {
	return func(c *writerConfig) {
		if n > 0 {
			c.rowGroupBytes = n
		}
	}
}

// WithZstdLevel sets the zstd compression level (default 3): higher levels
// make smaller files and slower writes.
func WithZstdLevel(level int) WriterOption {
	return func(c *writerConfig) { c.zstdLevel = level }
}

// WithWriteAllocator makes the writer allocate Arrow buffers from mem (tests
// pass a checked allocator to find leaks).
func WithWriteAllocator(mem memory.Allocator) WriterOption {
	return func(c *writerConfig) { c.mem = mem }
}

// ReaderOption tunes a reader.
type ReaderOption func(*readerConfig)

type readerConfig struct {
	ids       []int32 // sorted; nil reads every example
	batchRows int64
	mem       memory.Allocator
}

func newReaderConfig(opts []ReaderOption) readerConfig {
	c := readerConfig{batchRows: 256, mem: memory.DefaultAllocator}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func (c readerConfig) wants(id int32) bool {
	if c.ids == nil {
		return true
	}
	_, found := slices.BinarySearch(c.ids, id)
	return found
}

// WithExampleIDs reads only the rows of these examples. Row groups whose
// example_id range holds none of them are not read at all.
func WithExampleIDs(ids ...int32) ReaderOption {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if sorted == nil {
		sorted = []int32{}
	}
	return func(c *readerConfig) { c.ids = sorted }
}

// WithBatchRows sets how many rows a reader decodes at a time (default 256):
// the memory a scan holds beyond the current row group.
func WithBatchRows(n int) ReaderOption {
	return func(c *readerConfig) {
		if n > 0 {
			c.batchRows = int64(n)
		}
	}
}

// WithReadAllocator makes the reader allocate Arrow buffers from mem.
func WithReadAllocator(mem memory.Allocator) ReaderOption {
	return func(c *readerConfig) { c.mem = mem }
}
