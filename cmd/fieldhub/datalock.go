//go:build unix

package main

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

// lockFileName is the data folder's lock: serve and restore hold an
// exclusive flock on it. Two hubs on one folder would each keep their own
// in-memory telemetry and lose readings; a restore under a running hub
// would swap its database away. The file holds the holder's PID and start
// time so that the refusal can name it; it is left in place when the lock
// is released (removing it would let two processes lock different files).
const lockFileName = "fieldhub.lock"

// errDataInUse is returned when another process holds the data folder.
var errDataInUse = errors.New("data folder is in use")

// dataLock is a held lock on a data folder.
type dataLock struct{ f *os.File }

// lockDataDir takes the data folder's lock without waiting, creating the
// folder if needed. what says what the holder does ("fieldhub serve").
func lockDataDir(dir, what string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by %s; stop it first", errDataInUse, dir, describeHolder(holder))
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
	return &dataLock{f: f}, nil
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
func (l *dataLock) Release() {
	_ = l.f.Truncate(0)
	l.f.Close() // closing the last descriptor drops the flock
}
