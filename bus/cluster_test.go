package bus_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/auth"
	"fieldhub/bus"
	"fieldhub/bus/bustest"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/mqtt"
	"fieldhub/registry"
	"fieldhub/telemetry"
)

// cluster is several instances of the hub in one test process, sharing one
// store as the instances of a real cluster share PostgreSQL, joined by a
// real nats-server.
type cluster struct {
	t    testing.TB
	db   *db.DB
	tel  *telemetry.Store
	nats *bustest.Server
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{t: t, nats: bustest.Start(t), db: dbtest.MustOpen(t)}
	c.tel = dbtest.Telemetry(t, c.db)
	return c
}

// instance is one hub: its bus, live hub, command services, ingest
// pipeline and MQTT broker (plain, on loopback), wired as app wires them.
type instance struct {
	node    string
	bus     *bus.Bus
	hub     *live.Hub
	cloud   *commands.CloudQueue
	methods *commands.Invoker
	twins   *commands.Twins
	broker  *mqtt.Broker
	mqttURL string
	// streams serves the hub's SSE streams: /fleet and /devices/{id}.
	streams *httptest.Server
}

// instance starts an instance named node; configure adjusts its bus.
func (c *cluster) instance(node string, configure ...func(*bus.Config)) *instance {
	t := c.t
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	cfg := bus.Config{URLs: []string{c.nats.URL()}, Node: node, Store: c.db, Logger: log}
	for _, f := range configure {
		f(&cfg)
	}
	b, err := bus.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	in := &instance{node: node, bus: b}
	in.hub = live.New(live.Options{Logger: log, Relay: b, ActivityInterval: 20 * time.Millisecond, Counts: c.db.FleetCounts})
	t.Cleanup(in.hub.Close)
	if err := b.AttachHub(in.hub); err != nil {
		t.Fatal(err)
	}
	in.cloud = commands.NewCloudQueue(commands.CloudQueueConfig{Store: c.db, Publisher: in.hub, Logger: log})
	in.methods = commands.NewInvoker(commands.InvokerConfig{Store: c.db, Publisher: in.hub, Logger: log, Transport: b})
	in.twins = commands.NewTwins(commands.TwinsConfig{Store: c.db, Publisher: in.hub, Logger: log})
	t.Cleanup(in.cloud.OnQueued(b.CloudMessageQueued))
	t.Cleanup(in.twins.OnDesired(b.DesiredChanged))
	pipe := ingest.New(c.tel, in.hub, ingest.Options{Logger: log})
	t.Cleanup(func() { pipe.Close(context.Background()) })
	reg := registry.New(registry.Config{Store: c.db, Audit: c.db, Live: in.hub, Logger: log})
	broker, err := mqtt.New(mqtt.Config{
		PlainAddr: "127.0.0.1:0", Store: c.db, Devices: reg, Ingest: pipe, Presence: in.hub,
		CloudMessages: in.cloud, Twins: in.twins, Logger: log, Node: node, Cluster: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	if err := b.AttachDevices(broker); err != nil {
		t.Fatal(err)
	}
	reg.SetSessions(broker)
	in.broker, in.mqttURL = broker, "tcp://"+broker.PlainAddr()
	in.streams = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/devices/"); ok {
			_ = in.hub.ServeDevice(w, r, id, 0)
			return
		}
		_ = in.hub.ServeFleet(w, r, 0, nil)
	}))
	t.Cleanup(in.streams.Close)
	return in
}

// device registers a device in the shared store.
func (c *cluster) device(id string) db.Device {
	c.t.Helper()
	dev, err := c.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return dev
}

// mqttDevice is a paho client connected as a device, with what it received.
type mqttDevice struct {
	client   paho.Client
	lost     chan error
	received chan paho.Message
}

// connect connects dev to the instance over MQTT as the Azure SDKs do
// and waits until the instance holds the connection.
func (in *instance) connect(t testing.TB, dev db.Device) *mqttDevice {
	t.Helper()
	d := &mqttDevice{lost: make(chan error, 1), received: make(chan paho.Message, 100)}
	tok, err := auth.SignSAS("localhost/devices/"+dev.DeviceID, dev.Keys()[0], time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().AddBroker(in.mqttURL).SetClientID(dev.DeviceID).
		SetUsername("localhost/" + dev.DeviceID + "/?api-version=2021-04-12").SetPassword(tok).
		SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(false).
		SetConnectTimeout(testkit.Wait).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.received <- m })
	d.client = paho.NewClient(opts)
	if ct := d.client.Connect(); !ct.WaitTimeout(testkit.Wait) || ct.Error() != nil {
		t.Fatalf("connect %s to %s: %v", dev.DeviceID, in.node, ct.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(0) })
	testkit.WaitFor(t, dev.DeviceID+" connected to "+in.node, func() bool { return in.broker.Connected(dev.DeviceID) })
	return d
}

// subscribe subscribes at QoS 1 and waits for the SUBACK.
func (d *mqttDevice) subscribe(t testing.TB, filter string) {
	t.Helper()
	if tok := d.client.Subscribe(filter, 1, nil); !tok.WaitTimeout(testkit.Wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// next is the next publish the device received on a topic starting with prefix.
func (d *mqttDevice) next(t testing.TB, prefix string) paho.Message {
	t.Helper()
	deadline := time.After(testkit.Wait)
	for {
		select {
		case m := <-d.received:
			if strings.HasPrefix(m.Topic(), prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no publish on %s", prefix)
		}
	}
}

// answerMethods answers every method request with status 200 and the
// request's payload, until the test ends.
func (d *mqttDevice) answerMethods(t testing.TB) {
	d.subscribe(t, "$iothub/methods/POST/#")
	go func() {
		for m := range d.received {
			topic := m.Topic()
			rid := topic[strings.Index(topic, "$rid=")+len("$rid="):]
			if strings.HasPrefix(topic, "$iothub/methods/POST/") {
				d.client.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, m.Payload())
			}
		}
	}()
}

// sseEvent is one server-sent event.
type sseEvent struct{ typ, data string }

// follow opens an SSE stream of the instance (path /fleet or
// /devices/{id}) and returns its events as they come.
func (in *instance) follow(t testing.TB, path string) <-chan sseEvent {
	t.Helper()
	before := in.hub.Connected()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.streams.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	out := make(chan sseEvent, 1024)
	go func() {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			case line == "" && ev.typ != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	// The stream is registered once the hub counts the client.
	testkit.WaitFor(t, "stream open", func() bool { return in.hub.Connected() > before })
	return out
}

// await reads events until one of type typ whose data contains want.
func await(t testing.TB, events <-chan sseEvent, typ, want string) sseEvent {
	t.Helper()
	deadline := time.After(testkit.Wait)
	for {
		select {
		case ev := <-events:
			if ev.typ == typ && strings.Contains(ev.data, want) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event with %s", typ, want)
		}
	}
}

// invoke calls a method through the instance's API service.
func (in *instance) invoke(deviceID, name, payload string, timeout time.Duration) (commands.MethodResult, error) {
	return in.methods.Invoke(context.Background(), "user:test", deviceID, commands.MethodCall{
		Name: name, Payload: []byte(payload), ResponseTimeout: timeout,
	})
}
