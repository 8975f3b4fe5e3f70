package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PartInfo is what a writer knew of a part when it committed it: its file
// name, size, SHA-256 and row count. Runs record it (the manifest's parts)
// so that a damaged or missing file is found before it is read.
type PartInfo struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Rows   int64  `json:"rows"`
}

// Errors of CheckPart, for errors.Is.
var (
	ErrPartMissing = errors.New("missing")
	ErrPartDamaged = errors.New("damaged")
)

// CheckPart checks the part p in dir against what was recorded: that the
// file exists (ErrPartMissing), has the recorded size and SHA-256
// (ErrPartDamaged), and that its Parquet footer reads and counts the
// recorded rows. The error names the file and what differs.
func CheckPart(dir string, p PartInfo) error {
	if p.Name == "" || p.Name != filepath.Base(p.Name) || strings.HasPrefix(p.Name, ".") {
		return fmt.Errorf("%q is not the name of a part in %s", p.Name, dir)
	}
	path := filepath.Join(dir, p.Name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", path, ErrPartMissing)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if info.Size() != p.Bytes {
		return fmt.Errorf("%s: %w: %d bytes, recorded %d", path, ErrPartDamaged, info.Size(), p.Bytes)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		return fmt.Errorf("%s: %w: sha256 %.12s…, recorded %.12s…", path, ErrPartDamaged, sum, p.SHA256)
	}
	rows, err := FileRows(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPartDamaged, err)
	}
	if rows != p.Rows {
		return fmt.Errorf("%s: %w: %d rows, recorded %d", path, ErrPartDamaged, rows, p.Rows)
	}
	return nil
}

// FileRows returns the row count in a Parquet file's footer, reading
// nothing else. A truncated or corrupted footer is an error.
func FileRows(path string) (rows int64, err error) {
	defer recoverDamaged(path, &err)
	rdr, err := openPart(path)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	defer rdr.Close()
	return rdr.NumRows(), nil
}
