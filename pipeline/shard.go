package pipeline

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Shard is one slice of a run: chunk c belongs to shard c mod Count. Chunks,
// not examples, are dealt out, so every shard writes whole Parquet parts and
// the union of all shards' parts is exactly the unsharded run.
type Shard struct {
	Index, Count int
}

// All is the whole run as one shard.
var All = Shard{Index: 0, Count: 1}

// Owns reports whether chunk c is this shard's.
func (s Shard) Owns(c int) bool { return c%s.Count == s.Index }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "I/N" (0 ≤ I < N). "N" alone or "/N" takes I from
// JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or SLURM_ARRAY_TASK_ID
// (Slurm job arrays), so one command line serves every task of a job.
func ParseShard(spec string) (Shard, error) {
	if spec == "" {
		return All, nil
	}
	idx, count, found := strings.Cut(spec, "/")
	if !found {
		idx, count = "", idx
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return Shard{}, fmt.Errorf("--shard %q: want I/N with N ≥ 1", spec)
	}
	if idx == "" {
		for _, env := range []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"} {
			if v, ok := os.LookupEnv(env); ok {
				idx = v
				break
			}
		}
		if idx == "" {
			return Shard{}, fmt.Errorf("--shard %q: no index given and neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set", spec)
		}
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: index %q must be an integer in [0, %d)", spec, idx, n)
	}
	return Shard{Index: i, Count: n}, nil
}
