//go:build unix

package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lock is a held lock on a data folder: an exclusive flock on LockFile.
type Lock struct{ f *os.File }

// Take takes the data folder's lock without waiting, creating the folder
// if needed; ErrInUse says another process holds it, naming it. what says
// what the holder does ("fieldhub serve").
func Take(dir, what string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by %s; stop it first", ErrInUse, dir, describeHolder(holder))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Only the holder writes, after locking: a refused process reads the
	// current holder and never truncates it.
	// The PID is a courtesy for that message; the lock holds without it.
	info := fmt.Sprintf("%d\n%s\n%s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339), what)
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(info), 0)
	}
	return &Lock{f: f}, nil
}

// describeHolder turns the lock file's contents into words.
func describeHolder(content []byte) string {
	lines := strings.Split(strings.TrimSpace(string(content)), "\n")
	pid, err := strconv.Atoi(lines[0])
	if err != nil {
		return "another process (its PID is not recorded yet)"
	}
	what := "another process"
	if len(lines) > 2 && lines[2] != "" {
		what = lines[2]
	}
	s := fmt.Sprintf("%s (pid %d", what, pid)
	if len(lines) > 1 {
		if at, err := time.Parse(time.RFC3339, lines[1]); err == nil {
			s += ", started " + at.Local().Format(time.DateTime+" MST")
		}
	}
	return s + ")"
}

// Release clears the holder and unlocks.
func (l *Lock) Release() {
	_ = l.f.Truncate(0)
	l.f.Close() // closing the last descriptor drops the flock
}
