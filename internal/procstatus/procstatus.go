// Package procstatus reads a process's memory figures from
// /proc/PID/status: how much it has locked, for the tests of
// boltstore.Options.LockInMemory (store/boltstore's Open, the binary's serve
// --db-lock-in-memory), and its RSS, for make scale. Linux only.
package procstatus

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Locked returns the bytes the process pid (0: this one) has locked
// (VmLck).
func Locked(pid int) (int64, error) { return Bytes(pid, "VmLck") }

// Bytes returns the field of /proc/PID/status (pid 0: this process) that
// is a size in kB, such as VmRSS or VmLck, in bytes.
func Bytes(pid int, field string) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %w", path, line, err)
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no %s line", path, field)
}
