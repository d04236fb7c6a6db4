package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"fieldhub/cluster"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
)

// TestCluster runs the tests of several instances on one database: the
// leases and their taking back, and the work done once per cluster.
func TestCluster(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	srv := pgtest.Start(t, pgtest.Options{})
	t.Run("LostInstanceTakenBackOnce", func(t *testing.T) { testLostInstanceTakenBackOnce(t, srv.Database(t)) })
	t.Run("ExpiryOnceAcrossInstances", func(t *testing.T) { testExpiryOnceAcrossInstances(t, srv.Database(t)) })
	t.Run("SilenceLockOneHolder", func(t *testing.T) { testSilenceLockOneHolder(t, srv.Database(t)) })
}

// testSilenceLockOneHolder: one instance holds the silence lock at a time;
// it keeps it across Holds, and another takes it once it is released or
// its session ends (the holder's connection killed, as when it died).
func testSilenceLockOneHolder(t *testing.T, url string) {
	ctx := context.Background()
	st := instances(t, url, time.Now, "a", "b")
	a, b := st[0].SilenceLock(), st[1].SilenceLock()
	t.Cleanup(a.Release)
	t.Cleanup(b.Release)
	hold := func(l *postgres.SessionLock, want bool, when string) {
		t.Helper()
		if got, err := l.Hold(ctx); err != nil || got != want {
			t.Fatalf("%s: Hold = %v, %v; want %v", when, got, err, want)
		}
	}
	hold(a, true, "a first")
	hold(b, false, "b while a holds")
	hold(a, true, "a again")
	a.Release()
	hold(b, true, "b once a released")
	hold(a, false, "a while b holds")
	// b's session ends behind its back: a takes the lock, and b finds it lost.
	// The timeout makes the terminate wait for the backend to exit (a bare
	// pg_terminate_backend only signals it).
	if _, err := st[0].Pool().Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND objid = x'66687369'::bigint AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	hold(a, true, "a once b's session ended")
	hold(b, false, "b after its session ended")
}

// instances opens one store per node on the database at url.
func instances(t *testing.T, url string, now func() time.Time, nodes ...string) []*postgres.Store {
	t.Helper()
	var out []*postgres.Store
	for _, node := range nodes {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.Node, s.Now = node, now
		out = append(out, s)
	}
	return out
}

// testLostInstanceTakenBackOnce: instance a stops renewing its lease. Once
// it expired, b and c both try to take a back at the same moment: exactly
// one of them does, and gets a's device (not b's) disconnected and the
// cloud-to-device message a had in flight back in the queue (abandoned:
// the delivery counts). a then finds its lease lost, and can join again.
func testLostInstanceTakenBackOnce(t *testing.T, url string) {
	ctx := context.Background()
	st := instances(t, url, time.Now, "a", "b", "c")
	a, b, c := st[0], st[1], st[2]
	for _, d := range []string{"on-a", "on-b"} {
		if _, err := a.CreateDevice(ctx, db.NewDevice{DeviceID: d}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.SetDeviceConnection(ctx, "on-a", "a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetDeviceConnection(ctx, "on-b", "b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: "on-a", Body: []byte("x"), TTL: time.Hour, MaxDeliveryCount: 10}, 10); err != nil {
		t.Fatal(err)
	}
	inFlight, _, err := a.ReceiveCloudMessage(ctx, "on-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*postgres.Store{b, c} {
		if err := s.JoinCluster(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.JoinCluster(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := b.ReclaimNode(ctx, "a", false); ok || err != nil {
		t.Fatalf("taking a back while its lease runs = %+v, %v, %v; want not taken", r, ok, err)
	}
	testkit.WaitFor(t, "a's lease to expire", func() bool {
		lost, err := b.LostNodes(ctx)
		return err == nil && slices.Equal(lost, []string{"a"})
	})

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		taken []cluster.Reclaimed
	)
	for _, s := range []*postgres.Store{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := s.ReclaimNode(ctx, "a", false)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				taken = append(taken, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(taken) != 1 {
		t.Fatalf("a was taken back %d times, want once: %+v", len(taken), taken)
	}
	r := taken[0]
	if !slices.Equal(r.Devices, []string{"on-a"}) {
		t.Errorf("devices taken back = %v, want [on-a]", r.Devices)
	}
	if len(r.CloudMessages) != 1 || r.CloudMessages[0].ID != inFlight.ID || r.CloudMessages[0].State != db.CloudAbandoned || r.CloudMessages[0].DeliveryCount != 1 {
		t.Errorf("cloud messages taken back = %+v, want message %d abandoned after 1 delivery", r.CloudMessages, inFlight.ID)
	}
	for dev, want := range map[string]string{"on-a": "", "on-b": "b"} {
		if node, err := c.DeviceConnectionNode(ctx, dev); err != nil || node != want {
			t.Errorf("%s is connected to %q (%v), want %q", dev, node, err, want)
		}
	}
	// The message goes to the device again, through any instance.
	again, _, err := c.ReceiveCloudMessage(ctx, "on-a", time.Minute)
	if err != nil || again.ID != inFlight.ID {
		t.Errorf("receive after the take-back = message %d (%v), want %d", again.ID, err, inFlight.ID)
	}

	if err := a.RenewLease(ctx, time.Hour); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Errorf("a renewing its lease taken back = %v, want ErrLeaseLost", err)
	}
	if lost, _ := c.LostNodes(ctx); !slices.Equal(lost, []string{"a"}) {
		t.Errorf("lost nodes before a is forgotten = %v, want [a]", lost)
	}
	if err := c.ForgetNode(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if lost, _ := c.LostNodes(ctx); len(lost) != 0 {
		t.Errorf("lost nodes after a is forgotten = %v, want none", lost)
	}
	if err := a.JoinCluster(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.RenewLease(ctx, time.Hour); err != nil {
		t.Errorf("a renewing after joining again = %v", err)
	}

	// An instance's own previous run is taken back at its start, whatever
	// its lease: b restarted.
	r, ok, err := b.ReclaimNode(ctx, "b", true)
	if err != nil || !ok || !slices.Equal(r.Devices, []string{"on-b"}) {
		t.Errorf("b taking back its previous run = %+v, %v, %v; want on-b disconnected", r, ok, err)
	}
}

// testExpiryOnceAcrossInstances: three instances sweep the same queue at
// the same moment; every expired message is expired once, by one of them
// (published once in the whole cluster), and nothing else changes.
func testExpiryOnceAcrossInstances(t *testing.T, url string) {
	ctx := context.Background()
	clock := testkit.NewClock(time.Now())
	st := instances(t, url, clock.Now, "a", "b", "c")
	const devices, perDevice = 4, 20
	var queues []*commands.CloudQueue
	var pubs []*testkit.Publisher
	for _, s := range st {
		pub := testkit.NewPublisher()
		pubs = append(pubs, pub)
		queues = append(queues, commands.NewCloudQueue(commands.CloudQueueConfig{Store: s, Publisher: pub, Now: clock.Now}))
	}
	for d := range devices {
		id := fmt.Sprintf("dev-%d", d)
		if _, err := st[0].CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
		for i := range perDevice {
			ttl := time.Minute
			if i%4 == 3 {
				ttl = time.Hour // stays
			}
			if _, err := st[d%3].EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: id, Body: []byte("x"), TTL: ttl, MaxDeliveryCount: 10}, commands.MaxCloudQueue); err != nil {
				t.Fatal(err)
			}
		}
	}
	clock.Advance(2 * time.Minute)
	var wg sync.WaitGroup
	for range 2 { // twice each: a second sweep finds nothing left
		for _, q := range queues {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := q.Sweep(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	expired := map[int64]int{}
	for _, pub := range pubs {
		for _, e := range pub.Events() {
			v, ok := e.Data.(commands.CloudMessageView)
			if !ok {
				t.Errorf("unexpected event %+v", e)
				continue
			}
			if v.State != db.CloudExpired {
				t.Errorf("message %d published as %s, want only expiries", v.ID, v.State)
			}
			expired[v.ID]++
		}
	}
	want := devices * perDevice * 3 / 4
	if len(expired) != want {
		t.Errorf("%d messages expired, want %d", len(expired), want)
	}
	for id, n := range expired {
		if n != 1 {
			t.Errorf("message %d expired %d times, want once", id, n)
		}
	}
	for d := range devices {
		hist, err := st[1].CloudMessages(ctx, fmt.Sprintf("dev-%d", d), 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range hist {
			if m.State == db.CloudQueued {
				n++
			}
		}
		if n != perDevice/4 {
			t.Errorf("dev-%d: %d messages still queued, want %d", d, n, perDevice/4)
		}
	}
}
