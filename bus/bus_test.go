package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fieldhub/alert"
	"fieldhub/bus"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/mqtt"
	"fieldhub/storage"
)

// An operator whose browser is on B sees, live, what a device connected
// to A does: its connection, status, messages and readings, the commands
// and twin changes made on A, and A's storage faults; the fleet counters
// are the cluster's. A's own events reach A once.
func TestLiveAcrossInstances(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	dev := c.device("dev1")
	onB := b.follow(t, "/devices/dev1")
	fleetB := b.follow(t, "/fleet")

	d := a.connect(t, dev)
	await(t, onB, live.EventConnection, `"connected":true`)
	await(t, fleetB, live.EventDevice, `"status":"online"`)

	if tok := d.client.Publish("devices/dev1/messages/events/", 1, false, `{"temperature":21.5}`); !tok.WaitTimeout(testkit.Wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	await(t, onB, live.EventMessage, `21.5`)
	await(t, onB, live.EventReading, `"temperature":21.5`)

	if _, err := a.twins.PatchDesired(context.Background(), "user:test", "dev1", json.RawMessage(`{"fan":"on"}`), 0); err != nil {
		t.Fatal(err)
	}
	await(t, onB, live.EventTwin, `"fan":"on"`)
	if _, err := a.cloud.Send(context.Background(), "user:test", "dev1", commands.Message{Body: []byte("reboot")}); err != nil {
		t.Fatal(err)
	}
	await(t, onB, live.EventCommand, `"body":"reboot"`)
	a.hub.PublishStorage(storage.Status{OK: false, Reason: "disk full"})
	await(t, fleetB, live.EventStorage, `disk full`)

	// B counted A's message in the cluster's rate. Once B has it, a change
	// made on B reaches A after anything of A's own the server could have
	// sent back: A must still count one message, not two.
	testkit.WaitFor(t, "B counts A's message", func() bool { return b.hub.MessagesPerMinute() == 1 })
	onA := a.follow(t, "/devices/dev1")
	if _, err := b.twins.PatchDesired(context.Background(), "user:test", "dev1", json.RawMessage(`{"marker":1}`), 0); err != nil {
		t.Fatal(err)
	}
	await(t, onA, live.EventTwin, `"marker":1`)
	if n := a.hub.MessagesPerMinute(); n != 1 {
		t.Errorf("A counts %d messages per minute, want 1: its own events came back", n)
	}

	// The device leaves: B shows it offline.
	d.client.Disconnect(0)
	await(t, onB, live.EventConnection, `"connected":false`)
	await(t, fleetB, live.EventDevice, `"status":"offline"`)
}

// A method invoked on B reaches the device connected to A, and its answer
// comes back to B; a device that does not answer times out on B, one
// connected nowhere is not connected.
func TestMethodAcrossInstances(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	c.device("dev1")
	c.device("idle")
	c.device("away")
	d := a.connect(t, mustDevice(t, c, "dev1"))
	d.answerMethods(t)
	waitNode(t, c, "dev1", "a")

	res, err := b.invoke("dev1", "echo", `{"x":[1,2]}`, 5*time.Second)
	if err != nil || res.Status != 200 || string(res.Payload) != `{"x":[1,2]}` {
		t.Fatalf("invoke on B = %+v, %v; want 200 and the payload back", res, err)
	}

	idle := a.connect(t, mustDevice(t, c, "idle"))
	idle.subscribe(t, "$iothub/methods/POST/#") // listens, never answers
	waitNode(t, c, "idle", "a")
	if _, err := b.invoke("idle", "slow", `null`, commands.MinResponseTimeout); !errors.Is(err, commands.ErrTimeout) {
		t.Errorf("unanswered call on B = %v, want ErrTimeout", err)
	}
	if _, err := b.invoke("away", "echo", `null`, commands.MinResponseTimeout); !errors.Is(err, commands.ErrDeviceNotConnected) {
		t.Errorf("call to a device connected nowhere = %v, want ErrDeviceNotConnected", err)
	}
}

// A cloud-to-device message sent on B is pushed by A, where the device is
// connected, and completed by the device's PUBACK; a desired-property
// patch made on B reaches the device on A.
func TestPushesAcrossInstances(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	d := a.connect(t, c.device("dev1"))
	d.subscribe(t, "devices/dev1/messages/devicebound/#")
	d.subscribe(t, "$iothub/twin/PATCH/properties/desired/#")
	waitNode(t, c, "dev1", "a")

	msg, err := b.cloud.Send(context.Background(), "user:test", "dev1", commands.Message{Body: []byte("hello from b")})
	if err != nil {
		t.Fatal(err)
	}
	if m := d.next(t, "devices/dev1/messages/devicebound/"); string(m.Payload()) != "hello from b" {
		t.Errorf("device got %q, want the message sent on B", m.Payload())
	}
	testkit.WaitFor(t, "message completed", func() bool {
		msgs, err := c.db.CloudMessages(context.Background(), "dev1", 10)
		return err == nil && len(msgs) == 1 && msgs[0].ID == msg.ID && msgs[0].State == db.CloudCompleted
	})

	if _, err := b.twins.PatchDesired(context.Background(), "user:test", "dev1", json.RawMessage(`{"rate":5}`), 0); err != nil {
		t.Fatal(err)
	}
	m := d.next(t, "$iothub/twin/PATCH/properties/desired/")
	if !strings.Contains(string(m.Payload()), `"rate":5`) {
		t.Errorf("desired patch on the device = %s, want rate 5", m.Payload())
	}
}

// A device that connects to B while its session is open on A is
// disconnected from A; A's late close leaves it connected on B.
func TestTakeoverAcrossInstances(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	dev := c.device("dev1")
	onA := a.connect(t, dev)
	waitNode(t, c, "dev1", "a")
	fleetA := a.follow(t, "/fleet")

	b.connect(t, dev)
	select {
	case <-onA.lost:
	case <-time.After(testkit.Wait):
		t.Fatal("the connection on A is still open after the device connected to B")
	}
	testkit.WaitFor(t, "A forgets the connection", func() bool { return !a.broker.Connected("dev1") })
	testkit.WaitFor(t, "A records the takeover", func() bool {
		entries, err := c.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: mqtt.ActionDisconnected, Limit: 10})
		return err == nil && len(entries) == 1 && strings.Contains(entries[0].Detail, "taken over by a new connection on b")
	})
	if node, err := c.db.DeviceConnectionNode(context.Background(), "dev1"); err != nil || node != "b" {
		t.Errorf("device's node after A's close = %q, %v; want b", node, err)
	}
	if d, err := c.db.Device(context.Background(), "dev1"); err != nil || !d.Connected {
		t.Errorf("device after A's close = %+v, %v; want connected", d, err)
	}
	// A's own page still shows it online: it is connected on B.
	b.hub.SetStatus("dev1", db.StatusDisabled) // an unrelated status, to have a fresh event
	await(t, fleetA, live.EventDevice, `"status":"disabled"`)
	b.hub.SetStatus("dev1", db.StatusOnline)
	await(t, fleetA, live.EventDevice, `"status":"online"`)
}

// NATS restarting mid-test: while it is down a method to a device on the
// other instance fails at once with a clear error; once it is back the bus
// reconnects by itself, browsers are told to reload, and methods and live
// events cross again.
func TestBusSurvivesNATSRestart(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	d := a.connect(t, c.device("dev1"))
	d.answerMethods(t)
	waitNode(t, c, "dev1", "a")
	onB := b.follow(t, "/devices/dev1")

	c.nats.Stop()
	testkit.WaitFor(t, "B notices NATS is gone", func() bool { return !b.bus.Connected() })
	_, err := b.invoke("dev1", "echo", `1`, 5*time.Second)
	if !errors.Is(err, commands.ErrInstanceUnreachable) || !strings.Contains(err.Error(), "instance a") {
		t.Errorf("call while NATS is down = %v, want ErrInstanceUnreachable naming instance a", err)
	}

	c.nats.Start()
	testkit.WaitFor(t, "both reconnect", func() bool { return a.bus.Connected() && b.bus.Connected() })
	await(t, onB, live.EventResync, "")
	// A re-subscribes after its reconnect: the first calls may find no
	// responder yet (not connected), never a wrong answer.
	testkit.WaitFor(t, "a method crosses again", func() bool {
		res, err := b.invoke("dev1", "echo", `2`, 5*time.Second)
		if err != nil && !errors.Is(err, commands.ErrDeviceNotConnected) {
			t.Fatalf("call after the restart = %v", err)
		}
		return err == nil && res.Status == 200 && string(res.Payload) == "2"
	})
	if tok := d.client.Publish("devices/dev1/messages/events/", 1, false, `{"after":1}`); !tok.WaitTimeout(testkit.Wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	await(t, onB, live.EventMessage, `after`)
}

// A committed batch larger than one bus message is split, and arrives
// whole: its activity at every instance, its messages at those following
// the device; an event that cannot fit is refused, not sent.
func TestLargeEventsSplitOrRefused(t *testing.T) {
	c := newCluster(t)
	small := func(cfg *bus.Config) { cfg.MaxMessage = 64 << 10 }
	a, b := c.instance("a", small), c.instance("b", small)
	onB := b.follow(t, "/devices/dev1")
	const n = 40
	batch := make([]live.PeerMessage, n)
	for i := range batch {
		batch[i].Message.DeviceID = "dev1"
		batch[i].Message.Body = fmt.Sprintf("%d:%s", i, strings.Repeat("x", 10<<10))
	}
	activity := []live.PeerActivity{{Device: "dev1", At: time.Now(), Messages: n}}
	a.bus.Relay(live.PeerEvent{Type: live.PeerMessages, Activity: activity, Messages: batch})
	for i := range n {
		await(t, onB, live.EventMessage, fmt.Sprintf(`"body":"%d:x`, i))
	}
	testkit.WaitFor(t, "B counts the batch", func() bool { return b.hub.MessagesPerMinute() == n })
	if st := a.bus.Stats(); st.Relayed < 7 || st.Refused != 0 {
		t.Errorf("A's stats = %+v, want the batch sent in at least 7 messages, none refused", st)
	}
	huge := commands.TwinView{DeviceID: "dev1", Tags: map[string]string{"big": strings.Repeat("y", 100<<10)}}
	a.bus.Relay(live.PeerEvent{Type: live.EventTwin, Device: "dev1", Twin: &huge})
	testkit.WaitFor(t, "A refuses the huge event", func() bool { return a.bus.Stats().Refused == 1 })
}

// Attack: a peer (or anyone on NATS) sends payloads beyond the bus's bound
// and malformed events; each is refused and counted, none reaches the hub.
func TestHugeAndMalformedPayloadsRefused(t *testing.T) {
	c := newCluster(t)
	a := c.instance("a")
	raw := rawClient(t, c)
	huge := make([]byte, bus.DefaultMaxMessage+1)
	send := func(subject string, data []byte, header nats.Header) {
		t.Helper()
		if err := raw.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: header}); err != nil {
			t.Fatal(err)
		}
	}
	from := nats.Header{"Fieldhub-Node": []string{"x"}}
	send("fieldhub.live", huge, from)
	send("fieldhub.node.a.c2d", huge, from)
	send("fieldhub.live", []byte(`{"type":"twin"}`), from)                            // no device, no twin
	send("fieldhub.live", []byte(`{"type":"nonsense","device":"d"}`), from)           // unknown type
	send("fieldhub.live", []byte(`not json`), from)                                   // not JSON
	send("fieldhub.live", []byte(`{"type":"status","device":"d","status":"x"}`), nil) // no node
	res, err := raw.Request("fieldhub.node.a.method", huge, testkit.Wait)
	if err != nil || !strings.Contains(string(res.Data), "too large") {
		t.Errorf("huge method call = %v, %v; want a reply saying it is too large", res, err)
	}
	testkit.WaitFor(t, "everything refused", func() bool {
		st := a.bus.Stats()
		return st.Refused == 3 && st.PeerErrors == 4
	})
	if n := a.hub.MessagesPerMinute(); n != 0 {
		t.Errorf("hub counted %d messages from refused events", n)
	}
}

// Attack: a flood of live events while the hub cannot keep up holds at most
// MaxPending of them in memory; NATS drops the rest (a slow consumer), and
// the bus goes on once the hub catches up.
func TestFloodIsBounded(t *testing.T) {
	c := newCluster(t)
	const pending = 100
	b, err := bus.Open(context.Background(), bus.Config{URLs: []string{c.nats.URL()}, Node: "a", Store: c.db, MaxPending: pending, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hub := live.New(live.Options{})
	defer hub.Close()
	gate := &gatedPeers{Peers: hub, open: make(chan struct{})}
	if err := b.AttachHub(gate); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, c)
	const flood = 20000
	ev, _ := json.Marshal(live.PeerEvent{Type: live.PeerStatus, Device: "dev1", Status: db.StatusOnline})
	for range flood {
		if err := raw.PublishMsg(&nats.Msg{Subject: "fieldhub.live", Data: ev, Header: nats.Header{"Fieldhub-Node": []string{"x"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	// The held subscription takes one event into its handler and keeps at
	// most `pending` waiting; every other one is dropped, not queued.
	testkit.WaitFor(t, "the flood dropped beyond the bound", func() bool {
		return b.Stats().SlowConsumer >= flood-pending-1
	})
	if got := gate.calls(); got != 1 {
		t.Errorf("held handler got %d events, want 1", got)
	}
	close(gate.open)
	testkit.WaitFor(t, "the held events applied", func() bool { return int64(gate.calls())+b.Stats().SlowConsumer == flood })
	if got := gate.calls(); got > pending+1 {
		t.Errorf("%d events applied, want at most the %d held", got, pending+1)
	}
}

// gatedPeers holds every live event at a gate until open is closed: a hub
// that cannot keep up.
type gatedPeers struct {
	bus.Peers
	open chan struct{}
	mu   sync.Mutex
	n    int
}

func (g *gatedPeers) FromPeer(node string, ev live.PeerEvent) error {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
	<-g.open
	return g.Peers.FromPeer(node, ev)
}

func (g *gatedPeers) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Node names are NATS subject tokens: the default is made of the host
// name and port, and names that would break a subject are refused.
func TestNodeNames(t *testing.T) {
	for _, tc := range []struct {
		host, port, want string
	}{
		{"hub1", "8080", "hub1-8080"},
		{"hub1.example.com", "8443", "hub1-example-com-8443"},
		{"", "80", "fieldhub-80"},
		{"höst*>", "1", "h-st---1"},
		{strings.Repeat("h", 70), "9", strings.Repeat("h", 48) + "-9"},
	} {
		got := bus.DefaultNode(tc.host, tc.port)
		if got != tc.want || bus.CheckNode(got) != nil {
			t.Errorf("DefaultNode(%q, %q) = %q (%v), want %q", tc.host, tc.port, got, bus.CheckNode(got), tc.want)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", strings.Repeat("n", 65)} {
		if err := bus.CheckNode(bad); err == nil {
			t.Errorf("CheckNode(%q) = nil, want an error", bad)
		}
	}
}

// rawClient is a plain NATS connection to the cluster's server: another
// instance, or an attacker on the bus.
func rawClient(t *testing.T, c *cluster) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func mustDevice(t *testing.T, c *cluster, id string) db.Device {
	t.Helper()
	d, err := c.db.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitNode waits until the store says the device is connected to node
// (the broker records presence in the background).
func waitNode(t testing.TB, c *cluster, deviceID, node string) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%s on %s", deviceID, node), func() bool {
		got, err := c.db.DeviceConnectionNode(context.Background(), deviceID)
		return err == nil && got == node
	})
}

// An alert raised, acknowledged and cleared on A reaches the browsers on B:
// the fleet stream (every page's header count) and the device's stream
// (its alert panel), each change in order; a forged alert event naming
// another device than its alert is refused.
func TestAlertsAcrossInstances(t *testing.T) {
	c := newCluster(t)
	a, b := c.instance("a"), c.instance("b")
	c.device("dev1")
	fleetB := b.follow(t, "/fleet")
	onB := b.follow(t, "/devices/dev1")
	raised := alert.Alert{ID: 7, RuleID: 3, DeviceID: "dev1", Severity: alert.Major, State: alert.StateActive, Count: 1,
		FirstAt: time.Now().UTC(), LastAt: time.Now().UTC(), Value: 31.5}
	for _, st := range []alert.State{alert.StateActive, alert.StateAcknowledged, alert.StateCleared} {
		ev := raised
		ev.State = st
		open := map[alert.Severity]int{alert.Major: 1}
		if st == alert.StateCleared {
			open = map[alert.Severity]int{}
		}
		a.hub.PublishAlert(live.AlertEvent{Alert: ev, RuleName: "Too warm", Open: open, DeviceWorst: alert.Major})
		want := fmt.Sprintf(`"state":"%s"`, st)
		await(t, fleetB, live.EventAlert, want)
		await(t, onB, live.EventAlert, want)
	}
	forged := live.AlertEvent{Alert: alert.Alert{ID: 8, DeviceID: "dev2"}}
	if err := b.hub.FromPeer("a", live.PeerEvent{Type: live.EventAlert, Device: "dev1", Alert: &forged}); err == nil {
		t.Error("an alert event of dev2 named dev1 was taken")
	}
	if err := b.hub.FromPeer("a", live.PeerEvent{Type: live.EventAlert, Device: "dev1"}); err == nil {
		t.Error("an alert event without its alert was taken")
	}
}
