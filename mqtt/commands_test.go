package mqtt

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
)

// withCommands gives the hub the real cloud-to-device queue and twin service.
func withCommands(q **commands.CloudQueue, tw **commands.Twins) func(*Config) {
	return func(cfg *Config) {
		store := cfg.Store.(*db.DB)
		*q = commands.NewCloudQueue(commands.CloudQueueConfig{Store: store})
		*tw = commands.NewTwins(commands.TwinsConfig{Store: store})
		cfg.CloudMessages, cfg.Twins = *q, *tw
	}
}

func (d *testDevice) next(t *testing.T, prefix string) paho.Message {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-d.received:
			if strings.HasPrefix(m.Topic(), prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no publish on %s…", prefix)
		}
	}
}

func cloudState(t *testing.T, h *testHub, id int64) db.CloudMessage {
	t.Helper()
	m, err := h.db.CloudMessage(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCloudToDevice(t *testing.T) {
	var q *commands.CloudQueue
	var tw *commands.Twins
	h := newTestHub(t, withCommands(&q, &tw))
	dev := h.device("dev1")
	ctx := context.Background()

	// Queued while offline, delivered when the device subscribes.
	early, err := q.Send(ctx, "op", "dev1", commands.Message{Body: []byte("first"), Properties: map[string]string{"k": "a/b c"}, CorrelationID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	d := h.connect(dev)
	d.subscribe(t, "devices/dev1/messages/devicebound/#", 1)
	m := d.next(t, "devices/dev1/messages/devicebound/")
	if string(m.Payload()) != "first" || m.Qos() != 1 {
		t.Errorf("got %q at QoS %d, want \"first\" at QoS 1", m.Payload(), m.Qos())
	}
	bag := strings.TrimPrefix(m.Topic(), "devices/dev1/messages/devicebound/")
	sys, app, err := DecodePropertyBag(bag)
	if err != nil {
		t.Fatal(err)
	}
	if sys["$.mid"] != early.MessageID || sys["$.cid"] != "c1" || app["k"] != "a/b c" || strings.Contains(bag, "/") {
		t.Errorf("topic %q: system %v, app %v; want message id, correlation id and k in one segment", m.Topic(), sys, app)
	}
	testkit.WaitFor(t, "completed after PUBACK", func() bool { return cloudState(t, h, early.ID).State == db.CloudCompleted })

	// Sent while connected: pushed at once; the empty bag still ends in '/'.
	live, err := q.Send(ctx, "op", "dev1", commands.Message{Body: []byte("second"), MessageID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	m = d.next(t, "devices/dev1/messages/devicebound/")
	if string(m.Payload()) != "second" {
		t.Errorf("got %q, want \"second\"", m.Payload())
	}
	testkit.WaitFor(t, "completed after PUBACK", func() bool { return cloudState(t, h, live.ID).State == db.CloudCompleted })
}

func TestCloudToDeviceReturnsToQueueOnDisconnect(t *testing.T) {
	var q *commands.CloudQueue
	var tw *commands.Twins
	h := newTestHub(t, withCommands(&q, &tw))
	dev := h.device("dev1")
	o := h.sdkOptions(dev)
	o.manualAck = true
	d, err := h.dial(o)
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, "devices/dev1/messages/devicebound/#", 1)
	msg, err := q.Send(context.Background(), "op", "dev1", commands.Message{Body: []byte("hold")})
	if err != nil {
		t.Fatal(err)
	}
	d.next(t, "devices/dev1/messages/devicebound/")
	if st := cloudState(t, h, msg.ID).State; st != db.CloudLocked {
		t.Fatalf("state before PUBACK = %s, want %s", st, db.CloudLocked)
	}
	d.client.Disconnect(0)
	testkit.WaitFor(t, "message back in the queue", func() bool {
		st := cloudState(t, h, msg.ID).State
		return st == db.CloudAbandoned || st == db.CloudQueued
	})

	// The session survives: reconnecting without subscribing gets it again.
	d = h.connect(dev)
	m := d.next(t, "devices/dev1/messages/devicebound/")
	if string(m.Payload()) != "hold" {
		t.Errorf("got %q, want \"hold\"", m.Payload())
	}
	testkit.WaitFor(t, "completed", func() bool { return cloudState(t, h, msg.ID).State == db.CloudCompleted })
	if got := cloudState(t, h, msg.ID).DeliveryCount; got != 2 {
		t.Errorf("delivery count = %d, want 2", got)
	}
}

// gatedCloud is the real cloud-to-device queue with a gate before Receive,
// so a test can hold the hub's sender while a connection ends.
type gatedCloud struct {
	*commands.CloudQueue
	waiting chan struct{} // a Receive waits at the gate
	gate    chan struct{} // closed: Receives go on
}

func (g *gatedCloud) Receive(ctx context.Context, deviceID string) (db.CloudMessage, error) {
	select {
	case g.waiting <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return db.CloudMessage{}, ctx.Err()
	}
	return g.CloudQueue.Receive(ctx, deviceID)
}

// TestCloudToDeviceNotCountedUnsent: a message the hub takes from the queue
// for a connection that ends before it is sent goes back without counting a
// delivery, so it is not dead-lettered undelivered. Before the fix it
// counted (delivery count 2 after one delivery), and the hub's sender could
// take back, for the closed connection, the message that connection had
// just given back: TestCloudToDeviceReturnsToQueueOnDisconnect's flaky
// "delivery count = 3".
func TestCloudToDeviceNotCountedUnsent(t *testing.T) {
	var q *commands.CloudQueue
	var tw *commands.Twins
	g := &gatedCloud{waiting: make(chan struct{}, 1), gate: make(chan struct{})}
	h := newTestHub(t, withCommands(&q, &tw), func(cfg *Config) {
		g.CloudQueue = q
		cfg.CloudMessages = g
	})
	dev := h.device("dev1")
	d := h.connect(dev)
	d.subscribe(t, "devices/dev1/messages/devicebound/#", 1)
	select {
	case <-g.waiting: // the sender, woken by SUBSCRIBE, waits at the gate
	case <-time.After(wait):
		t.Fatal("the hub never asked the queue for a message")
	}
	msg, err := q.Send(context.Background(), "op", "dev1", commands.Message{Body: []byte("late")})
	if err != nil {
		t.Fatal(err)
	}
	d.client.Disconnect(uint(wait.Milliseconds()))
	testkit.WaitFor(t, "connection gone", func() bool { return !h.broker.Connected("dev1") })
	close(g.gate) // the sender takes the message for the connection that ended

	d = h.connect(dev)
	if m := d.next(t, "devices/dev1/messages/devicebound/"); string(m.Payload()) != "late" {
		t.Errorf("got %q, want \"late\"", m.Payload())
	}
	testkit.WaitFor(t, "completed", func() bool { return cloudState(t, h, msg.ID).State == db.CloudCompleted })
	if got := cloudState(t, h, msg.ID).DeliveryCount; got != 1 {
		t.Errorf("delivery count = %d, want 1: the message reached the device once", got)
	}
}

func TestTwin(t *testing.T) {
	var q *commands.CloudQueue
	var tw *commands.Twins
	h := newTestHub(t, withCommands(&q, &tw))
	ctx := context.Background()
	d := h.connect(h.device("dev1"))
	d.subscribe(t, "$iothub/twin/res/#", 0)
	d.subscribe(t, "$iothub/twin/PATCH/properties/desired/#", 0)
	before, err := tw.Get(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	dv, rv := before.DesiredVersion+1, before.ReportedVersion
	if _, err := tw.PatchDesired(ctx, "op", "dev1", json.RawMessage(`{"rate":5}`), 0); err != nil {
		t.Fatal(err)
	}
	m := d.next(t, "$iothub/twin/PATCH/properties/desired/")
	if m.Topic() != fmt.Sprintf("$iothub/twin/PATCH/properties/desired/?$version=%d", dv) || string(m.Payload()) != fmt.Sprintf(`{"$version":%d,"rate":5}`, dv) {
		t.Errorf("desired patch = %s %s, want version %d with rate 5", m.Topic(), m.Payload(), dv)
	}

	d.publish(t, "$iothub/twin/GET/?$rid=7", 0, " ")
	m = d.next(t, "$iothub/twin/res/")
	if want := fmt.Sprintf(`{"desired":{"$version":%d,"rate":5},"reported":{"$version":%d}}`, dv, rv); m.Topic() != "$iothub/twin/res/200/?$rid=7" || string(m.Payload()) != want {
		t.Errorf("twin get reply = %s %s, want 200 %s", m.Topic(), m.Payload(), want)
	}

	d.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=8", 0, `{"fw":"1.2"}`)
	m = d.next(t, "$iothub/twin/res/")
	if want := fmt.Sprintf("$iothub/twin/res/204/?$rid=8&$version=%d", rv+1); m.Topic() != want {
		t.Errorf("reported reply topic = %s, want %s", m.Topic(), want)
	}
	got, err := tw.Get(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Reported["fw"] != "1.2" {
		t.Errorf("reported = %v, want fw 1.2", got.Reported)
	}

	d.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=9", 0, `[1,2]`)
	m = d.next(t, "$iothub/twin/res/")
	var body twinError
	if err := json.Unmarshal(m.Payload(), &body); err != nil || m.Topic() != "$iothub/twin/res/400/?$rid=9" || body.ErrorCode != twinArgumentInvalid {
		t.Errorf("bad patch reply = %s %s, want 400 with errorCode %d", m.Topic(), m.Payload(), twinArgumentInvalid)
	}
}

// TestTelemetryStoredBeforePuback: once the PUBACK is in, the message can
// be read back.
func TestTelemetryStoredBeforePuback(t *testing.T) {
	h := newTestHub(t)
	d := h.connect(h.device("dev1"))
	for i := range 20 {
		tok := d.publish(t, "devices/dev1/messages/events/%24.ct=application%2Fjson&n="+string(rune('a'+i)), 1, `{"temp":21.5,"hum":40}`)
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish %d: no PUBACK (%v)", i, tok.Error())
		}
		msgs, err := h.store.Messages(context.Background(), "dev1", telemetry.MessageFilter{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Properties["n"] != string(rune('a'+i)) || msgs[0].ContentType != "application/json" || msgs[0].AuthMethod != "sas-primary" {
			t.Fatalf("after PUBACK %d the newest stored message is %+v", i, msgs)
		}
	}
}

// TestDesiredPatchesBurst: a device that reads gets every patch of a burst
// of large ones and keeps its connection. (The test client hands messages
// to handlers on goroutines of their own, so it cannot check their order.)
func TestDesiredPatchesBurst(t *testing.T) {
	var q *commands.CloudQueue
	var tw *commands.Twins
	h := newTestHub(t, withCommands(&q, &tw))
	ctx := context.Background()
	d := h.connect(h.device("dev1"))
	d.subscribe(t, "$iothub/twin/PATCH/properties/desired/#", 0)
	const n = 200
	for i := range n {
		patch := fmt.Sprintf(`{"i":%d,"blob":%q}`, i, strings.Repeat("x", 20_000))
		if _, err := tw.PatchDesired(ctx, "op", "dev1", json.RawMessage(patch), 0); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int]bool{}
	for range n {
		m := d.next(t, "$iothub/twin/PATCH/properties/desired/")
		var got struct{ I int }
		if err := json.Unmarshal(m.Payload(), &got); err != nil || seen[got.I] {
			t.Fatalf("patch i=%d received twice or unreadable (%v)", got.I, err)
		}
		seen[got.I] = true
	}
	if !h.broker.Connected("dev1") {
		t.Error("the device that read every patch was disconnected")
	}
}

// TestDesiredPatchesToADeviceThatStopsReading: a device that stops reading
// its socket cannot be sent every desired patch; rather than drop one
// silently, the hub closes its connection (the device GETs its twin when it
// reconnects) and says why in the device log.
func TestDesiredPatchesToADeviceThatStopsReading(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	o := h.sdkOptions(dev)
	conn, err := tls.Dial("tcp", h.broker.Addr(), &tls.Config{RootCAs: h.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A raw MQTT 3.1.1 client: CONNECT, SUBSCRIBE to desired patches, then
	// never read again.
	mqttString := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	packet := func(header byte, body []byte) []byte {
		out := []byte{header}
		for n := len(body); ; {
			b := byte(n % 128)
			if n /= 128; n > 0 {
				b |= 0x80
			}
			out = append(out, b)
			if n == 0 {
				return append(out, body...)
			}
		}
	}
	connect := mqttString(nil, "MQTT")
	connect = append(connect, 4, 0xc0, 0, 60) // level 4, user name and password, clean=false, keep-alive 60 s
	connect = mqttString(mqttString(mqttString(connect, o.clientID), o.username), o.password)
	subscribe := mqttString([]byte{0, 1}, desiredPatchesFilter)
	subscribe = append(subscribe, 0)
	if _, err := conn.Write(append(packet(0x10, connect), packet(0x82, subscribe)...)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the subscription", func() bool {
		c := h.broker.current("dev1")
		return c != nil && c.subscribed(desiredPatchesFilter)
	})

	patch := json.RawMessage(`{"blob":"` + strings.Repeat("x", 60_000) + `"}`)
	c := h.broker.current("dev1")
	for v := int64(1); c.closeReason() == ""; v++ {
		if v > 2000 { // 120 MB: far beyond any socket buffer
			t.Fatal("the hub kept a connection open that had not read 120 MB of desired patches")
		}
		h.broker.desiredChanged("dev1", patch, v)
	}
	var entries []db.AuditEntry
	testkit.WaitFor(t, "disconnect in the device log", func() bool {
		entries, err = h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
		return err == nil && len(entries) > 0
	})
	if !strings.Contains(entries[0].Detail, "did not read") {
		t.Errorf("disconnect reason = %q, want it to say the device did not read", entries[0].Detail)
	}
}
