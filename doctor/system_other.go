//go:build !linux

package doctor

import (
	"errors"
	"fmt"
)

// Outside Linux the checks that read /proc, flock, statfs and rlimits say
// they could not look rather than guess.

var errUnsupported = errors.New("not checked on this system")

type owner struct{ PID int }

func (o owner) String() string { return fmt.Sprintf("pid %d", o.PID) }

func listenerOwner(int) (owner, bool)          { return owner{}, false }
func flockHolder(string) (int, bool)           { return 0, false }
func probeFlock(string) (bool, error)          { return false, errUnsupported }
func fileLimit() (Limit, error)                { return Limit{}, errUnsupported }
func diskSpace(string) (uint64, uint64, error) { return 0, 0, errUnsupported }
func writable(string) error                    { return nil }
