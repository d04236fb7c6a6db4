package postgres_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	"fieldhub/telemetry/postgres"
	"fieldhub/telemetry/telemetrytest"
)

// TestPostgreSQL runs the telemetry storage suite on a real PostgreSQL,
// the registry's devices in the same database as in the hub, and this
// storage's own tests; one server, a database each.
func TestPostgreSQL(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	srv := pgtest.Start(t, pgtest.Options{})
	t.Run("Conformance", func(t *testing.T) {
		telemetrytest.Run(t, func(t *testing.T) telemetrytest.Backend {
			return backend(t, srv.Database(t), "")
		})
	})
	t.Run("NodesShareTheTables", func(t *testing.T) { testNodesShareTheTables(t, srv.Database(t)) })
	t.Run("OtherNodesTail", func(t *testing.T) { testOtherNodesTail(t, srv.Database(t)) })
	t.Run("DeviceDeletedDuringCommit", func(t *testing.T) { testDeviceDeletedDuringCommit(t, srv.Database(t)) })
	t.Run("TextPostgreSQLCannotHold", func(t *testing.T) { testTextPostgreSQLCannotHold(t, srv.Database(t)) })
}

// backend is the suite's backend on the database at url, for node.
func backend(t *testing.T, url, node string) telemetrytest.Backend {
	ctx := context.Background()
	var d *dbpostgres.Store
	// The registry's clock moves on a millisecond a call, so that a device
	// created again differs from the one before by its created_at.
	now := telemetrytest.T0
	return telemetrytest.Backend{
		Open: func(t *testing.T) (telemetry.Storage, func()) {
			var err error
			if d, err = dbpostgres.Open(ctx, url); err != nil {
				t.Fatal(err)
			}
			d.Now = func() time.Time { now = now.Add(time.Millisecond); return now }
			s, err := postgres.New(ctx, d.Pool(), node)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() { d.Close() }
		},
		CreateDevice: func(t *testing.T, id string) {
			if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
				t.Fatal(err)
			}
		},
		DeleteDevice: func(t *testing.T, id string) {
			if err := d.DeleteDevice(ctx, id); err != nil {
				t.Fatal(err)
			}
		},
		LastActivity: func(t *testing.T, id string) time.Time {
			dev, err := d.Device(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return dev.LastActivity
		},
	}
}
