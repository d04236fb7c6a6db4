package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"fieldhub/cluster"
	"fieldhub/db"
	"fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	telpostgres "fieldhub/telemetry/postgres"
)

// TestMember runs membership on a real PostgreSQL, a database per test.
func TestMember(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	srv := pgtest.Start(t, pgtest.Options{})
	t.Run("LostInstanceTakenBack", func(t *testing.T) { testLostInstanceTakenBack(t, srv.Database(t)) })
	t.Run("LeaseLost", func(t *testing.T) { testLeaseLost(t, srv.Database(t)) })
}

func open(t *testing.T, url, node string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Node = node
	return s
}

// testLostInstanceTakenBack: instance a logs three messages without
// checkpointing them, holds a device's connection and a lease, and dies
// (its claim and connections end, its lease is not renewed). Member b
// takes a's device back, announces it, folds a's log into the time series
// (the readings are in stored chunks, a's watermark past its messages) and
// then forgets a. Leaving gives b's lease up.
func testLostInstanceTakenBack(t *testing.T, url string) {
	ctx := context.Background()
	a := open(t, url, "a")
	if _, err := a.CreateDevice(ctx, db.NewDevice{DeviceID: "dev"}); err != nil {
		t.Fatal(err)
	}
	telA, err := telpostgres.New(ctx, a.Pool(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := telA.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	engA, err := telemetry.Open(ctx, telA, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	var recs []telemetry.Record
	for i := range 3 {
		recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: "dev", AuthMethod: "sas-primary",
			Body: fmt.Appendf(nil, `{"temp":%d}`, i), EnqueuedAt: t0.Add(time.Duration(i) * time.Second)}))
	}
	ids, err := engA.Append(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetDeviceConnection(ctx, "dev", "a", true); err != nil {
		t.Fatal(err)
	}
	if err := a.JoinCluster(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	telA.Close() // a dies: its claim ends with its session

	b := open(t, url, "b")
	reclaimed := make(chan cluster.Reclaimed, 4)
	m, err := cluster.Join(ctx, cluster.Config{
		Store: b, Node: "b", Lease: 300 * time.Millisecond,
		Reclaimed: func(r cluster.Reclaimed) { reclaimed <- r },
		Fold: func(ctx context.Context, node string) (bool, error) {
			return telpostgres.Fold(ctx, b.Pool(), node, nil)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reclaimed:
		if r.Node != "a" || !slices.Equal(r.Devices, []string{"dev"}) {
			t.Errorf("taken back: %+v, want a's device dev", r)
		}
	case <-time.After(testkit.Wait):
		t.Fatal("a was not taken back")
	}
	testkit.WaitFor(t, "a's log folded and a forgotten", func() bool {
		lost, err := b.LostNodes(ctx)
		return err == nil && len(lost) == 0
	})
	var watermark int64
	if err := b.Pool().QueryRow(ctx, `SELECT folded_message_id FROM telemetry_nodes WHERE node = 'a'`).Scan(&watermark); err != nil {
		t.Fatal(err)
	}
	if last := ids[len(ids)-1]; watermark < last {
		t.Errorf("a's watermark after the fold = %d, want at least its last message %d", watermark, last)
	}
	// Stored chunks alone (b's engine has nothing of a's in memory) hold
	// a's readings.
	telB, err := telpostgres.New(ctx, b.Pool(), "b")
	if err != nil {
		t.Fatal(err)
	}
	engB, err := telemetry.Open(ctx, telB, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	if err := engB.RawReadings(ctx, "dev", "temp", t0.Add(-time.Second), t0.Add(time.Minute), func(_ time.Time, v float64) error {
		got = append(got, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("readings after the fold = %v, want [0 1 2]", got)
	}

	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	var leases int
	if err := b.Pool().QueryRow(ctx, `SELECT count(*) FROM cluster_nodes`).Scan(&leases); err != nil || leases != 0 {
		t.Errorf("leases after b left = %d (%v), want none", leases, err)
	}
}

// testLeaseLost: joining takes back the instance's own previous run; an
// instance whose lease another took back (as after being cut off from the
// database) is told, and joins again.
func testLeaseLost(t *testing.T, url string) {
	ctx := context.Background()
	a := open(t, url, "a")
	if _, err := a.CreateDevice(ctx, db.NewDevice{DeviceID: "dev"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetDeviceConnection(ctx, "dev", "a", true); err != nil {
		t.Fatal(err)
	}
	reclaimed := make(chan cluster.Reclaimed, 4)
	lost := make(chan struct{}, 4)
	m, err := cluster.Join(ctx, cluster.Config{
		Store: a, Node: "a", Lease: 300 * time.Millisecond,
		Reclaimed: func(r cluster.Reclaimed) { reclaimed <- r },
		LeaseLost: func() { lost <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Leave(ctx)
	select {
	case r := <-reclaimed:
		if r.Node != "a" || !slices.Equal(r.Devices, []string{"dev"}) {
			t.Errorf("taken back at join: %+v, want the previous run's device dev", r)
		}
	default:
		t.Fatal("joining did not take back the previous run's connections")
	}
	if _, err := a.Pool().Exec(ctx, `UPDATE cluster_nodes SET lost_at = 1 WHERE node = 'a'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(testkit.Wait):
		t.Fatal("the instance was not told that its lease was taken back")
	}
	testkit.WaitFor(t, "a to join again", func() bool {
		return a.RenewLease(ctx, 300*time.Millisecond) == nil
	})
}
