package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/auth"
	"fieldhub/certs"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/registry"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// wait bounds how long a test waits for something that should happen; it is
// a failure bound, never a performance assertion.
const wait = testkit.Wait

// gatedStore is the real telemetry store under the real pipeline, with a
// gate a test can set to hold commits and a failure it can inject.
type gatedStore struct {
	*telemetry.Store
	mu      sync.Mutex
	gate    chan struct{} // when set, commits wait until it is closed
	entered chan struct{} // when set, gets a value each time a commit starts
	fail    error         // when set, commits fail with it
}

func (g *gatedStore) Append(ctx context.Context, recs []telemetry.Record) ([]int64, error) {
	g.mu.Lock()
	gate, entered, fail := g.gate, g.entered, g.fail
	g.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return nil, fail
	}
	return g.Store.Append(ctx, recs)
}

func (g *gatedStore) set(f func(g *gatedStore)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

// testHub is a broker on 127.0.0.1:0 over TLS with a real database.
type testHub struct {
	t        *testing.T
	db       *db.DB
	registry *registry.Registry // what the broker authenticates through
	cfg      Config
	broker   *Broker
	store    *gatedStore
	pipe     *ingest.Pipeline
	roots    *x509.CertPool
	cert     tls.Certificate
	host     string // what devices put in tokens and user names
	url      string // broker URL for paho; ssl:// unless a test changes it
}

func newTestHub(t *testing.T, configure ...func(*Config)) *testHub {
	t.Helper()
	dir := t.TempDir()
	cert, err := certs.Ensure(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	h := &testHub{t: t, db: dbtest.MustOpen(t), roots: roots, cert: cert}
	h.registry = registry.New(registry.Config{Store: h.db, Audit: h.db, Logger: slog.New(slog.DiscardHandler)})
	cfg := Config{
		Addr:            "127.0.0.1:0",
		TLS:             &tls.Config{Certificates: []tls.Certificate{cert}},
		Store:           h.db,
		Devices:         h.registry,
		RecheckInterval: 50 * time.Millisecond,
	}
	for _, f := range configure {
		f(&cfg)
	}
	// A test's clock (Config.Now) is the store's and telemetry's too.
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	h.db.Now = now
	tel, err := telemetry.Open(context.Background(), sqlite.New(h.db), telemetry.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	h.store = &gatedStore{Store: tel}
	pipe := ingest.New(h.store, nil, ingest.Options{Logger: slog.New(slog.DiscardHandler), Now: now})
	t.Cleanup(func() {
		h.store.set(func(g *gatedStore) { g.gate = nil })
		pipe.Close(context.Background())
	})
	cfg.Ingest = pipe
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h.registry.SetSessions(b)
	h.broker, h.cfg, h.pipe = b, cfg, pipe
	h.url = "ssl://" + b.Addr()
	h.host = "localhost:" + b.Addr()[strings.LastIndexByte(b.Addr(), ':')+1:]
	return h
}

// stored is what the device's message log holds, oldest first.
func (h *testHub) stored(deviceID string) []telemetry.Message {
	h.t.Helper()
	msgs, err := h.store.Messages(context.Background(), deviceID, telemetry.MessageFilter{Limit: telemetry.MaxMessagePage})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(msgs)
	return msgs
}

func (h *testHub) device(id string) db.Device {
	h.t.Helper()
	dev, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return dev
}

// token signs a SAS token for dev with key keyIndex, valid for ttl.
func (h *testHub) token(dev db.Device, keyIndex int, ttl time.Duration) string {
	h.t.Helper()
	tok, err := auth.SignSAS(h.host+"/devices/"+dev.DeviceID, dev.Keys()[keyIndex], time.Now().Add(ttl))
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// testDevice is a connected paho client and what it has seen.
type testDevice struct {
	client   paho.Client
	lost     chan error
	received chan paho.Message
}

type connectOptions struct {
	clientID, username, password string
	clean                        bool
	manualAck                    bool // PUBACK only when the test calls Ack
	willTopic, will              string
	cert                         *tls.Certificate // presented in the TLS handshake (X.509 devices)
}

func (h *testHub) dial(o connectOptions) (*testDevice, error) {
	d := &testDevice{lost: make(chan error, 1), received: make(chan paho.Message, 100)}
	tlsCfg := &tls.Config{RootCAs: h.roots, ServerName: "localhost"}
	if o.cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*o.cert}
	}
	opts := paho.NewClientOptions().
		AddBroker(h.url).
		SetClientID(o.clientID).
		SetUsername(o.username).
		SetPassword(o.password).
		SetTLSConfig(tlsCfg).
		SetCleanSession(o.clean).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetOrderMatters(false).
		SetAutoAckDisabled(o.manualAck).
		SetConnectTimeout(wait).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.received <- m })
	if o.willTopic != "" {
		opts.SetWill(o.willTopic, o.will, 1, false)
	}
	d.client = paho.NewClient(opts)
	tok := d.client.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	h.t.Cleanup(func() { d.client.Disconnect(0) })
	return d, nil
}

// connect connects dev as the SDK does (clean=false, primary key).
func (h *testHub) connect(dev db.Device) *testDevice {
	h.t.Helper()
	d, err := h.dial(h.sdkOptions(dev))
	if err != nil {
		h.t.Fatalf("connect %s: %v", dev.DeviceID, err)
	}
	// mochi sends CONNACK just before the session hook registers the
	// connection; wait for it so calls to the device find it.
	testkit.WaitFor(h.t, "connection registered", func() bool { return h.broker.Connected(dev.DeviceID) })
	return d
}

func (h *testHub) sdkOptions(dev db.Device) connectOptions {
	return connectOptions{
		clientID: dev.DeviceID,
		username: h.host + "/" + dev.DeviceID + "/?api-version=2021-04-12&DeviceClientType=test",
		password: h.token(dev, 0, time.Hour),
	}
}

func (d *testDevice) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-d.lost:
	case <-time.After(wait):
		t.Fatal("connection still open, want it closed by the hub")
	}
}

func (d *testDevice) publish(t *testing.T, topic string, qos byte, body string) paho.Token {
	t.Helper()
	return d.client.Publish(topic, qos, false, body)
}

func (d *testDevice) subscribe(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	tok := d.client.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("subscribe %s timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func TestConnectRefused(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	other := h.device("dev2")
	disabled := h.device("off")
	off := false
	if _, err := h.db.UpdateDevice(context.Background(), "off", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(o *connectOptions)
	}{
		{"wrong password", func(o *connectOptions) { o.password = h.token(other, 0, time.Hour) }},
		{"token of another device's key", func(o *connectOptions) {
			tok, _ := auth.SignSAS(h.host+"/devices/dev1", other.PrimaryKey, time.Now().Add(time.Hour))
			o.password = tok
		}},
		{"expired token", func(o *connectOptions) { o.password = h.token(dev, 0, -time.Minute) }},
		{"not a token", func(o *connectOptions) { o.password = "hunter2" }},
		{"no password", func(o *connectOptions) { o.password = "" }},
		{"client id differs from user name", func(o *connectOptions) { o.clientID = "dev2" }},
		{"unknown device", func(o *connectOptions) {
			o.clientID = "ghost"
			o.username = h.host + "/ghost/?api-version=2021-04-12"
		}},
		{"disabled device", func(o *connectOptions) { *o = h.sdkOptions(disabled) }},
		{"bad user name", func(o *connectOptions) { o.username = "dev1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := h.sdkOptions(dev)
			tt.modify(&o)
			if d, err := h.dial(o); err == nil {
				d.client.Disconnect(0)
				t.Fatal("connected, want refused")
			}
		})
	}
	if h.broker.Connected("dev1") || h.broker.Connected("off") {
		t.Error("a refused device counts as connected")
	}
}

func TestTelemetryPropertiesAndAuthMethod(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	tests := []struct {
		name     string
		keyIndex int
		topic    string
		want     telemetry.Message
	}{
		{
			name:     "system and application properties, primary key",
			keyIndex: 0,
			topic:    "devices/dev1/messages/events/%24.mid=m1&%24.cid=c1&%24.ct=application%2Fjson&%24.ce=utf-8&site=north%2F2&a%20b=x%26y",
			want: telemetry.Message{DeviceID: "dev1", MessageID: "m1", CorrelationID: "c1", ContentType: "application/json",
				ContentEncoding: "utf-8", Properties: map[string]string{"site": "north/2", "a b": "x&y"}, AuthMethod: "sas-primary"},
		},
		{
			name:     "empty bag, secondary key",
			keyIndex: 1,
			topic:    "devices/dev1/messages/events/",
			want:     telemetry.Message{DeviceID: "dev1", AuthMethod: "sas-secondary"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := h.sdkOptions(dev)
			o.password = h.token(dev, tt.keyIndex, time.Hour)
			d, err := h.dial(o)
			if err != nil {
				t.Fatal(err)
			}
			// The same topic again, after another and right after itself:
			// a connection reuses its last telemetry topic's decoded bag.
			const other = "devices/dev1/messages/events/other=1"
			topics := []string{tt.topic, other, tt.topic, tt.topic}
			before := len(h.stored("dev1"))
			for _, topic := range topics {
				tok := d.publish(t, topic, 1, `{"t":1}`)
				if !tok.WaitTimeout(wait) || tok.Error() != nil {
					t.Fatalf("publish on %q: no PUBACK (%v)", topic, tok.Error())
				}
			}
			msgs := h.stored("dev1")
			if len(msgs) != before+len(topics) {
				t.Fatalf("stored %d messages after PUBACK, want %d", len(msgs), before+len(topics))
			}
			for i, topic := range topics {
				got, want := msgs[before+i], tt.want
				if topic == other {
					want = telemetry.Message{DeviceID: "dev1", Properties: map[string]string{"other": "1"}, AuthMethod: tt.want.AuthMethod}
				}
				if string(got.Body) != `{"t":1}` {
					t.Errorf("message %d: body = %q, want %q", i, got.Body, `{"t":1}`)
				}
				if got.EnqueuedAt.IsZero() {
					t.Errorf("message %d: EnqueuedAt is zero", i)
				}
				got.ID, got.Body, got.EnqueuedAt = 0, nil, time.Time{}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("message %d = %+v\nwant        %+v", i, got, want)
				}
			}
			d.client.Disconnect(0)
		})
	}
}

// TestPubackAfterCommit holds the commit and checks that no PUBACK arrives
// until it is released.
func TestPubackAfterCommit(t *testing.T) {
	h := newTestHub(t)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	h.store.set(func(g *gatedStore) { g.gate, g.entered = gate, entered })
	d := h.connect(h.device("dev1"))
	tok := d.publish(t, "devices/dev1/messages/events/", 1, "x")
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the message never reached the pipeline")
	}
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK arrived before the message was committed")
	}
	close(gate)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("no PUBACK after commit (%v)", tok.Error())
	}
	if n := len(h.stored("dev1")); n != 1 {
		t.Fatalf("stored %d messages, want 1", n)
	}
}

func TestSubmitFailureClosesWithoutPuback(t *testing.T) {
	h := newTestHub(t)
	h.store.set(func(g *gatedStore) { g.fail = errors.New("disk full") })
	d := h.connect(h.device("dev1"))
	tok := d.publish(t, "devices/dev1/messages/events/", 1, "x")
	d.waitLost(t)
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Fatal("publish acknowledged although it was not stored")
	}
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
	testkit.WaitFor(t, "disconnect in the device log", func() bool {
		entries, err = h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
		return err == nil && len(entries) > 0
	})
	if !strings.Contains(entries[0].Detail, "disk full") {
		t.Errorf("disconnect reason = %q, want it to mention the failure", entries[0].Detail)
	}
}

func TestRefusedTopics(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	h.device("dev2")
	t.Run("publish", func(t *testing.T) {
		for _, topic := range []string{
			"devices/dev2/messages/events/",
			"devices/dev1/messages/devicebound/",
			"$iothub/twin/res/200/?$rid=1",
			"$iothub/methods/POST/reboot/?$rid=1",
			"some/other/topic",
		} {
			t.Run(topic, func(t *testing.T) {
				d := h.connect(dev)
				d.publish(t, topic, 0, "x")
				d.waitLost(t)
			})
		}
		if n := len(h.stored("dev1")) + len(h.stored("dev2")); n != 0 {
			t.Errorf("stored %d messages from refused publishes, want 0", n)
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		d := h.connect(dev)
		for _, filter := range []string{"devices/dev2/messages/devicebound/#", "#", "devices/+/messages/devicebound/#", "$iothub/#"} {
			if code := d.subscribe(t, filter, 1); code != 0x80 {
				t.Errorf("SUBACK for %q = %#x, want 0x80 (failure)", filter, code)
			}
		}
		for _, filter := range []string{"devices/dev1/messages/devicebound/#", "$iothub/methods/POST/#", "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"} {
			if code := d.subscribe(t, filter, 1); code >= 0x80 {
				t.Errorf("SUBACK for %q = %#x, want granted", filter, code)
			}
		}
	})
}

// TestRetainIgnored: a retained publish is handled like any other and
// nothing is kept for later subscribers.
func TestRetainIgnored(t *testing.T) {
	h := newTestHub(t)
	d := h.connect(h.device("dev1"))
	tok := d.client.Publish("devices/dev1/messages/events/", 1, true, "x")
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("retained publish: %v", tok.Error())
	}
	for topic := range h.broker.server.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$SYS/") { // mochi's own, unreachable for devices
			t.Errorf("broker retains a message on %q, want none", topic)
		}
	}
	if n := len(h.stored("dev1")); n != 1 {
		t.Errorf("stored %d messages, want 1", n)
	}
}

func TestQoS2PublishCloses(t *testing.T) {
	h := newTestHub(t)
	d := h.connect(h.device("dev1"))
	d.publish(t, "devices/dev1/messages/events/", 2, "x")
	d.waitLost(t)
	if n := len(h.stored("dev1")); n != 0 {
		t.Errorf("stored %d messages, want 0", n)
	}
}

func TestTakeover(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	first := h.connect(dev)
	second := h.connect(dev)
	first.waitLost(t)
	tok := second.publish(t, "devices/dev1/messages/events/", 1, "x")
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish on the new connection: %v", tok.Error())
	}
	testkit.WaitFor(t, "device online after takeover", func() bool {
		d, err := h.db.Device(context.Background(), "dev1")
		return err == nil && d.Connected && h.broker.Connected("dev1")
	})
}

func TestHubClosesConnection(t *testing.T) {
	tests := []struct {
		name   string
		act    func(h *testHub)
		reason string
	}{
		{"device disabled", func(h *testHub) {
			off := false
			if _, err := h.db.UpdateDevice(context.Background(), "dev1", db.DeviceUpdate{Enabled: &off}); err != nil {
				h.t.Fatal(err)
			}
		}, "device disabled"},
		{"signing key rotated", func(h *testHub) {
			if _, err := h.db.RotateDeviceKey(context.Background(), "dev1", db.PrimaryKey); err != nil {
				h.t.Fatal(err)
			}
		}, "primary key rotated"},
		{"device deleted", func(h *testHub) {
			if err := h.db.DeleteDevice(context.Background(), "dev1"); err != nil {
				h.t.Fatal(err)
			}
		}, "device deleted"},
		{"DisconnectDevice", func(h *testHub) {
			if !h.broker.DisconnectDevice("dev1", "operator asked") {
				h.t.Error("DisconnectDevice found no connection")
			}
		}, "operator asked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t)
			d := h.connect(h.device("dev1"))
			testkit.WaitFor(t, "device marked connected", func() bool {
				dev, err := h.db.Device(context.Background(), "dev1")
				return err == nil && dev.Connected
			})
			tt.act(h)
			d.waitLost(t)
			if tt.name == "device deleted" {
				return
			}
			testkit.WaitFor(t, "disconnect recorded", func() bool {
				entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
				return err == nil && len(entries) == 1 && entries[0].Detail == tt.reason
			})
			dev, err := h.db.Device(context.Background(), "dev1")
			if err != nil {
				t.Fatal(err)
			}
			if dev.Connected {
				t.Error("device still marked connected")
			}
		})
	}
}

// TestWillIsTelemetry: a will message is stored as the device's telemetry
// whenever its connection ends without DISCONNECT — the device dropped it,
// or the hub closed it, whatever the hub was doing at that moment
// [MQTT-3.1.2-8] — and never after a DISCONNECT; a will on any other topic
// is refused. Before the fix a connection the hub closed while it handled a
// packet (a refused publish, or a close racing the read loop) lost its will:
// mochi skips the will when its read loop ends between packets.
func TestWillIsTelemetry(t *testing.T) {
	t.Run("will on a hub topic", func(t *testing.T) {
		h := newTestHub(t)
		o := h.sdkOptions(h.device("dev1"))
		o.willTopic, o.will = "$iothub/twin/res/200/?$rid=1", "x"
		if _, err := h.dial(o); err == nil {
			t.Fatal("connected with a will on a hub topic, want refused")
		}
	})
	tests := []struct {
		name string
		// end ends the connection of d, which has a will.
		end      func(t *testing.T, h *testHub, d *testDevice)
		wantWill bool
	}{
		{"the hub disconnects the device", func(t *testing.T, h *testHub, d *testDevice) {
			h.broker.DisconnectDevice("dev1", "test drops the connection")
			d.waitLost(t)
		}, true},
		{"the hub refuses a publish while handling it", func(t *testing.T, h *testHub, d *testDevice) {
			// Too large once stored: refused in OnPublish, the connection
			// closed from the read loop itself.
			d.publish(t, "devices/dev1/messages/events/", 1, strings.Repeat("x", ingest.MaxMessageSize+1))
			d.waitLost(t)
		}, true},
		{"the device sends DISCONNECT", func(t *testing.T, h *testHub, d *testDevice) {
			// Disconnect(0) may close the socket before DISCONNECT is out;
			// a bound returns as soon as it is written.
			d.client.Disconnect(uint(wait.Milliseconds()))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t)
			o := h.sdkOptions(h.device("dev1"))
			o.willTopic, o.will = "devices/dev1/messages/events/kind=will", "gone"
			d, err := h.dial(o)
			if err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, "connection registered", func() bool { return h.broker.Connected("dev1") })
			tt.end(t, h, d)
			// The will is stored before the disconnection is announced.
			testkit.WaitFor(t, "disconnect recorded", func() bool {
				entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
				return err == nil && len(entries) == 1
			})
			checkWill(t, h, tt.wantWill)
		})
	}
	t.Run("the device drops the connection", func(t *testing.T) {
		h := newTestHub(t, func(c *Config) { c.PlainAddr = "127.0.0.1:0" })
		dev := h.device("dev1")
		o := h.sdkOptions(dev)
		// connack closes the socket once the CONNACK is in.
		got, err := connack(t, h.broker.PlainAddr(), rawConnect{clientID: "dev1", username: &o.username, password: &o.password,
			willTopic: "devices/dev1/messages/events/kind=will", will: "gone", willQoS: 1})
		if err != nil || len(got) != 4 || got[3] != 0 {
			t.Fatalf("CONNACK % x (%v), want accepted", got, err)
		}
		testkit.WaitFor(t, "disconnect recorded", func() bool {
			entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
			return err == nil && len(entries) == 1
		})
		checkWill(t, h, true)
	})
	t.Run("a retained will is not kept", func(t *testing.T) {
		h := newTestHub(t, func(c *Config) { c.PlainAddr = "127.0.0.1:0" })
		o := h.sdkOptions(h.device("dev1"))
		got, err := connack(t, h.broker.PlainAddr(), rawConnect{clientID: "dev1", username: &o.username, password: &o.password,
			willTopic: "devices/dev1/messages/events/kind=will", will: "gone", willQoS: 1, willRetain: true})
		if err != nil || len(got) != 4 || got[3] != 0 {
			t.Fatalf("CONNACK % x (%v), want accepted", got, err)
		}
		testkit.WaitFor(t, "disconnect recorded", func() bool {
			entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
			return err == nil && len(entries) == 1
		})
		checkWill(t, h, true)
		// mochi sends the will (to nobody) before OnDisconnect, which
		// recorded the disconnect above.
		for topic := range h.broker.server.Topics.Retained.GetAll() {
			if !strings.HasPrefix(topic, "$SYS/") {
				t.Errorf("the broker retains a message on %s: a device could fill memory with retained wills on ever new topics", topic)
			}
		}
	})
}

// checkWill checks that dev1's message log holds just its will, or nothing.
func checkWill(t *testing.T, h *testHub, want bool) {
	t.Helper()
	msgs := h.stored("dev1")
	switch {
	case !want && len(msgs) != 0:
		t.Errorf("%d messages stored, want none (no will after DISCONNECT)", len(msgs))
	case want && (len(msgs) != 1 || string(msgs[0].Body) != "gone" || msgs[0].Properties["kind"] != "will"):
		t.Errorf("stored %d messages (%+v), want the will alone", len(msgs), msgs)
	}
}

// TestCheckDevice: the registry calls CheckDevice after a change, which
// closes the connection without waiting for the periodic check (off here).
func TestCheckDevice(t *testing.T) {
	h := newTestHub(t, func(cfg *Config) { cfg.RecheckInterval = time.Hour })
	dev := h.device("dev1")
	d := h.connect(dev)
	h.broker.CheckDevice("dev1") // nothing changed: stays
	if _, err := h.db.RotateDeviceKey(context.Background(), "dev1", db.SecondaryKey); err != nil {
		t.Fatal(err)
	}
	h.broker.CheckDevice("dev1") // the other key: stays
	if !h.broker.Connected("dev1") {
		t.Fatal("connection closed although its key is unchanged")
	}
	off := false
	if _, err := h.db.UpdateDevice(context.Background(), "dev1", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	h.broker.CheckDevice("dev1")
	d.waitLost(t)
}

// TestRegistryChangeClosesConnection: a change made through the device
// registry (as pages, the API and the CLI make them) closes the connection
// it no longer admits at once, and the device cannot come back with it.
func TestRegistryChangeClosesConnection(t *testing.T) {
	tests := []struct {
		name   string
		change func(ctx context.Context, h *testHub) error
		reason string
	}{
		{"disable", func(ctx context.Context, h *testHub) error {
			_, err := h.registry.SetEnabled(ctx, "user:alice", "dev1", false)
			return err
		}, "device disabled"},
		{"rotate the signing key", func(ctx context.Context, h *testHub) error {
			_, err := h.registry.RotateKey(ctx, "user:alice", "dev1", db.PrimaryKey)
			return err
		}, "primary key rotated"},
		{"switch to X.509", func(ctx context.Context, h *testHub) error {
			_, err := h.registry.SetAuthentication(ctx, "user:alice", "dev1", db.Authentication{Type: auth.AuthCertificateAuthority})
			return err
		}, "authentication changed from sas to certificateAuthority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := newTestHub(t, func(cfg *Config) { cfg.RecheckInterval = time.Hour })
			dev := h.device("dev1")
			o := h.sdkOptions(dev)
			d := h.connect(dev)
			if err := tt.change(ctx, h); err != nil {
				t.Fatal(err)
			}
			d.waitLost(t)
			testkit.WaitFor(t, "disconnect recorded", func() bool {
				entries, err := h.db.AuditEntries(ctx, db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
				return err == nil && len(entries) == 1 && entries[0].Detail == tt.reason
			})
			if _, err := h.dial(o); err == nil {
				t.Error("reconnected with the old credentials, want refused")
			}
		})
	}
}

func TestTokenExpiryCloses(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	o := h.sdkOptions(dev)
	o.password = h.token(dev, 0, 2*time.Second)
	d, err := h.dial(o)
	if err != nil {
		t.Fatal(err)
	}
	d.waitLost(t)
	testkit.WaitFor(t, "expiry recorded", func() bool {
		entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1", Action: ActionDisconnected})
		return err == nil && len(entries) == 1 && entries[0].Detail == "SAS token expired"
	})
}

func TestPresence(t *testing.T) {
	h := newTestHub(t)
	d := h.connect(h.device("dev1"))
	testkit.WaitFor(t, "device connected in the registry", func() bool {
		dev, err := h.db.Device(context.Background(), "dev1")
		return err == nil && dev.Connected && !dev.LastActivity.IsZero()
	})
	d.client.Disconnect(100)
	// The registry row changes first, the device log right after it.
	var entries []db.AuditEntry
	testkit.WaitFor(t, "device disconnected in the registry and the device log", func() bool {
		dev, err := h.db.Device(context.Background(), "dev1")
		if err != nil || dev.Connected {
			return false
		}
		entries, err = h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "dev1"})
		return err == nil && len(entries) >= 2
	})
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+": "+e.Detail)
	}
	if len(got) != 2 || !strings.HasPrefix(got[1], ActionConnected+": MQTT from 127.0.0.1:") || got[0] != ActionDisconnected+": device disconnected" {
		t.Errorf("device log (newest first) = %q, want a connect then a clean disconnect", got)
	}
}

// TestPersistentSession: the SDK renews its token by reconnecting without
// subscribing again; its subscriptions must survive.
func TestPersistentSession(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	d := h.connect(dev)
	d.subscribe(t, "$iothub/methods/POST/#", 0)
	d.client.Disconnect(100)
	testkit.WaitFor(t, "disconnect", func() bool { return !h.broker.Connected("dev1") })

	d = h.connect(dev)
	go answerMethods(d)
	status, payload, err := h.broker.InvokeMethod(context.Background(), "dev1", "ping", []byte(`{"n":1}`), wait)
	if err != nil {
		t.Fatalf("invoke after reconnect without subscribing: %v", err)
	}
	if status != 200 || string(payload) != `{"n":1}` {
		t.Errorf("answer = %d %s, want 200 {\"n\":1}", status, payload)
	}
}

// TestSessionSurvivesRestart: subscriptions of a persistent session are
// stored, so a device that reconnects to a restarted hub without
// subscribing (as the SDKs do) still gets methods.
func TestSessionSurvivesRestart(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	d := h.connect(dev)
	d.subscribe(t, "$iothub/methods/POST/#", 0)
	d.client.Disconnect(100)
	h.broker.Close()

	cfg := h.cfg
	cfg.Addr = h.broker.Addr() // the same port, so tokens and user names still match
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h.broker = b

	d = h.connect(dev)
	go answerMethods(d)
	status, _, err := b.InvokeMethod(context.Background(), "dev1", "ping", []byte(`{}`), wait)
	if err != nil || status != 200 {
		t.Fatalf("invoke after restart = %d, %v; want 200", status, err)
	}

	// A clean session starts empty and forgets what was stored.
	o := h.sdkOptions(dev)
	o.clean = true
	if _, err := h.dial(o); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.InvokeMethod(context.Background(), "dev1", "ping", []byte(`{}`), wait); !errors.Is(err, commands.ErrDeviceNotConnected) {
		t.Errorf("invoke on a clean session without subscriptions: err = %v, want ErrDeviceNotConnected", err)
	}
	subs, err := b.storedSubscriptions(context.Background(), "dev1")
	if err != nil || len(subs) != 0 {
		t.Errorf("stored subscriptions after a clean session = %v (%v), want none", subs, err)
	}
}

// TestWebSocket: MQTT over WebSockets on an HTTPS listener, as the SDKs'
// MqttWs transport speaks it.
func TestWebSocket(t *testing.T) {
	h := newTestHub(t)
	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, h.broker.WebSocketHandler())
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{h.cert}}
	srv.StartTLS()
	defer srv.Close()
	h.url = "wss://" + srv.Listener.Addr().String() + WebSocketPath
	h.host = "localhost:" + srv.Listener.Addr().String()[strings.LastIndexByte(srv.Listener.Addr().String(), ':')+1:]

	d := h.connect(h.device("dev1"))
	tok := d.publish(t, "devices/dev1/messages/events/%24.ct=application%2Fjson", 1, `{"t":1}`)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish over websocket: %v", tok.Error())
	}
	if msgs := h.stored("dev1"); len(msgs) != 1 || msgs[0].ContentType != "application/json" {
		t.Errorf("stored %+v, want one JSON message", msgs)
	}
	d.subscribe(t, "$iothub/methods/POST/#", 0)
	go answerMethods(d)
	status, payload, err := h.broker.InvokeMethod(context.Background(), "dev1", "ping", []byte(`{"n":2}`), wait)
	if err != nil || status != 200 || string(payload) != `{"n":2}` {
		t.Errorf("method over websocket = %d %s %v", status, payload, err)
	}
	d.publish(t, "$iothub/twin/res/200/?$rid=1", 0, "x")
	d.waitLost(t) // the same rules as over TLS
}

// answerMethods echoes every method request with status 200.
func answerMethods(d *testDevice) {
	for m := range d.received {
		topic := m.Topic()
		if !strings.HasPrefix(topic, "$iothub/methods/POST/") {
			continue
		}
		rid := topic[strings.Index(topic, "$rid=")+len("$rid="):]
		d.client.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, m.Payload())
	}
}

func TestInvokeMethod(t *testing.T) {
	h := newTestHub(t)
	const devices, calls = 3, 30
	for i := range devices {
		id := fmt.Sprintf("dev%d", i)
		d := h.connect(h.device(id))
		d.subscribe(t, "$iothub/methods/POST/#", 0)
		go answerMethods(d)
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices*calls)
	for i := range devices {
		for j := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("dev%d", i)
				want := fmt.Sprintf(`{"device":%q,"call":%d}`, id, j)
				status, got, err := h.broker.InvokeMethod(context.Background(), id, "echo", []byte(want), wait)
				switch {
				case err != nil:
					errs <- err
				case status != 200 || string(got) != want:
					errs <- fmt.Errorf("call %d on %s: got %d %s, want 200 %s", j, id, status, got, want)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	t.Run("not connected", func(t *testing.T) {
		h.device("offline")
		_, _, err := h.broker.InvokeMethod(context.Background(), "offline", "echo", nil, wait)
		if !errors.Is(err, commands.ErrDeviceNotConnected) {
			t.Errorf("err = %v, want ErrDeviceNotConnected", err)
		}
	})
	t.Run("not subscribed", func(t *testing.T) {
		h.connect(h.device("deaf"))
		_, _, err := h.broker.InvokeMethod(context.Background(), "deaf", "echo", nil, wait)
		if !errors.Is(err, commands.ErrDeviceNotConnected) {
			t.Errorf("err = %v, want ErrDeviceNotConnected", err)
		}
	})
	t.Run("method names", func(t *testing.T) {
		// The device answers with the name it found in the topic: every name
		// the one rule admits arrives intact; the broker refuses the others.
		d := h.connect(h.device("namer"))
		d.subscribe(t, "$iothub/methods/POST/#", 0)
		go func() {
			for m := range d.received {
				name, rest, _ := strings.Cut(strings.TrimPrefix(m.Topic(), "$iothub/methods/POST/"), "/")
				answer, _ := json.Marshal(name)
				d.client.Publish("$iothub/methods/res/200/"+rest, 0, false, answer)
			}
		}()
		for _, tt := range testkit.MethodNames {
			_, got, err := h.broker.InvokeMethod(context.Background(), "namer", tt.Name, []byte(`{}`), wait)
			var inv *commands.InvalidMethodError
			want, _ := json.Marshal(tt.Name)
			switch {
			case tt.OK && (err != nil || string(got) != string(want)):
				t.Errorf("method %q: answer %s, %v; want the device to see its name", tt.Name, got, err)
			case !tt.OK && !errors.As(err, &inv):
				t.Errorf("method %q: %v, want refused by the one rule", tt.Name, err)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		d := h.connect(h.device("silent"))
		d.subscribe(t, "$iothub/methods/POST/#", 0)
		_, _, err := h.broker.InvokeMethod(context.Background(), "silent", "echo", nil, 200*time.Millisecond)
		if !errors.Is(err, commands.ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
	})
}

func TestPlainAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{":1883", "0.0.0.0:1883", "192.0.2.1:1883", "example.com:1883"} {
		if err := CheckPlainAddr(addr); err == nil {
			t.Errorf("CheckPlainAddr(%q) = nil, want an error", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:1883", "[::1]:0", "localhost:1883"} {
		if err := CheckPlainAddr(addr); err != nil {
			t.Errorf("CheckPlainAddr(%q) = %v, want nil", addr, err)
		}
	}
}
