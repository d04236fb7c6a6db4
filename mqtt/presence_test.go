package mqtt

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/telemetry"
)

// accounted is how many events entries stand for: each entry itself plus
// the connects and disconnects its detail says were left out before it.
func accounted(t *testing.T, entries []db.AuditEntry) int {
	t.Helper()
	re := regexp.MustCompile(`not recorded one by one before this: (\d+) connects, (\d+) disconnects\)$`)
	n := 0
	for _, e := range entries {
		n++
		if m := re.FindStringSubmatch(e.Detail); m != nil {
			c, _ := strconv.Atoi(m[1])
			d, _ := strconv.Atoi(m[2])
			n += c + d
		}
	}
	return n
}

func TestPresenceLog(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	p := newPresenceLog(time.Minute)
	var written []db.AuditEntry
	event := func(at time.Time, connected bool) {
		e := db.AuditEntry{At: at, Target: "dev1", Action: ActionDisconnected, Detail: "gone"}
		if connected {
			e.Action, e.Detail = ActionConnected, "MQTT"
		}
		written = append(written, p.add(e, connected)...)
	}
	// 500 connect/disconnect pairs within 1 s.
	for i := range 500 {
		at := start.Add(time.Duration(i) * 2 * time.Millisecond)
		event(at, true)
		event(at.Add(time.Millisecond), false)
	}
	if len(written) != 2 || written[0].Action != ActionConnected || written[1].Action != ActionDisconnected {
		t.Fatalf("within the interval wrote %+v, want one connect and one disconnect", written)
	}
	if got := p.due(start.Add(59 * time.Second)); len(got) != 0 {
		t.Errorf("before the interval ends, due = %+v, want nothing", got)
	}
	last := p.due(start.Add(time.Minute))
	if len(last) != 1 || last[0].Action != ActionDisconnected ||
		last[0].Detail != "gone (not recorded one by one before this: 499 connects, 498 disconnects)" {
		t.Fatalf("at the interval's end, due = %+v, want the last disconnect with the counts", last)
	}
	written = append(written, last...)
	if n := accounted(t, written); n != 1000 {
		t.Errorf("entries account for %d events, want 1000", n)
	}
	// A new interval began with that disconnect: a connect is written at once,
	// a second disconnect waits.
	event(start.Add(61*time.Second), true)
	event(start.Add(62*time.Second), false)
	if len(written) != 4 || written[3].Detail != "MQTT" {
		t.Errorf("next interval wrote %+v, want just the connect", written[3:])
	}
	// Shutdown writes what is left: the device's last state.
	if got := p.flush(); len(got) != 1 || got[0].Action != ActionDisconnected || got[0].Detail != "gone" {
		t.Errorf("flush = %+v, want the last disconnect", got)
	}
	// Devices with nothing left out are forgotten once their interval ends.
	event(start.Add(10*time.Minute), true)
	p.due(start.Add(12 * time.Minute))
	if len(p.devices) != 0 {
		t.Errorf("%d devices remembered after their intervals ended, want 0", len(p.devices))
	}
}

// TestConnectLoopBoundsDeviceLog: a device's connect/disconnect loop wrote
// one audit row per event (2,530 rows in 15 s). Now its log holds a pair
// per minute, and the counts of the rest.
func TestConnectLoopBoundsDeviceLog(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	const cycles = 30
	for range cycles {
		d := h.connect(dev)
		d.client.Disconnect(0)
		testkit.WaitFor(t, "disconnect seen", func() bool { return !h.broker.Connected("dev1") })
	}
	h.broker.Close() // writes what is left
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: "device."})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 5 {
		t.Errorf("%d device log entries for %d connections, want a handful", len(entries), cycles)
	}
	if n := accounted(t, entries); n != 2*cycles {
		t.Errorf("entries account for %d events, want %d", n, 2*cycles)
	}
	if entries[0].Action != ActionDisconnected {
		t.Errorf("newest entry is %s, want the last disconnect", entries[0].Action)
	}
}

// takeOvers records what the broker asks of the rest of its cluster.
type takeOvers struct{}

func (takeOvers) TakeOver(node, deviceID string) {}

// TestPresenceInACluster: in a cluster, connection events name the node
// holding the connection, and the close of a connection that another node
// has taken over since (the device moved there) is not announced as the
// device disconnecting: device pages keep showing the newer connection.
func TestPresenceInACluster(t *testing.T) {
	pub := testkit.NewPublisher()
	h := newTestHub(t, func(c *Config) { c.Presence, c.Node, c.Cluster = pub, "node-a", takeOvers{} })
	connection := func(deviceID string) live.ConnectionEvent {
		t.Helper()
		for {
			if e := pub.Next(t); e.Type == live.EventConnection && e.Device == deviceID {
				return e.Data.(live.ConnectionEvent)
			}
		}
	}
	d := h.connect(h.device("dev1"))
	if ev := connection("dev1"); !ev.Connected || ev.Node != "node-a" {
		t.Fatalf("connect event = %+v, want connected on node-a", ev)
	}
	if ev, ok := h.broker.Connection("dev1"); !ok || ev.Node != "node-a" {
		t.Errorf("Connection = %+v, %v; want node-a", ev, ok)
	}
	// The device connects to node-b, which records it; then node-a's old
	// connection closes.
	if _, err := h.db.SetDeviceConnection(context.Background(), "dev1", "node-b", true); err != nil {
		t.Fatal(err)
	}
	d.client.Disconnect(0)
	testkit.WaitFor(t, "node-a forgets the connection", func() bool { return !h.broker.Connected("dev1") })
	// Presence events are handled in order: once dev2's connect is
	// announced, dev1's close has been handled.
	h.connect(h.device("dev2"))
	connection("dev2")
	for _, e := range pub.Events() {
		if ev, ok := e.Data.(live.ConnectionEvent); ok && e.Device == "dev1" && !ev.Connected {
			t.Errorf("announced %+v for the connection node-b took over", ev)
		}
	}
	if node, err := h.db.DeviceConnectionNode(context.Background(), "dev1"); err != nil || node != "node-b" {
		t.Errorf("dev1's node = %q, %v; want node-b", node, err)
	}

	// A device that leaves node-a for good is announced, with the node.
	h.connect(h.device("dev3")).client.Disconnect(0)
	connection("dev3")
	if ev := connection("dev3"); ev.Connected || ev.Node != "node-a" {
		t.Errorf("dev3's close = %+v, want disconnected on node-a", ev)
	}
}

// TestMessageRightAfterHangUpIsOnline: a device whose MQTT connection closed
// and that then sends over HTTPS (the ingest path) within a second of its
// last MQTT message counts as online at once. The hang-up stores a
// disconnect time, and the activity write of the next message is throttled
// (telemetry.ActivityStep): unless the broker tells the telemetry store of the
// hang-up, that write waited for a later message, a sweep or the checkpoint,
// and the device stayed offline (this test failed so before the fix).
func TestMessageRightAfterHangUpIsOnline(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	h := newTestHub(t, func(c *Config) { c.Now = clk.Now })
	d := h.connect(h.device("dev1"))
	if tok := d.publish(t, "devices/dev1/messages/events/", 1, `{"t":1}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT telemetry: %v", tok.Error())
	}
	status := func() db.Device {
		t.Helper()
		dev, err := h.db.Device(context.Background(), "dev1")
		if err != nil {
			t.Fatal(err)
		}
		return dev
	}
	clk.Advance(200 * time.Millisecond)
	d.client.Disconnect(0)
	testkit.WaitFor(t, "the hang-up recorded", func() bool { return !status().Connected })
	if dev := status(); dev.Status(clk.Now()) != db.StatusOffline {
		t.Fatalf("after hanging up: %s, want offline", dev.Status(clk.Now()))
	}

	clk.Advance(300 * time.Millisecond)
	err := h.pipe.Submit(context.Background(), telemetry.Message{DeviceID: "dev1", Body: []byte(`{"t":2}`), AuthMethod: "sas-primary", Protocol: ingest.ProtocolHTTPS})
	if err != nil {
		t.Fatal(err)
	}
	if dev := status(); dev.Status(clk.Now()) != db.StatusOnline {
		t.Errorf("a message %v after hanging up: %s (last activity %v, disconnected %v), want online",
			300*time.Millisecond, dev.Status(clk.Now()), dev.LastActivity, dev.DisconnectedAt)
	}
}
