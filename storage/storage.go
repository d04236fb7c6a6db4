// Package storage is what the hub knows about storage without knowing which
// database holds it: the errors every store returns (ErrNotFound,
// ErrConflict, InvalidError), how stores keep time (Unix milliseconds), and
// Health, the state of the hub's writes that /readyz, the pages and the
// device endpoints report.
//
// The stores themselves are db (SQLite: the registry, users, audit, command
// queue, twins, MQTT sessions, settings) and telemetry's Storage
// implementations (telemetry/sqlite); the interfaces they implement are
// declared by the packages that use them (see docs/architecture.md).
package storage

import (
	"errors"
	"fmt"
	"time"
)

// Errors every store returns, wrapped with what was looked for (`device "x":
// not found`); handlers map them to statuses in one place.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// InvalidError says which input was wrong and why; the message is shown to
// whoever sent it.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// Invalid makes an InvalidError for field with a formatted reason.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// UnixMS is t as stores keep times: Unix milliseconds, 0 for the zero time.
func UnixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromUnixMS is UnixMS's inverse, in UTC: 0 is the zero time.
func FromUnixMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
