package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips it saying
// why when it cannot (not root, no mount permission).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk test skipped: mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("full-disk test skipped: cannot mount a %s tmpfs here: %v %s", size, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// TestFullDiskLeavesNoPartThatLooksComplete writes more attention than a
// 256 kB disk holds: the writer fails saying the disk is full, and leaves
// neither a part under a final name nor a temporary file.
func TestFullDiskLeavesNoPartThatLooksComplete(t *testing.T) {
	dir := smallDisk(t, "256k")
	rows := fixtureAttention(40, 2, 4, 30)
	w, err := NewAttentionWriter(dir, AttentionOptions{Precision: PrecisionFloat32}, WithRowGroupRows(8))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	err = w.Write(rows...)
	if err == nil {
		err = w.Close()
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "the disk is full") {
		t.Fatalf("writing past a full disk: %v, want ENOSPC saying the disk is full", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left %s behind", filepath.Join(dir, e.Name()))
	}
	if _, err := Parts(dir, AttentionStem); err == nil {
		t.Error("Parts lists a part after the failed write")
	}
}
