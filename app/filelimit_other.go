//go:build !linux && !darwin

package app

import "errors"

// RaiseFileLimit: elsewhere the limit is unknown (0), and the connection
// caps are what the flags say.
func RaiseFileLimit() (int, error) {
	return 0, errors.New("file limits are not supported on this system")
}
