//go:build !unix

package datadir

import "fmt"

// Lock is unsupported here: serve refuses to run unlocked rather than risk
// two hubs on one folder.
type Lock struct{}

// Take fails: locking needs flock.
func Take(dir, what string) (*Lock, error) {
	return nil, fmt.Errorf("lock data folder %s: %s needs a Unix system (flock)", dir, what)
}

// Release does nothing.
func (l *Lock) Release() {}
