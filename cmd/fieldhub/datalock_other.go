//go:build !unix

package main

import (
	"errors"
	"fmt"
)

var errDataInUse = errors.New("data folder is in use")

// dataLock is unsupported here: serve refuses to run unlocked rather than
// risk two hubs on one folder.
type dataLock struct{}

func lockDataDir(dir, what string) (*dataLock, error) {
	return nil, fmt.Errorf("lock data folder %s: %s needs a Unix system (flock)", dir, what)
}

func (l *dataLock) Release() {}
