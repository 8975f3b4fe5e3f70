package store

import (
	"os"
	"path/filepath"
	"testing"
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
		ScanAttention(dir, func(Attention) error { return nil })
		ScanAttention(dir, func(Attention) error { return nil }, WithExampleIDs(1))
		FileRows(path)
		ReadExamples(path)
		ReadHeadMetrics(path)
	})
}
