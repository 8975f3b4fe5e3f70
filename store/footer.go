package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/thrift/lib/go/thrift"
)

// openPart opens a Parquet file for reading once its footer has passed
// checkFooter, and checks that its column chunks lie inside the file. The
// library reads the file through the handle the footer was checked on.
func openPart(path string, opts ...file.ReadOption) (*file.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := checkFooter(f); err != nil {
		f.Close()
		return nil, err
	}
	rdr, err := file.NewParquetReader(f, opts...)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkChunks(rdr); err != nil {
		rdr.Close() // closes f
		return nil, err
	}
	return rdr, nil
}

// checkChunks checks that every column chunk's pages lie inside the file:
// the library reads a chunk into one buffer of the length its metadata
// gives (FuzzReadCorruptedPart found a part whose chunk claimed 17 GB).
func checkChunks(rdr *file.Reader) error {
	meta := rdr.MetaData()
	size := meta.GetSourceFileSize()
	for g := range meta.NumRowGroups() {
		rg := meta.RowGroup(g)
		for c := range rg.NumColumns() {
			col, err := rg.ColumnChunk(c)
			if err != nil {
				return err
			}
			start := col.DataPageOffset()
			if col.HasDictionaryPage() && col.DictionaryPageOffset() > 0 && start > col.DictionaryPageOffset() {
				start = col.DictionaryPageOffset()
			}
			if n := col.TotalCompressedSize(); start < 4 || n < 0 || n > size-8-start {
				return fmt.Errorf("damaged Parquet metadata: row group %d column %d claims bytes %d to %d of %d", g, c, start, start+n, size)
			}
		}
	}
	return nil
}

// checkFooter walks a Parquet file's footer (its metadata, Thrift compact
// encoding, before the last 8 bytes) before the Parquet library decodes
// it, so that a damaged footer is an error rather than an allocation of
// gigabytes (FuzzReadCorruptedPart found two such 2 kB parts):
//
//   - every value is read with Thrift's Skip, which keeps none: a footer
//     may declare a list of up to 100 million entries (the Thrift library's
//     message limit), for which the library's decoder makes room (1.5 GB)
//     before it finds the bytes missing; Skip reads at least a byte an
//     entry, so a footer it walks to its end declares no list longer than
//     itself;
//   - the schema's elements (FileMetaData field 2) must form a tree: the
//     library makes room for each group's num_children (up to 2³¹) before
//     it looks for them.
//
// Files that are not plain Parquet (too short, encrypted footer, footer
// length past the start) are left to the library, which reports them.
func checkFooter(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var tail [8]byte
	if st.Size() < 12 {
		return nil
	}
	if _, err := f.ReadAt(tail[:], st.Size()-8); err != nil {
		return err
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if string(tail[4:]) != "PAR1" || n > st.Size()-12 {
		return nil
	}
	footer := make([]byte, n)
	if _, err := f.ReadAt(footer, st.Size()-8-n); err != nil {
		return err
	}
	if err := walkFileMetaData(footer); err != nil {
		return fmt.Errorf("damaged Parquet footer (%d bytes): %w", n, err)
	}
	return nil
}

// Thrift field ids of parquet.thrift.
const (
	fileMetaDataSchema       = 2 // FileMetaData.schema: list<SchemaElement>
	schemaElementNumChildren = 5 // SchemaElement.num_children: i32
)

// walkFileMetaData reads a FileMetaData struct with Skip, except the
// schema's num_children, and checks that the schema is a tree.
func walkFileMetaData(footer []byte) error {
	ctx := context.Background()
	in := thrift.NewTCompactProtocolConf(&thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(footer)}, &thrift.TConfiguration{})
	if _, err := in.ReadStructBegin(ctx); err != nil {
		return err
	}
	var children []int32
	for {
		_, typ, id, err := in.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if typ == thrift.STOP {
			break
		}
		if id != fileMetaDataSchema || typ != thrift.LIST {
			if err := thrift.SkipDefaultDepth(ctx, in, typ); err != nil {
				return err
			}
			continue
		}
		elem, size, err := in.ReadListBegin(ctx)
		if err != nil {
			return err
		}
		if elem != thrift.STRUCT {
			return fmt.Errorf("schema: a list of %v, want structs", elem)
		}
		children = children[:0]
		for range size {
			k, err := walkSchemaElement(ctx, in)
			if err != nil {
				return fmt.Errorf("schema element %d: %w", len(children), err)
			}
			children = append(children, k)
		}
	}
	return schemaTree(children)
}

// walkSchemaElement reads a SchemaElement with Skip and returns its
// num_children (0 when absent).
func walkSchemaElement(ctx context.Context, in thrift.TProtocol) (int32, error) {
	if _, err := in.ReadStructBegin(ctx); err != nil {
		return 0, err
	}
	var k int32
	for {
		_, typ, id, err := in.ReadFieldBegin(ctx)
		if err != nil {
			return 0, err
		}
		if typ == thrift.STOP {
			return k, nil
		}
		if id == schemaElementNumChildren && typ == thrift.I32 {
			if k, err = in.ReadI32(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err := thrift.SkipDefaultDepth(ctx, in, typ); err != nil {
			return 0, err
		}
	}
}

// schemaTree checks that schema elements, each with its number of
// children, depth first, form a tree as the Parquet library reads them
// (the root first; elements after the tree are not read).
func schemaTree(children []int32) error {
	if len(children) == 0 {
		return nil // no schema: the library says so
	}
	// want: subtrees still to read, of the groups on the path
	want := []int64{1}
	for i, k := range children {
		if len(want) == 0 {
			return nil
		}
		if k < 0 {
			return fmt.Errorf("schema element %d: %d children", i, k)
		}
		want[len(want)-1]--
		if k > 0 {
			want = append(want, int64(k))
		}
		for len(want) > 0 && want[len(want)-1] == 0 {
			want = want[:len(want)-1]
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("schema: %d elements, too few for the children its groups declare", len(children))
	}
	return nil
}
