// Package memlimit chooses the Go runtime's soft memory limit from the container's cgroup when the
// user gave none, so that a big first start (a first clone and index build) collects garbage before
// it reaches the pod's limit instead of being killed at it.
package memlimit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Share is the part of the cgroup's limit given to the Go heap's soft limit: the rest is for what
// the limit does not count (goroutine stacks, the runtime's own structures, the page cache the
// kernel charges to the cgroup for the repository cache's files).
const Share = 0.9

// Choice is what Choose decided and why, for the start-up log line.
type Choice struct {
	// Limit is the soft limit to set in bytes, or 0: leave the runtime's default.
	Limit int64
	// Reason says where the limit comes from, or why none is set.
	Reason Reason
	// Detail is for a person: the file read and its value, or what failed.
	Detail string
}

// Reason is why a limit was or was not chosen.
type Reason string

// The reasons a Choice gives.
const (
	// FromEnv: GOMEMLIMIT is set; the runtime already honours it.
	FromEnv Reason = "GOMEMLIMIT set"
	// FromCgroupV2: memory.max of the cgroup v2 hierarchy.
	FromCgroupV2 Reason = "cgroup v2 memory.max"
	// FromCgroupV1: memory.limit_in_bytes of the cgroup v1 memory controller.
	FromCgroupV1 Reason = "cgroup v1 memory.limit_in_bytes"
	// NoLimit: the cgroup has no memory limit (or there is no cgroup file to read).
	NoLimit Reason = "no cgroup memory limit"
	// Unreadable: a cgroup file exists but could not be read or parsed.
	Unreadable Reason = "cgroup memory limit unreadable"
)

// unlimited is the value at and above which a cgroup v1 limit means none (the kernel reports
// PAGE_COUNTER_MAX pages, a little under 2^63, rounded to the page size).
const unlimited = int64(1) << 62

// Choose decides the soft memory limit: none when gomemlimit (the GOMEMLIMIT environment variable)
// is set, else Share of the cgroup's memory limit found under root (/sys/fs/cgroup in a container):
// cgroup v2's memory.max, else cgroup v1's memory/memory.limit_in_bytes.
func Choose(root, gomemlimit string) Choice {
	if gomemlimit != "" {
		return Choice{Reason: FromEnv, Detail: "GOMEMLIMIT=" + gomemlimit}
	}
	for _, f := range []struct {
		path   string
		reason Reason
	}{
		{filepath.Join(root, "memory.max"), FromCgroupV2},
		{filepath.Join(root, "memory", "memory.limit_in_bytes"), FromCgroupV1},
	} {
		data, err := os.ReadFile(f.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Choice{Reason: Unreadable, Detail: err.Error()}
		}
		v := strings.TrimSpace(string(data))
		if v == "max" {
			return Choice{Reason: NoLimit, Detail: f.path + " is max"}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return Choice{Reason: Unreadable, Detail: fmt.Sprintf("%s: %q is not a byte count", f.path, v)}
		}
		if n >= unlimited {
			return Choice{Reason: NoLimit, Detail: fmt.Sprintf("%s is %d (unlimited)", f.path, n)}
		}
		return Choice{Limit: int64(float64(n) * Share), Reason: f.reason,
			Detail: fmt.Sprintf("%s is %d bytes; the Go heap's soft limit is %.0f%% of it", f.path, n, Share*100)}
	}
	return Choice{Reason: NoLimit, Detail: "no memory.max or memory/memory.limit_in_bytes under " + root}
}
