// Package storetest is the conformance suite of Fieldhub's stores: what any
// implementation of app.Store (everything the hub keeps outside telemetry)
// must do, tested through that interface only, so that every store runs
// exactly the same suite. SQLite (package db) runs it in its tests:
//
//	func TestStore(t *testing.T) { storetest.Run(t, backend) }
//
// A store supplies a Backend: a fresh empty store per test on a clock the
// suite moves, and a way to reopen it as a restart does. Nothing here knows
// which database is behind it; telemetry's storage has its own suite
// (telemetry/telemetrytest).
package storetest

import (
	"context"
	"testing"
	"time"

	"fieldhub/app"
	"fieldhub/db"
	"fieldhub/internal/testkit"
)

// Store is what every store implements.
type Store = app.Store

// Backend is how the suites reach one kind of store.
type Backend struct {
	// Open returns a fresh, empty store that reads the time from now, and
	// closes it when the test ends.
	Open func(t *testing.T, now func() time.Time) Store
	// Reopen closes s and opens its data again, as a restart of the hub
	// does, reading the time from now; the new store is closed when the
	// test ends.
	Reopen func(t *testing.T, s Store, now func() time.Time) Store
}

// T0 is when the suites' clocks start: whole milliseconds, as stores keep
// times.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs every suite.
func Run(t *testing.T, b Backend) {
	t.Run("Registry", func(t *testing.T) { RunRegistry(t, b) })
	t.Run("CAs", func(t *testing.T) { RunCAs(t, b) })
	t.Run("FleetQuery", func(t *testing.T) { RunFleetQuery(t, b) })
	t.Run("Jobs", func(t *testing.T) { RunJobs(t, b) })
	t.Run("Users", func(t *testing.T) { RunUsers(t, b) })
	t.Run("Audit", func(t *testing.T) { RunAudit(t, b) })
	t.Run("CloudQueue", func(t *testing.T) { RunCloudQueue(t, b) })
	t.Run("Twins", func(t *testing.T) { RunTwins(t, b) })
	t.Run("MQTTSessions", func(t *testing.T) { RunMQTTSessions(t, b) })
	t.Run("Settings", func(t *testing.T) { RunSettings(t, b) })
	t.Run("Alerts", func(t *testing.T) { RunAlerts(t, b) })
	t.Run("Policies", func(t *testing.T) { RunPolicies(t, b) })
	t.Run("DiskUsage", func(t *testing.T) { RunDiskUsage(t, b) })
}

// test is one test of a suite; it opens the stores it needs.
type test struct {
	name string
	run  func(t *testing.T, b Backend)
}

// cases runs the tests of one suite in order.
func cases(t *testing.T, b Backend, tests ...test) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, b) })
	}
}

// open is a fresh store on a clock at T0 that the test moves.
func open(t *testing.T, b Backend) (Store, *testkit.Clock) {
	t.Helper()
	clk := testkit.NewClock(T0)
	return b.Open(t, clk.Now), clk
}

// device registers a SAS device.
func device(t *testing.T, s Store, id string) db.Device {
	t.Helper()
	d, err := s.CreateDevice(context.Background(), db.NewDevice{DeviceID: id})
	if err != nil {
		t.Fatalf("create device %s: %v", id, err)
	}
	return d
}
