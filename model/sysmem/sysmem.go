// Package sysmem reports how much memory this process may still use: the
// tightest of the cgroup limits it runs under (v2 or v1) and the kernel's
// MemAvailable. The memory sizing of a PaDiM fit takes a fraction of it.
package sysmem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// unlimited is the value above which a cgroup v1 limit means "no limit"
// (the kernel reports PAGE_COUNTER_MAX rounded to pages, ~2⁶³).
const unlimited = 1 << 60

// Sources are where the figures are read from; the zero value is the real
// system (/proc and /sys/fs/cgroup). Tests point them at fixture trees.
type Sources struct {
	Proc   string // default "/proc"
	Cgroup string // default "/sys/fs/cgroup"
}

// Memory is a memory figure and where it came from.
type Memory struct {
	Bytes int64
	// Source names the file the figure comes from, for logs.
	Source string
}

// Available returns the memory available on the real system.
func Available() (Memory, error) { return Sources{}.Available() }

// Available returns the smallest of: MemAvailable from meminfo, and limit minus
// working set (usage less inactive file cache, which the kernel reclaims
// before it kills) of every cgroup level, v2 and v1, this process is in.
func (s Sources) Available() (Memory, error) {
	proc, cg := s.Proc, s.Cgroup
	if proc == "" {
		proc = "/proc"
	}
	if cg == "" {
		cg = "/sys/fs/cgroup"
	}
	best, err := memAvailable(filepath.Join(proc, "meminfo"))
	if err != nil {
		return Memory{}, err
	}
	groups, err := os.ReadFile(filepath.Join(proc, "self", "cgroup"))
	if err != nil {
		// No cgroup information (not Linux, or a restricted /proc).
		return best, nil
	}
	for line := range strings.Lines(string(groups)) {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var cands []Memory
		switch {
		case parts[0] == "0" && parts[1] == "":
			for _, root := range []string{cg, filepath.Join(cg, "unified")} {
				cands = append(cands, walk(root, parts[2], "memory.max", "memory.current", "inactive_file")...)
			}
		case hasController(parts[1], "memory"):
			cands = walk(filepath.Join(cg, "memory"), parts[2], "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
		}
		for _, c := range cands {
			if c.Bytes < best.Bytes {
				best = c
			}
		}
	}
	return best, nil
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// walk reads the limit at every level from the process's cgroup up to the
// mount's root. Inside a cgroup namespace the path may not exist under the
// mount (the mount is then already the process's own cgroup): levels that
// are missing are skipped.
func walk(root, rel, maxFile, curFile, inactiveKey string) []Memory {
	var out []Memory
	dir := filepath.Join(root, filepath.Clean("/"+rel))
	for {
		if a, ok := level(dir, maxFile, curFile, inactiveKey); ok {
			out = append(out, a)
		}
		if dir == root || len(dir) <= len(root) {
			return out
		}
		dir = filepath.Dir(dir)
	}
}

func level(dir, maxFile, curFile, inactiveKey string) (Memory, bool) {
	limit, ok := readInt(filepath.Join(dir, maxFile))
	if !ok || limit >= unlimited {
		return Memory{}, false
	}
	used, ok := readInt(filepath.Join(dir, curFile))
	if !ok {
		used = 0
	}
	if stat, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
		for line := range strings.Lines(string(stat)) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == inactiveKey {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n <= used {
					used -= n
				}
			}
		}
	}
	return Memory{Bytes: max(limit-used, 0), Source: filepath.Join(dir, maxFile)}, true
}

// readInt reads a one-number file; "max" (cgroup v2's no limit) is not a
// number.
func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return n, err == nil
}

func memAvailable(path string) (Memory, error) {
	f, err := os.Open(path)
	if err != nil {
		return Memory{}, fmt.Errorf("available memory: %w", err)
	}
	defer f.Close()
	fields := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "MemAvailable:   23705000 kB"
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			continue
		}
		if unit == "kB" {
			n *= 1024
		}
		fields[k] = n
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("available memory: read %s: %w", path, err)
	}
	if n, ok := fields["MemAvailable"]; ok {
		return Memory{Bytes: n, Source: path + " MemAvailable"}, nil
	}
	// Kernels before 3.14 lack MemAvailable.
	free, ok1 := fields["MemFree"]
	cached, ok2 := fields["Cached"]
	if !ok1 || !ok2 {
		return Memory{}, errors.New("available memory: " + path + " has neither MemAvailable nor MemFree and Cached")
	}
	return Memory{Bytes: free + cached + fields["Buffers"], Source: path + " MemFree+Cached+Buffers"}, nil
}
