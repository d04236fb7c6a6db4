// Package datadir is the hub's data folder (--data): where each thing lives
// in it, and the lock that keeps two processes from serving or restoring
// one folder at once. Two hubs on one folder would each keep their own
// in-memory telemetry and lose readings; a restore under a running hub
// would swap its database away.
package datadir

import (
	"errors"
	"path/filepath"
)

// What the folder holds.
const (
	// DatabaseFile is the SQLite database: the registry, users, audit
	// log, commands and the message log with the time series.
	DatabaseFile = "fieldhub.db"
	// TLSDir holds the generated CA and the device endpoints' certificate.
	TLSDir = "tls"
	// LockFile is the lock. It holds the holder's PID and start time so
	// that a refusal can name it, and is left in place when the lock is
	// released (removing it would let two processes lock different files).
	LockFile = "fieldhub.lock"
)

// ErrInUse is returned when another process holds the data folder.
var ErrInUse = errors.New("data folder is in use")

// Database is the database file of the folder dir.
func Database(dir string) string { return filepath.Join(dir, DatabaseFile) }

// TLS is the TLS folder of the folder dir.
func TLS(dir string) string { return filepath.Join(dir, TLSDir) }
