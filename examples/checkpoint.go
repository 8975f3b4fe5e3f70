package examples

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// CheckpointsDir holds the shipped checkpoints of the reference model, one
// folder per epoch of one training run (epoch-001, …), relative to the
// repository root. They are found on disk rather than embedded, to keep the
// binary small; the demo dataset, a few kilobytes, is embedded.
const CheckpointsDir = "examples/checkpoints/ko-en-small"

// DefaultCheckpoint returns the shipped final checkpoint: the highest epoch
// under CheckpointsDir, looked up from the working directory and from the
// executable's folder and its parent (bin/attnaudit in a checkout).
func DefaultCheckpoint() (string, error) {
	roots := []string{"."}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	for _, root := range roots {
		epochs, err := filepath.Glob(filepath.Join(root, CheckpointsDir, "epoch-*"))
		if err != nil || len(epochs) == 0 {
			continue
		}
		sort.Strings(epochs) // epoch-NNN names sort by epoch
		return epochs[len(epochs)-1], nil
	}
	return "", fmt.Errorf("no shipped checkpoint found under %s (looked in %v); run from the repository or pass --checkpoint DIR", CheckpointsDir, roots)
}
