// Package memlock reads how much memory a process has locked, for the
// tests of boltstore.Options.LockInMemory (store/boltstore's Open, the
// binary's serve --db-lock-in-memory). Linux only: it reads /proc.
package memlock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Locked returns the bytes the process pid (0: this one) has locked: VmLck
// of /proc/PID/status.
func Locked(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmLck:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %w", path, line, err)
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no VmLck line", path)
}
