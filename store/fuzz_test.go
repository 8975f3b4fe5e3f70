package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FuzzReadCorruptedPart reads attention and examples parts whose bytes are
// a valid part's with one stretch overwritten, truncated, or anything:
// every reader must return rows or an error, never panic.
func FuzzReadCorruptedPart(f *testing.F) {
	dir := f.TempDir()
	writeAttention(f, dir, fixtureAttention(2, 1, 2, 5), AttentionOptions{})
	valid, err := os.ReadFile(filepath.Join(dir, AttentionPartName(0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, uint32(0), uint32(0), []byte{})
	f.Add(valid, uint32(len(valid)-12), uint32(0), []byte{0xff, 0xff, 0xff, 0x7f}) // footer length
	f.Add(valid, uint32(len(valid)/2), uint32(len(valid)-1), []byte("PAR1"))       // truncated
	f.Add(valid, uint32(100), uint32(0), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("PAR1PAR1"), uint32(0), uint32(0), []byte{})
	// every packed layout (the default), and a compact part
	for i, opts := range []AttentionOptions{{}, {Precision: PrecisionCompact}} {
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
		rows, _ := packedFixture()
		writeAttention(f, d, rows, opts)
		part, err := os.ReadFile(filepath.Join(d, AttentionPartName(0)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(part, uint32(len(part)/3), uint32(0), []byte{0x7f, 0xff})
	}
	f.Fuzz(func(t *testing.T, base []byte, at, cut uint32, patch []byte) {
		data := append([]byte(nil), base...)
		if n := len(data); n > 0 {
			copy(data[int(at)%n:], patch)
			if cut > 0 {
				data = data[:n-int(cut)%n]
			}
		}
		dir := t.TempDir()
		path := filepath.Join(dir, AttentionPartName(0))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bothScans(func() {
			ScanAttention(dir, func(Attention) error { return nil })
			ScanAttention(dir, func(Attention) error { return nil }, WithExampleIDs(1))
		})
		FileRows(path)
		ReadExamples(path)
		ReadHeadMetrics(path)
	})
}

// bothScans runs fn with one core (a scan decodes as it goes) and with
// four (row groups decoded ahead on goroutines: scanAhead), whatever the
// machine's count.
func bothScans(fn func()) {
	for _, procs := range []int{1, 4} {
		old := runtime.GOMAXPROCS(procs)
		fn()
		runtime.GOMAXPROCS(old)
	}
}

// TestRandomlyDamagedPartsFailCleanly reads 3,000 copies of a valid part,
// each with a few bytes overwritten or the tail cut (a fixed seed, so the
// same files each run): every read returns rows or an error within a
// second, without panicking, scanned with and without reading ahead. It found a panic in the Parquet library (now
// an error; see recoverDamaged).
func TestRandomlyDamagedPartsFailCleanly(t *testing.T) {
	src := t.TempDir()
	writeAttention(t, src, fixtureAttention(2, 1, 2, 5), AttentionOptions{})
	valid, err := os.ReadFile(filepath.Join(src, AttentionPartName(0)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	path := filepath.Join(dir, AttentionPartName(0))
	for i := range 3000 {
		data := append([]byte(nil), valid...)
		for range 1 + rng.IntN(3) {
			at := rng.IntN(len(data))
			for k := 0; k < 1+rng.IntN(8) && at+k < len(data); k++ {
				data[at+k] = []byte{0, 0xff, 0x7f, 0x80, byte(rng.IntN(256))}[rng.IntN(5)]
			}
		}
		if rng.IntN(4) == 0 {
			data = data[:rng.IntN(len(data))]
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		bothScans(func() { ScanAttention(dir, func(Attention) error { return nil }) })
		FileRows(path)
		if took := time.Since(start); took > time.Second {
			t.Errorf("damaged copy %d took %v to read", i, took)
		}
	}
}

// TestDamagedFooterAllocatesLittle reads three 1–2 kB parts with damaged
// footers found by FuzzReadCorruptedPart, for which the Parquet library
// made room before finding the bytes missing (checkFooter, checkChunks):
// one declares a list of millions of column chunks (1.5 GB a read), one a
// schema group of millions of children, one a column chunk of 17 GB.
// Every reader must fail naming the file, allocating next to nothing.
func TestDamagedFooterAllocatesLittle(t *testing.T) {
	for _, name := range []string{"damaged-footer-huge-list.parquet", "damaged-footer-schema-children.parquet", "damaged-chunk-length.parquet"} {
		dir := t.TempDir()
		path := filepath.Join(dir, AttentionPartName(0))
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		scan := func() error { return ScanAttention(dir, func(Attention) error { return nil }) }
		readers := map[string]func() error{
			"ScanAttention": scan,
			"ScanAttention, read ahead": func() (err error) {
				bothScans(func() {
					if runtime.GOMAXPROCS(0) > 1 {
						err = scan()
					}
				})
				return err
			},
			"FileRows":        func() error { _, err := FileRows(path); return err },
			"ReadExamples":    func() error { _, err := ReadExamples(path); return err },
			"ReadHeadMetrics": func() error { _, err := ReadHeadMetrics(path); return err },
		}
		for reader, read := range readers {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := read()
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), AttentionPartName(0)) || !strings.Contains(err.Error(), "damaged Parquet") {
				t.Errorf("%s, %s: error %v, want the damaged metadata of %s", name, reader, err, AttentionPartName(0))
			}
			if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 16 {
				t.Errorf("%s, %s: allocated %d MB reading a %d-byte part", name, reader, mb, len(data))
			}
		}
	}
}

// TestSchemaTree checks the schema shapes checkFooter accepts: depth-first
// elements with their children counts.
func TestSchemaTree(t *testing.T) {
	for _, c := range []struct {
		children []int32
		ok       bool
	}{
		{nil, true},
		{[]int32{0}, true},
		{[]int32{3, 0, 0, 0}, true},
		{[]int32{2, 1, 0, 0}, true},
		{[]int32{2, 1, 0, 0, 7}, true}, // elements after the tree are not read
		{[]int32{2, 0}, false},
		{[]int32{2, 1, 0}, false},
		{[]int32{1 << 30, 0, 0}, false},
		{[]int32{1, -1}, false},
	} {
		if err := schemaTree(c.children); (err == nil) != c.ok {
			t.Errorf("schemaTree(%v) = %v, want ok %v", c.children, err, c.ok)
		}
	}
}
