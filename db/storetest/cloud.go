package storetest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
)

// RunCloudQueue tests the cloud-to-device queue's state machine: every
// state and event, locks, deadlines applied late (as after a restart), the
// queue bound, purge, history and pruning.
func RunCloudQueue(t *testing.T, b Backend) {
	cases(t, b,
		test{"Transitions", testCloudMessageTransitions},
		test{"ReceiveHeadersAndOrder", testCloudMessageReceiveHeadersAndOrder},
		test{"LockExpiryReturnsToQueue", testCloudMessageLockExpiryReturnsToQueue},
		test{"DeliveryCountExhaustion", testCloudMessageDeliveryCountExhaustion},
		test{"Release", testCloudMessageRelease},
		test{"TTLExpiry", testCloudMessageTTLExpiry},
		test{"CloudQueueLimit", testCloudQueueLimit},
		test{"Purge", testCloudMessagePurge},
		test{"SurvivesRestart", testCloudMessageSurvivesRestart},
		test{"EnqueueCloudMessage", testEnqueueCloudMessage},
		test{"HistoryAndPrune", testCloudMessageHistoryAndPrune},
		test{"DeleteDeviceRemovesCommands", testDeleteDeviceRemovesCommands},
		test{"CountsByState", testCloudMessageCounts},
	)
}

// newQueue is a fresh store with device dev1.
func newQueue(t *testing.T, b Backend) (Store, *testkit.Clock) {
	t.Helper()
	d, clk := open(t, b)
	device(t, d, "dev1")
	return d, clk
}

// queueLimit is the queue depth these tests give EnqueueCloudMessage, the
// one commands.MaxCloudQueue sets in production.
const queueLimit = 50

// withDefaults fills in what package commands fills in before it queues a
// message: an hour to live and 10 deliveries.
func withDefaults(nm db.NewCloudMessage) db.NewCloudMessage {
	if nm.TTL == 0 {
		nm.TTL = time.Hour
	}
	if nm.MaxDeliveryCount == 0 {
		nm.MaxDeliveryCount = 10
	}
	return nm
}

func enqueue(t *testing.T, d Store, nm db.NewCloudMessage) db.CloudMessage {
	t.Helper()
	if nm.DeviceID == "" {
		nm.DeviceID = "dev1"
	}
	if nm.Body == nil {
		nm.Body = []byte("hello")
	}
	m, err := d.EnqueueCloudMessage(context.Background(), withDefaults(nm), queueLimit)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return m
}

func receive(t *testing.T, d Store) db.CloudMessage {
	t.Helper()
	m, _, err := d.ReceiveCloudMessage(context.Background(), "dev1", time.Minute)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return m
}

func settle(t *testing.T, d Store, lock, how string) db.CloudMessage {
	t.Helper()
	m, err := d.SettleCloudMessage(context.Background(), "dev1", lock, how)
	if err != nil {
		t.Fatalf("%s: %v", how, err)
	}
	return m
}

// stateOf finds a message of dev1 in its history.
func stateOf(t *testing.T, d Store, id int64) db.CloudMessage {
	t.Helper()
	hist, err := d.CloudMessages(context.Background(), "dev1", 1000)
	if err != nil {
		t.Fatalf("read history: %v", err)
	}
	for _, m := range hist {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %d is not in the history", id)
	return db.CloudMessage{}
}

// TestCloudMessageTransitions drives a message into every state and applies every
// event to it, checking the state it ends in and the error, if any.
func testCloudMessageTransitions(t *testing.T, b Backend) {
	ctx := context.Background()
	// into puts one message into state and returns it with the lock it was last given.
	into := func(t *testing.T, d Store, clk *testkit.Clock, state string) (id int64, lock string) {
		nm := db.NewCloudMessage{}
		if state == db.CloudDead {
			nm.MaxDeliveryCount = 1
		}
		m := enqueue(t, d, nm)
		switch state {
		case db.CloudQueued:
			return m.ID, ""
		case db.CloudExpired:
			clk.Advance(2 * time.Hour)
			if _, err := d.ApplyCloudMessageDeadlines(ctx); err != nil {
				t.Fatal(err)
			}
			return m.ID, ""
		case db.CloudPurged:
			if _, err := d.PurgeCloudMessages(ctx, "dev1"); err != nil {
				t.Fatal(err)
			}
			return m.ID, ""
		}
		lock = receive(t, d).LockToken
		switch state {
		case db.CloudCompleted:
			settle(t, d, lock, db.SettleComplete)
		case db.CloudRejected:
			settle(t, d, lock, db.SettleReject)
		case db.CloudAbandoned, db.CloudDead:
			settle(t, d, lock, db.SettleAbandon)
		}
		return m.ID, lock
	}
	type event struct {
		name  string
		apply func(d Store, clk *testkit.Clock, lock string) error
	}
	settleWith := func(how string) func(d Store, clk *testkit.Clock, lock string) error {
		return func(d Store, clk *testkit.Clock, lock string) error {
			if lock == "" {
				lock = "no-such-lock"
			}
			_, err := d.SettleCloudMessage(ctx, "dev1", lock, how)
			return err
		}
	}
	after := func(by time.Duration) func(d Store, clk *testkit.Clock, lock string) error {
		return func(d Store, clk *testkit.Clock, lock string) error {
			clk.Advance(by)
			_, err := d.ApplyCloudMessageDeadlines(ctx)
			return err
		}
	}
	events := []event{
		{"receive", func(d Store, clk *testkit.Clock, lock string) error {
			_, _, err := d.ReceiveCloudMessage(ctx, "dev1", time.Minute)
			return err
		}},
		{"complete", settleWith(db.SettleComplete)},
		{"reject", settleWith(db.SettleReject)},
		{"abandon", settleWith(db.SettleAbandon)},
		{"lock-timeout", after(61 * time.Second)},
		{"ttl-passes", after(2 * time.Hour)},
		{"purge", func(d Store, clk *testkit.Clock, lock string) error {
			_, err := d.PurgeCloudMessages(ctx, "dev1")
			return err
		}},
	}
	lost, empty := db.ErrLockLost, db.ErrQueueEmpty
	// want[from][event] is the state after the event and the error it returns.
	type outcome struct {
		state string
		err   error
	}
	final := func(s string) map[string]outcome {
		return map[string]outcome{"receive": {s, empty}, "complete": {s, lost}, "reject": {s, lost}, "abandon": {s, lost},
			"lock-timeout": {s, nil}, "ttl-passes": {s, nil}, "purge": {s, nil}}
	}
	want := map[string]map[string]outcome{
		db.CloudQueued: {"receive": {db.CloudLocked, nil}, "complete": {db.CloudQueued, lost}, "reject": {db.CloudQueued, lost},
			"abandon": {db.CloudQueued, lost}, "lock-timeout": {db.CloudQueued, nil}, "ttl-passes": {db.CloudExpired, nil},
			"purge": {db.CloudPurged, nil}},
		db.CloudLocked: {"receive": {db.CloudLocked, empty}, "complete": {db.CloudCompleted, nil}, "reject": {db.CloudRejected, nil},
			"abandon": {db.CloudAbandoned, nil}, "lock-timeout": {db.CloudQueued, nil}, "ttl-passes": {db.CloudExpired, nil},
			"purge": {db.CloudPurged, nil}},
		db.CloudAbandoned: {"receive": {db.CloudLocked, nil}, "complete": {db.CloudAbandoned, lost}, "reject": {db.CloudAbandoned, lost},
			"abandon": {db.CloudAbandoned, lost}, "lock-timeout": {db.CloudAbandoned, nil}, "ttl-passes": {db.CloudExpired, nil},
			"purge": {db.CloudPurged, nil}},
		db.CloudCompleted: final(db.CloudCompleted),
		db.CloudRejected:  final(db.CloudRejected),
		db.CloudExpired:   final(db.CloudExpired),
		db.CloudDead:      final(db.CloudDead),
		db.CloudPurged:    final(db.CloudPurged),
	}
	for _, from := range []string{db.CloudQueued, db.CloudLocked, db.CloudAbandoned, db.CloudCompleted,
		db.CloudRejected, db.CloudExpired, db.CloudDead, db.CloudPurged} {
		for _, ev := range events {
			t.Run(from+"/"+ev.name, func(t *testing.T) {
				d, clk := newQueue(t, b)
				id, lock := into(t, d, clk, from)
				if got := stateOf(t, d, id).State; got != from {
					t.Fatalf("setup: state %q, want %q", got, from)
				}
				w := want[from][ev.name]
				err := ev.apply(d, clk, lock)
				if w.err == nil && err != nil || w.err != nil && !errors.Is(err, w.err) {
					t.Errorf("error = %v, want %v", err, w.err)
				}
				if got := stateOf(t, d, id).State; got != w.state {
					t.Errorf("state = %q, want %q", got, w.state)
				}
			})
		}
	}
}

func testCloudMessageReceiveHeadersAndOrder(t *testing.T, b Backend) {
	d, clk := newQueue(t, b)
	first := enqueue(t, d, db.NewCloudMessage{MessageID: "m1", CorrelationID: "c1", Properties: map[string]string{"k": "v"}, TTL: 10 * time.Minute})
	enqueue(t, d, db.NewCloudMessage{MessageID: "m2"})
	got := receive(t, d)
	if got.ID != first.ID || got.MessageID != "m1" || got.CorrelationID != "c1" || got.Properties["k"] != "v" || string(got.Body) != "hello" {
		t.Errorf("received %+v, want the first message with its id, correlation id, property and body", got)
	}
	if got.State != db.CloudLocked || got.DeliveryCount != 1 || got.LockToken == "" {
		t.Errorf("state %q, delivery count %d, lock %q; want locked, 1 and a lock", got.State, got.DeliveryCount, got.LockToken)
	}
	if want := clk.Now().Add(10 * time.Minute); !got.ExpiresAt.Equal(want) {
		t.Errorf("expires at %v, want %v", got.ExpiresAt, want)
	}
	if want := clk.Now().Add(time.Minute); !got.LockExpiresAt.Equal(want) {
		t.Errorf("lock expires at %v, want %v", got.LockExpiresAt, want)
	}
	if second := receive(t, d); second.MessageID != "m2" {
		t.Errorf("second receive got %q, want m2 (the locked message is not delivered twice)", second.MessageID)
	}
}

func testCloudMessageLockExpiryReturnsToQueue(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := newQueue(t, b)
	m := enqueue(t, d, db.NewCloudMessage{})
	old := receive(t, d).LockToken
	clk.Advance(time.Minute) // the lock lasts exactly a minute
	if _, err := d.SettleCloudMessage(ctx, "dev1", old, db.SettleComplete); !errors.Is(err, db.ErrLockLost) {
		t.Fatalf("complete after lock expiry: %v, want ErrLockLost", err)
	}
	// Receive applies the deadline itself, without waiting for the sweeper.
	again, changed, err := d.ReceiveCloudMessage(ctx, "dev1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != m.ID || again.DeliveryCount != 2 || again.LockToken == old {
		t.Errorf("redelivery: id %d count %d lock %q; want id %d, count 2, a new lock", again.ID, again.DeliveryCount, again.LockToken, m.ID)
	}
	if len(changed) != 1 || changed[0].State != db.CloudQueued {
		t.Errorf("changed = %+v, want the message back in queued", changed)
	}
	if got := settle(t, d, again.LockToken, db.SettleComplete); got.State != db.CloudCompleted || got.SettledAt.IsZero() {
		t.Errorf("after complete: state %q settled %v", got.State, got.SettledAt)
	}
}

func testCloudMessageDeliveryCountExhaustion(t *testing.T, b Backend) {
	ctx := context.Background()
	t.Run("abandons", func(t *testing.T) {
		d, _ := newQueue(t, b)
		m := enqueue(t, d, db.NewCloudMessage{MaxDeliveryCount: 3})
		for i := 1; i <= 3; i++ {
			got := settle(t, d, receive(t, d).LockToken, db.SettleAbandon)
			want := db.CloudAbandoned
			if i == 3 {
				want = db.CloudDead
			}
			if got.State != want || got.DeliveryCount != i {
				t.Errorf("abandon %d: state %q count %d, want %q %d", i, got.State, got.DeliveryCount, want, i)
			}
		}
		if _, _, err := d.ReceiveCloudMessage(ctx, "dev1", time.Minute); !errors.Is(err, db.ErrQueueEmpty) {
			t.Errorf("receive after dead: %v, want ErrQueueEmpty", err)
		}
		if got := stateOf(t, d, m.ID); got.SettledAt.IsZero() {
			t.Error("dead message has no settled time")
		}
	})
	t.Run("lock timeouts", func(t *testing.T) {
		d, clk := newQueue(t, b)
		m := enqueue(t, d, db.NewCloudMessage{MaxDeliveryCount: 2})
		receive(t, d)
		clk.Advance(2 * time.Minute)
		receive(t, d)
		clk.Advance(2 * time.Minute)
		changed, err := d.ApplyCloudMessageDeadlines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(changed) != 1 || changed[0].State != db.CloudDead {
			t.Errorf("changed = %+v, want one dead message", changed)
		}
		if got := stateOf(t, d, m.ID).State; got != db.CloudDead {
			t.Errorf("state %q, want dead", got)
		}
	})
}

// testCloudMessageRelease: a message the transport took but never sent goes
// back uncounted, as it was before it was taken.
func testCloudMessageRelease(t *testing.T, b Backend) {
	ctx := context.Background()
	release := func(t *testing.T, d Store, lock string) db.CloudMessage {
		t.Helper()
		m, err := d.ReleaseCloudMessage(ctx, "dev1", lock)
		if err != nil {
			t.Fatalf("release: %v", err)
		}
		return m
	}
	t.Run("first delivery", func(t *testing.T) {
		d, _ := newQueue(t, b)
		enqueue(t, d, db.NewCloudMessage{MaxDeliveryCount: 1})
		got := release(t, d, receive(t, d).LockToken)
		if got.State != db.CloudQueued || got.DeliveryCount != 0 || got.LockToken != "" || !got.LockExpiresAt.IsZero() {
			t.Errorf("released: state %q count %d lock %q until %v; want queued, 0, no lock", got.State, got.DeliveryCount, got.LockToken, got.LockExpiresAt)
		}
		// With one delivery allowed, the message still gets it.
		if again := receive(t, d); again.DeliveryCount != 1 {
			t.Errorf("received again: count %d, want 1", again.DeliveryCount)
		}
	})
	t.Run("after an abandon", func(t *testing.T) {
		d, _ := newQueue(t, b)
		enqueue(t, d, db.NewCloudMessage{})
		settle(t, d, receive(t, d).LockToken, db.SettleAbandon)
		if got := release(t, d, receive(t, d).LockToken); got.State != db.CloudAbandoned || got.DeliveryCount != 1 {
			t.Errorf("released: state %q count %d, want abandoned, 1", got.State, got.DeliveryCount)
		}
	})
	t.Run("time to live passed", func(t *testing.T) {
		d, clk := newQueue(t, b)
		enqueue(t, d, db.NewCloudMessage{TTL: 30 * time.Second})
		lock := receive(t, d).LockToken
		clk.Advance(40 * time.Second) // the lock (a minute) holds, the message's time is up
		if got := release(t, d, lock); got.State != db.CloudExpired || got.SettledAt.IsZero() {
			t.Errorf("released: state %q settled %v, want expired and settled", got.State, got.SettledAt)
		}
	})
	t.Run("lock lost", func(t *testing.T) {
		d, clk := newQueue(t, b)
		enqueue(t, d, db.NewCloudMessage{})
		lock := receive(t, d).LockToken
		if _, err := d.ReleaseCloudMessage(ctx, "dev1", "not-a-lock"); !errors.Is(err, db.ErrLockLost) {
			t.Errorf("unknown lock: %v, want ErrLockLost", err)
		}
		clk.Advance(time.Minute)
		if _, err := d.ReleaseCloudMessage(ctx, "dev1", lock); !errors.Is(err, db.ErrLockLost) {
			t.Errorf("expired lock: %v, want ErrLockLost", err)
		}
	})
}

func testCloudMessageTTLExpiry(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := newQueue(t, b)
	short := enqueue(t, d, db.NewCloudMessage{TTL: time.Minute})
	long := enqueue(t, d, db.NewCloudMessage{TTL: 48 * time.Hour})
	next, err := d.NextCloudMessageDeadline(ctx)
	if err != nil || !next.Equal(short.ExpiresAt) {
		t.Errorf("next deadline = %v, %v; want %v", next, err, short.ExpiresAt)
	}
	clk.Advance(time.Minute)
	changed, err := d.ApplyCloudMessageDeadlines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].ID != short.ID || changed[0].State != db.CloudExpired {
		t.Errorf("changed = %+v, want only the short-lived message, expired", changed)
	}
	if got := stateOf(t, d, long.ID).State; got != db.CloudQueued {
		t.Errorf("long-lived message is %q, want queued", got)
	}
	// A message whose TTL passes while locked may still be settled within its lock.
	clk.Advance(48*time.Hour - 2*time.Minute)
	lock := receive(t, d).LockToken
	clk.Advance(90 * time.Second)
	if _, err := d.ApplyCloudMessageDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, d, long.ID).State; got != db.CloudExpired {
		t.Errorf("locked message past its TTL and lock is %q, want expired", got)
	}
	if _, err := d.SettleCloudMessage(ctx, "dev1", lock, db.SettleComplete); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("complete of expired message: %v, want ErrLockLost", err)
	}
}

func testCloudQueueLimit(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := newQueue(t, b)
	for i := 0; i < queueLimit; i++ {
		enqueue(t, d, db.NewCloudMessage{TTL: time.Duration(i+1) * time.Minute})
	}
	_, err := d.EnqueueCloudMessage(ctx, withDefaults(db.NewCloudMessage{DeviceID: "dev1", Body: []byte("51st")}), queueLimit)
	if !errors.Is(err, db.ErrQueueFull) || !strings.Contains(err.Error(), "50 messages waiting") {
		t.Fatalf("51st message: %v, want ErrQueueFull saying 50 messages are waiting", err)
	}
	// A locked message still counts; a settled one does not.
	settle(t, d, receive(t, d).LockToken, db.SettleComplete)
	enqueue(t, d, db.NewCloudMessage{})
	if _, err := d.EnqueueCloudMessage(ctx, withDefaults(db.NewCloudMessage{DeviceID: "dev1"}), queueLimit); !errors.Is(err, db.ErrQueueFull) {
		t.Fatalf("after refill: %v, want ErrQueueFull", err)
	}
	// Expired messages stop counting at their deadline, before any sweep.
	clk.Advance(2 * time.Minute)
	enqueue(t, d, db.NewCloudMessage{})
	// Other devices have their own queue.
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev2"}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, d, db.NewCloudMessage{DeviceID: "dev2"})
}

func testCloudMessagePurge(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := newQueue(t, b)
	done := enqueue(t, d, db.NewCloudMessage{})
	settle(t, d, receive(t, d).LockToken, db.SettleComplete)
	waiting := enqueue(t, d, db.NewCloudMessage{})
	held := enqueue(t, d, db.NewCloudMessage{})
	enqueue(t, d, db.NewCloudMessage{})
	receive(t, d) // locks waiting
	_ = held
	purged, err := d.PurgeCloudMessages(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if len(purged) != 3 {
		t.Errorf("purged %d messages, want 3", len(purged))
	}
	for _, m := range purged {
		if m.State != db.CloudPurged || m.LockToken != "" || m.SettledAt.IsZero() {
			t.Errorf("purged message %d: state %q lock %q settled %v", m.ID, m.State, m.LockToken, m.SettledAt)
		}
	}
	if got := stateOf(t, d, done.ID).State; got != db.CloudCompleted {
		t.Errorf("completed message became %q, want it left completed", got)
	}
	if got := stateOf(t, d, waiting.ID).State; got != db.CloudPurged {
		t.Errorf("locked message became %q, want purged", got)
	}
	if _, err := d.PurgeCloudMessages(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("purge of unknown device: %v, want ErrNotFound", err)
	}
}

func testCloudMessageSurvivesRestart(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := newQueue(t, b)
	completed := enqueue(t, d, db.NewCloudMessage{})
	settle(t, d, receive(t, d).LockToken, db.SettleComplete)
	abandoned := enqueue(t, d, db.NewCloudMessage{})
	settle(t, d, receive(t, d).LockToken, db.SettleAbandon)
	locked := enqueue(t, d, db.NewCloudMessage{})
	// abandoned is first in line again; take it and the next one, give the first back.
	first := receive(t, d)
	lock := receive(t, d)
	settle(t, d, first.LockToken, db.SettleAbandon)
	queued := enqueue(t, d, db.NewCloudMessage{TTL: 5 * time.Minute})
	if lock.ID != locked.ID {
		t.Fatalf("setup: locked %d, want %d", lock.ID, locked.ID)
	}
	d = b.Reopen(t, d, clk.Now)
	want := map[int64]string{completed.ID: db.CloudCompleted, abandoned.ID: db.CloudAbandoned, locked.ID: db.CloudLocked, queued.ID: db.CloudQueued}
	for id, state := range want {
		if got := stateOf(t, d, id); got.State != state {
			t.Errorf("after reopen message %d is %q, want %q", id, got.State, state)
		}
	}
	// The lock survives: the device can still settle with the token it holds...
	if got := stateOf(t, d, locked.ID); got.LockToken != lock.LockToken || !got.LockExpiresAt.Equal(lock.LockExpiresAt) {
		t.Errorf("lock after reopen = %q until %v, want %q until %v", got.LockToken, got.LockExpiresAt, lock.LockToken, lock.LockExpiresAt)
	}
	// ...and its deadline too: time that passed while the hub was down counts.
	clk.Advance(90 * time.Second)
	if _, err := d.ApplyCloudMessageDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, d, locked.ID).State; got != db.CloudQueued {
		t.Errorf("lock expired during downtime: state %q, want queued", got)
	}
	clk.Advance(5 * time.Minute)
	if _, err := d.ApplyCloudMessageDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, d, queued.ID).State; got != db.CloudExpired {
		t.Errorf("TTL passed during downtime: state %q, want expired", got)
	}
}

// TestEnqueueCloudMessage: the store refuses an unknown device and a
// message without its deadlines, and names a message that has no id. The
// limits are commands' (commands.TestCloudMessageLimits).
func testEnqueueCloudMessage(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := newQueue(t, b)
	if _, err := d.EnqueueCloudMessage(ctx, withDefaults(db.NewCloudMessage{DeviceID: "nope"}), queueLimit); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown device: %v, want ErrNotFound", err)
	}
	if _, err := d.EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: "dev1"}, queueLimit); err == nil {
		t.Error("message without TTL and delivery count queued, want refused")
	}
	m := enqueue(t, d, db.NewCloudMessage{})
	if len(m.MessageID) != 36 || m.TTL() != time.Hour || m.MaxDeliveryCount != 10 {
		t.Errorf("queued: id %q ttl %v max %d; want a generated UUID, 1 h, 10", m.MessageID, m.TTL(), m.MaxDeliveryCount)
	}
}

func testCloudMessageHistoryAndPrune(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := newQueue(t, b)
	first := enqueue(t, d, db.NewCloudMessage{})
	settle(t, d, receive(t, d).LockToken, db.SettleReject)
	later := enqueue(t, d, db.NewCloudMessage{})
	hist, err := d.CloudMessages(ctx, "dev1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].ID != later.ID || hist[1].ID != first.ID || hist[1].State != db.CloudRejected {
		t.Fatalf("history = %+v, want the later then the first (rejected)", hist)
	}
	clk.Advance(8 * 24 * time.Hour)
	n, err := d.PruneCloudMessages(ctx, clk.Now().Add(-7*24*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("pruned %d, %v; want 1 (only the settled message)", n, err)
	}
}

func testDeleteDeviceRemovesCommands(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := newQueue(t, b)
	enqueue(t, d, db.NewCloudMessage{})
	if _, err := d.PatchTwin(ctx, "dev1", db.TwinDesired, map[string]any{"a": true}, 0, twinLimit); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteDevice(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CloudMessages(ctx, "dev1", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("history after device deletion: %v, want ErrNotFound", err)
	}
	// A device created again under the same id starts with an empty queue
	// and an empty twin.
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	if hist, err := d.CloudMessages(ctx, "dev1", 0); err != nil || len(hist) != 0 {
		t.Errorf("history of the new device = %+v, %v; want none", hist, err)
	}
	if tw, err := d.Twin(ctx, "dev1"); err != nil || len(tw.Desired) != 0 || tw.DesiredVersion != 1 {
		t.Errorf("twin of the new device = %+v, %v; want empty at version 1", tw, err)
	}
}

// testCloudMessageCounts: the metrics' count by state sees every message
// once, in the state it is in now, and no state nobody is in.
func testCloudMessageCounts(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := newQueue(t, b)
	counts := func() map[string]int {
		t.Helper()
		c, err := d.CloudMessageCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := counts(); len(c) != 0 {
		t.Errorf("counts of an empty queue = %v, want none", c)
	}
	enqueue(t, d, db.NewCloudMessage{})
	enqueue(t, d, db.NewCloudMessage{})
	enqueue(t, d, db.NewCloudMessage{})
	settle(t, d, receive(t, d).LockToken, db.SettleComplete)
	receive(t, d) // locks the second
	want := map[string]int{db.CloudCompleted: 1, db.CloudLocked: 1, db.CloudQueued: 1}
	if c := counts(); !maps.Equal(c, want) {
		t.Errorf("counts = %v, want %v", c, want)
	}
}
