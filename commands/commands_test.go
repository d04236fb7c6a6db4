package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/storage"
)

func setup(t *testing.T) (*db.DB, *testkit.Clock, *testkit.Publisher) {
	t.Helper()
	d := dbtest.MustOpen(t)
	clk := testkit.NewClock(time.Now().UTC())
	d.Now = clk.Now
	if _, err := d.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	return d, clk, testkit.NewPublisher()
}

func TestCloudQueueLifecycle(t *testing.T) {
	ctx := context.Background()
	d, _, rec := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now, Publisher: rec})
	var notified []string
	cancel := q.OnQueued(func(dev string) { notified = append(notified, dev) })
	defer cancel()

	sent, err := q.Send(ctx, "user:alice", "dev1", commands.Message{Body: []byte(`{"on":true}`), Properties: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if sent.State != db.CloudQueued || sent.Sender != "user:alice" {
		t.Errorf("sent = %+v, want queued, sent by user:alice", sent)
	}
	got, err := q.Receive(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Abandon(ctx, "dev1", got.LockToken); err != nil {
		t.Fatal(err)
	}
	got, err = q.Receive(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	done, err := q.Complete(ctx, "dev1", got.LockToken)
	if err != nil || done.State != db.CloudCompleted {
		t.Fatalf("complete: %+v, %v", done, err)
	}
	if _, err := q.Receive(ctx, "dev1"); !errors.Is(err, db.ErrQueueEmpty) {
		t.Errorf("receive from empty queue: %v, want ErrQueueEmpty", err)
	}

	var states []string
	for _, e := range rec.Events() {
		v, ok := e.Data.(commands.CloudMessageView)
		if e.Type != live.EventCommand || e.Device != "dev1" || !ok {
			t.Errorf("published %s %+v on %s, want a c2d command event on dev1", e.Type, e.Data, e.Device)
			continue
		}
		states = append(states, v.State)
	}
	want := []string{"queued", "locked", "abandoned", "locked", "completed"}
	if !equal(states, want) {
		t.Errorf("published states %v, want %v", states, want)
	}
	if !equal(notified, []string{"dev1", "dev1"}) {
		t.Errorf("queued notifications %v, want one for the send and one for the abandon", notified)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{Action: "c2d."})
	if err != nil || len(entries) != 1 || entries[0].Actor != "user:alice" || entries[0].Target != "dev1" {
		t.Errorf("audit = %+v, %v; want one c2d.send by user:alice on dev1", entries, err)
	}

	n, err := q.Purge(ctx, "user:bob", "dev1")
	if err != nil || n != 0 {
		t.Errorf("purge of empty queue = %d, %v", n, err)
	}
}

// TestCloudQueueRelease: a message the MQTT transport took but never sent
// goes back to the queue uncounted, and the transport hears it is waiting.
func TestCloudQueueRelease(t *testing.T) {
	ctx := context.Background()
	d, _, rec := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now, Publisher: rec})
	var notified []string
	cancel := q.OnQueued(func(dev string) { notified = append(notified, dev) })
	defer cancel()
	if _, err := q.Send(ctx, "user:alice", "dev1", commands.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Receive(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	back, err := q.Release(ctx, "dev1", got.LockToken)
	if err != nil || back.State != db.CloudQueued || back.DeliveryCount != 0 {
		t.Fatalf("release = %+v, %v; want queued with no delivery counted", back, err)
	}
	var states []string
	for _, e := range rec.Events() {
		if v, ok := e.Data.(commands.CloudMessageView); ok {
			states = append(states, v.State)
		}
	}
	if want := []string{"queued", "locked", "queued"}; !equal(states, want) {
		t.Errorf("published states %v, want %v", states, want)
	}
	if !equal(notified, []string{"dev1", "dev1"}) {
		t.Errorf("queued notifications %v, want one for the send and one for the release", notified)
	}
}

func TestCloudQueueSweeper(t *testing.T) {
	ctx := context.Background()
	d, clk, rec := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now, Publisher: rec})
	m, err := q.Send(ctx, "cli", "dev1", commands.Message{Body: []byte("x"), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rec.Next(t) // queued
	// The hub "was down" past the message's deadline: starting applies it at once,
	// without anyone polling.
	clk.Advance(2 * time.Minute)
	q.Start(ctx)
	defer q.Close()
	if v := rec.Next(t).Data.(commands.CloudMessageView); v.ID != m.ID || v.State != db.CloudExpired {
		t.Errorf("sweeper published %+v, want message %d expired", v, m.ID)
	}
	q.Close()
	q.Close() // idempotent
}

func TestCloudQueueFull(t *testing.T) {
	ctx := context.Background()
	d, _, _ := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now})
	for i := 0; i < commands.MaxCloudQueue; i++ {
		if _, err := q.Send(ctx, "cli", "dev1", commands.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Send(ctx, "cli", "dev1", commands.Message{}); !errors.Is(err, db.ErrQueueFull) {
		t.Fatalf("51st: %v, want ErrQueueFull", err)
	}
	entries, _ := d.AuditEntries(ctx, db.AuditFilter{Action: "c2d.send", Limit: 1})
	if len(entries) != 1 || entries[0].Outcome != "refused" {
		t.Errorf("audit of refused send = %+v, want outcome refused", entries)
	}
}

func TestCloudMessageView(t *testing.T) {
	m := db.CloudMessage{Body: []byte("héllo wörld")}
	if v := commands.NewCloudMessageView(m, 2); v.Body != "h" || !v.BodyTruncated {
		t.Errorf("cut inside é: body %q truncated %v, want %q true", v.Body, v.BodyTruncated, "h")
	}
	if v := commands.NewCloudMessageView(db.CloudMessage{Body: []byte{0xff, 0}}, 0); v.BodyEncoding != "base64" || v.Body != "/wA=" {
		t.Errorf("binary body: %q %q, want base64 /wA=", v.Body, v.BodyEncoding)
	}
}

// transport is a MethodTransport whose behaviour each test sets.
type transport struct {
	invoke func(deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error)
}

func (tr transport) InvokeMethod(_ context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	return tr.invoke(deviceID, name, payload, timeout)
}

func TestInvoker(t *testing.T) {
	ctx := context.Background()
	d, _, rec := setup(t)
	inv := commands.NewInvoker(commands.InvokerConfig{Store: d, Now: d.Now, Publisher: rec})

	// No transport yet: the honest answer is "not connected".
	_, err := inv.Invoke(ctx, "user:alice", "dev1", commands.MethodCall{Name: "reboot"})
	if !errors.Is(err, commands.ErrDeviceNotConnected) {
		t.Fatalf("without transport: %v, want ErrDeviceNotConnected", err)
	}

	var gotTimeout time.Duration
	inv.SetTransport(transport{invoke: func(dev, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
		gotTimeout = timeout
		switch name {
		case "echo":
			return 200, payload, nil
		case "slow":
			return 0, nil, commands.ErrTimeout
		case "text":
			return 201, json.RawMessage("not json"), nil
		}
		return 0, nil, commands.ErrDeviceNotConnected
	}})
	res, err := inv.Invoke(ctx, "user:alice", "dev1", commands.MethodCall{Name: "echo", Payload: json.RawMessage(`{"a":1}`)})
	if err != nil || res.Status != 200 || string(res.Payload) != `{"a":1}` || gotTimeout != 30*time.Second {
		t.Errorf("echo = %+v, %v (timeout %v); want 200 {\"a\":1} with the default 30 s", res, err, gotTimeout)
	}
	if res, err := inv.Invoke(ctx, "user:alice", "dev1", commands.MethodCall{Name: "text"}); err != nil || string(res.Payload) != `"not json"` {
		t.Errorf("non-JSON answer = %s, %v; want it as a JSON string", res.Payload, err)
	}
	if _, err := inv.Invoke(ctx, "user:alice", "dev1", commands.MethodCall{Name: "slow", ResponseTimeout: 5 * time.Second}); !errors.Is(err, commands.ErrTimeout) {
		t.Errorf("slow = %v, want ErrTimeout", err)
	}
	if _, err := inv.Invoke(ctx, "user:alice", "nope", commands.MethodCall{Name: "echo"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown device = %v, want ErrNotFound", err)
	}

	var states []string
	for _, e := range rec.Events() {
		call, ok := e.Data.(commands.MethodCallView)
		if e.Type != live.EventCommand || !ok {
			t.Errorf("published %s %+v, want a method command event", e.Type, e.Data)
			continue
		}
		states = append(states, call.State)
	}
	want := []string{"pending", "not connected", "pending", "answered", "pending", "answered", "pending", "timeout"}
	if !equal(states, want) {
		t.Errorf("published %v, want %v", states, want)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{Action: "method."})
	if err != nil || len(entries) != 4 {
		t.Fatalf("audit entries %d, %v; want 4", len(entries), err)
	}
	if e := entries[0]; e.Outcome != "timeout" || e.Target != "dev1/slow" || e.Actor != "user:alice" {
		t.Errorf("newest audit entry %+v, want timeout on dev1/slow by user:alice", e)
	}
	// The metrics' counts: the call to an unknown device never ran.
	if got, want := inv.Outcomes(), [len(commands.MethodOutcomes)]int64{2, 1, 1, 0, 0}; got != want {
		t.Errorf("outcomes %v = %v, want %v", commands.MethodOutcomes, got, want)
	}
}

func TestMethodCallValidate(t *testing.T) {
	big := make([]byte, commands.MaxMethodPayload+1)
	for i := range big {
		big[i] = ' '
	}
	big[0] = '1'
	tests := []struct {
		name string
		call commands.MethodCall
		ok   bool
	}{
		{"defaults", commands.MethodCall{Name: "reboot"}, true},
		{"no name", commands.MethodCall{}, false},
		{"slash in name (TestCheckMethodName has the rule)", commands.MethodCall{Name: "a/b"}, false},
		{"bad json", commands.MethodCall{Name: "a", Payload: json.RawMessage(`{`)}, false},
		{"too large", commands.MethodCall{Name: "a", Payload: big}, false},
		{"timeout too short", commands.MethodCall{Name: "a", ResponseTimeout: 4 * time.Second}, false},
		{"timeout too long", commands.MethodCall{Name: "a", ResponseTimeout: 301 * time.Second}, false},
		{"connect timeout", commands.MethodCall{Name: "a", ConnectTimeout: 301 * time.Second}, false},
		{"limits", commands.MethodCall{Name: "a", ResponseTimeout: 300 * time.Second, ConnectTimeout: 300 * time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			var inv *commands.InvalidMethodError
			if err != nil && !errors.As(err, &inv) {
				t.Errorf("error %T is not an InvalidMethodError", err)
			}
		})
	}
}

func TestTwins(t *testing.T) {
	ctx := context.Background()
	d, _, rec := setup(t)
	tw := commands.NewTwins(commands.TwinsConfig{Store: d, Publisher: rec})
	type push struct {
		dev     string
		patch   string
		version int64
	}
	var pushes []push
	cancel := tw.OnDesired(func(dev string, patch json.RawMessage, v int64) { pushes = append(pushes, push{dev, string(patch), v}) })
	defer cancel()

	got, err := tw.PatchDesired(ctx, "user:alice", "dev1", json.RawMessage(`{"fan":{"speed":3}}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if commands.ETag(got) != `"2"` {
		t.Errorf("etag %s, want \"2\"", commands.ETag(got))
	}
	if len(pushes) != 1 || pushes[0] != (push{"dev1", `{"$version":2,"fan":{"speed":3}}`, 2}) {
		t.Errorf("desired pushes %+v", pushes)
	}
	if _, err := tw.PatchDesired(ctx, "user:alice", "dev1", json.RawMessage(`{"x":1}`), 1); !errors.Is(err, db.ErrVersionMismatch) {
		t.Errorf("stale If-Match: %v, want ErrVersionMismatch", err)
	}
	v, err := tw.PatchReported(ctx, "dev1", json.RawMessage(`{"fan":{"speed":3},"$version":7}`))
	if err != nil || v != 2 {
		t.Errorf("reported version %d, %v; want 2", v, err)
	}
	doc := commands.TwinDocument(mustTwin(t, tw))
	if want := `{"desired":{"$version":2,"fan":{"speed":3}},"reported":{"$version":2,"fan":{"speed":3}}}`; string(doc) != want {
		t.Errorf("twin document %s, want %s", doc, want)
	}
	if n := len(rec.Events()); n != 2 {
		t.Errorf("published %d twin events, want 2", n)
	}
	entries, _ := d.AuditEntries(ctx, db.AuditFilter{Action: "twin."})
	if len(entries) != 2 || entries[0].Actor != "device:dev1" || entries[1].Actor != "user:alice" {
		t.Errorf("audit %+v, want a device and a user twin change", entries)
	}
}

func mustTwin(t *testing.T, tw *commands.Twins) db.Twin {
	t.Helper()
	got, err := tw.Get(context.Background(), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestParseETag(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`"3"`, 3, true}, {`3`, 3, true}, {`W/"4"`, 4, true}, {`*`, 0, true}, {``, 0, true},
		{`"x"`, 0, false}, {`"0"`, 0, false},
	}
	for _, tt := range tests {
		got, err := commands.ParseETag(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseETag(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseETag(f *testing.F) {
	for _, s := range []string{`"1"`, `*`, `W/"2"`, `""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := commands.ParseETag(s)
		if err == nil && v < 0 {
			t.Fatalf("ParseETag(%q) = %d", s, v)
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCloudQueueSweepRequeuesExpiredLocks(t *testing.T) {
	ctx := context.Background()
	d, clk, rec := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now, Publisher: rec})
	if _, err := q.Send(ctx, "cli", "dev1", commands.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Receive(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	var notified []string
	defer q.OnQueued(func(dev string) { notified = append(notified, dev) })()
	clk.Advance(2 * time.Minute) // past the one-minute lock
	if err := q.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	events := rec.Events()
	last := events[len(events)-1].Data.(commands.CloudMessageView)
	if last.State != db.CloudQueued || last.DeliveryCount != 1 {
		t.Errorf("after the lock expired: %+v, want queued with 1 delivery", last)
	}
	if !equal(notified, []string{"dev1"}) {
		t.Errorf("notified %v, want dev1 (so MQTT delivers it again)", notified)
	}
}
