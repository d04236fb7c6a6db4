package app

import (
	"context"
	"fmt"

	"fieldhub/bus"
	"fieldhub/commands"
	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/db/postgres"
	"fieldhub/handlers"
	"fieldhub/mqtt"
	"fieldhub/registry"
	"fieldhub/retention"
	"fieldhub/telemetry"
	telsqlite "fieldhub/telemetry/sqlite"
)

// Store is everything the hub keeps outside telemetry, as its parts use it:
// each embedded interface is declared by the package that uses it, and the
// methods below by the app itself and the command line. *db.DB (SQLite) is
// one; any other store must pass the suites of package db/storetest, which
// test exactly this interface.
type Store interface {
	handlers.Store
	registry.Store
	registry.Auditor
	commands.CloudStore
	commands.MethodStore
	commands.TwinStore
	mqtt.Store
	retention.Store
	bus.Store

	// ResetConnections marks every device disconnected: no connection
	// survives a restart.
	ResetConnections(ctx context.Context) error
	// ResetNodeConnections marks disconnected the devices connected to
	// one instance of a cluster, at its start.
	ResetNodeConnections(ctx context.Context, node string) error
	// CountUsers tells whether the first admin must still be created.
	CountUsers(ctx context.Context) (int, error)
	// Setting reads a setting (def when unset); SetSetting stores one.
	Setting(ctx context.Context, key, def string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
	// The command line's management of API tokens (`fieldhub token`).
	CreateAPIToken(ctx context.Context, name, role, token string) (db.APIToken, error)
	APITokens(ctx context.Context) ([]db.APIToken, error)
	RevokeAPIToken(ctx context.Context, id int64) error

	Close() error
}

var (
	_ Store = (*db.DB)(nil)
	_ Store = (*postgres.Store)(nil)
)

// backend is what one database gives the hub: the store, telemetry's
// storage in the same database, and the store's naming of its faults
// (storage.NewHealth). Another kind of database is another opener.
type backend struct {
	store     Store
	telemetry telemetry.Storage
	faultKind func(error) string
}

// openSQLite opens the SQLite database of the data folder dir.
func openSQLite(ctx context.Context, dir string) (backend, error) {
	d, err := OpenStore(ctx, dir)
	if err != nil {
		return backend{}, err
	}
	return backend{store: d, telemetry: telsqlite.New(d), faultKind: db.FaultKind}, nil
}

// OpenStore opens (creating and migrating as needed) the database in the
// data folder dir; the command line's commands use it beside a running hub.
func OpenStore(ctx context.Context, dir string) (*db.DB, error) {
	d, err := db.Open(ctx, datadir.Database(dir), db.Options{})
	if err != nil {
		return nil, fmt.Errorf("open database in %s: %w", dir, err)
	}
	return d, nil
}
