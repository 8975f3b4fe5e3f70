package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockDir takes an exclusive flock on a file in dir, one per shard so that
// the shards of a run can write into one folder at once, or fails at once
// naming the holder. The kernel drops the lock when the process dies, even
// by kill -9, so a crashed run never leaves a stale lock behind. The
// returned function releases it.
func lockDir(dir string, s Shard) (unlock func(), err error) {
	path := filepath.Join(dir, fmt.Sprintf(".lock-shard-%d-of-%d", s.Index, s.Count))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another attnaudit (%s); wait for it to finish or use another --output-dir",
				dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	// Who holds the lock is only for the message above; failing to record it
	// must not stop the run.
	if f.Truncate(0) == nil {
		fmt.Fprintf(f, "pid %d on %s\n", os.Getpid(), host)
	}
	return func() { f.Close() }, nil
}
