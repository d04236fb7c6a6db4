//go:build linux || darwin

package app

import (
	"fmt"
	"math"
	"syscall"
)

// RaiseFileLimit raises the soft limit on open files to the hard limit and
// returns the limit in force: every connection costs a descriptor, and the
// listeners' caps are worked out within it. (Go already raises it at
// start on most systems; this makes it so, and tells what it is.)
func RaiseFileLimit() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("read the file limit: %w", err)
	}
	var raiseErr error
	if r.Cur < r.Max {
		want := syscall.Rlimit{Cur: r.Max, Max: r.Max}
		// macOS refuses an unlimited hard limit; the soft one stays.
		if raiseErr = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); raiseErr == nil {
			r = want
		} else {
			raiseErr = fmt.Errorf("raise the file limit from %d to %d: %w", r.Cur, r.Max, raiseErr)
		}
	}
	return int(min(r.Cur, math.MaxInt32)), raiseErr
}
