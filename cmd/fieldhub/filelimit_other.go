//go:build !linux && !darwin

package main

import "errors"

// raiseFileLimit: elsewhere the limit is unknown (0), and the connection
// caps are what the flags say.
func raiseFileLimit() (int, error) {
	return 0, errors.New("file limits are not supported on this system")
}
