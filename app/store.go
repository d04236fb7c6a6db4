package app

import (
	"context"
	"fmt"
	"log/slog"

	"fieldhub/alerting"
	"fieldhub/bus"
	"fieldhub/cluster"
	"fieldhub/commands"
	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/db/postgres"
	"fieldhub/handlers"
	"fieldhub/jobs"
	"fieldhub/metrics"
	"fieldhub/mqtt"
	"fieldhub/policy"
	"fieldhub/registry"
	"fieldhub/retention"
	"fieldhub/telemetry"
	telpostgres "fieldhub/telemetry/postgres"
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
	jobs.Store
	mqtt.Store
	retention.Store
	bus.Store
	alerting.Store
	alerting.WebhookStore
	policy.Store
	metrics.Store

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
	// CreateAPIToken makes a token that works until revoked (the first
	// admin's tools and tests; the users page and `fieldhub token` give
	// an expiry through handlers.Accounts' CreateAPITokenUntil).
	CreateAPIToken(ctx context.Context, name, role, token string) (db.APIToken, error)

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
	// cluster is the store's side of a cluster's membership, and fold
	// folds a stopped instance's telemetry log (package cluster); nil
	// for a store only one process uses (SQLite).
	cluster cluster.Store
	fold    func(ctx context.Context, node string) (bool, error)
	// silence is the lock of the instance that evaluates silence rules
	// for the cluster; nil for SQLite.
	silence alerting.ClusterLock
}

// openBackend opens the store cfg names: the PostgreSQL database of
// cfg.Store, or else SQLite in the data folder.
func openBackend(ctx context.Context, cfg Config, node string) (backend, error) {
	if cfg.Store != "" {
		return openPostgres(ctx, cfg.Store, node, cfg.Logger)
	}
	return openSQLite(ctx, cfg.DataDir)
}

// openPostgres opens the PostgreSQL database at url (migrating it), with
// telemetry's storage in it as this instance's node: its claim keeps a
// second hub with the same --node from writing telemetry as it.
func openPostgres(ctx context.Context, url, node string, log *slog.Logger) (backend, error) {
	s, err := OpenPostgres(ctx, url)
	if err != nil {
		return backend{}, err
	}
	s.Node = node
	tel, err := telpostgres.New(ctx, s.Pool(), node)
	if err == nil {
		err = tel.Claim(ctx)
	}
	if err != nil {
		s.Close()
		return backend{}, err
	}
	fold := func(ctx context.Context, node string) (bool, error) {
		return telpostgres.Fold(ctx, s.Pool(), node, log)
	}
	return backend{store: closeBoth{s, tel}, telemetry: tel, faultKind: postgres.FaultKind, cluster: s, fold: fold,
		silence: s.SilenceLock()}, nil
}

// closeBoth closes the telemetry storage's claim, then the store.
type closeBoth struct {
	*postgres.Store
	tel *telpostgres.Storage
}

func (c closeBoth) Close() error {
	c.tel.Close()
	return c.Store.Close()
}

// openSQLite opens the SQLite database of the data folder dir.
func openSQLite(ctx context.Context, dir string) (backend, error) {
	d, err := OpenStore(ctx, dir)
	if err != nil {
		return backend{}, err
	}
	return backend{store: d, telemetry: telsqlite.New(d), faultKind: db.FaultKind}, nil
}

// OpenStoreAt opens the store the command line names: the PostgreSQL
// database at store when it is set, else the database in the data folder
// dir. The command line's commands use it beside a running hub.
func OpenStoreAt(ctx context.Context, dir, store string) (Store, error) {
	if store != "" {
		return OpenPostgres(ctx, store)
	}
	return OpenStore(ctx, dir)
}

// OpenPostgres opens (migrating as needed) the PostgreSQL database at url.
func OpenPostgres(ctx context.Context, url string) (*postgres.Store, error) {
	if !postgres.IsURL(url) {
		return nil, fmt.Errorf("--store %s is not a PostgreSQL URL; use postgres://USER:PASSWORD@HOST[:PORT]/DATABASE, or leave it empty for SQLite in the data folder", postgres.Redact(url))
	}
	return postgres.Open(ctx, url)
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
