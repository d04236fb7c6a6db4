package mqtt

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/internal/testkit"
	"fieldhub/quota"
)

// TestThrottledDeviceHeldBackNotDropped: a device publishing faster than
// its rate is held back — the hub stops reading it while it waits — and
// every message is acknowledged and stored in the end: nothing is dropped.
// The budget's clock stands still, so which messages wait, and for how
// long, does not depend on how fast this machine runs the test: the first
// burst passes, and the k-th message after it waits k/rate seconds.
func TestThrottledDeviceHeldBackNotDropped(t *testing.T) {
	const rate, burst, n = 20, 5, 10
	clk := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	q := quota.New(quota.Config{MessageRate: rate, MessageBurst: burst, Now: clk.Now})
	h := newTestHub(t, func(c *Config) { c.Quota = q })
	d := h.connect(h.device("dev1"))
	start := time.Now()
	var toks []paho.Token
	for i := range n {
		toks = append(toks, d.publish(t, "devices/dev1/messages/events/", 1, fmt.Sprintf(`{"n":%d}`, i)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("message %d: no PUBACK (%v)", i, tok.Error())
		}
	}
	elapsed := time.Since(start)
	if got := len(h.stored("dev1")); got != n {
		t.Fatalf("%d messages stored, want all %d", got, n)
	}
	if held := q.Throttled("dev1").Messages; held != n-burst {
		t.Errorf("%d messages held back, want %d", held, n-burst)
	}
	// The waits are real time, so the run takes at least their sum; only a
	// hub that did not wait could be faster (a lower bound: a slow machine
	// takes longer, never shorter).
	var least time.Duration
	for k := 1; k <= n-burst; k++ {
		least += time.Duration(k) * time.Second / rate
	}
	if elapsed < least {
		t.Errorf("%d messages acknowledged in %v; the hub should have held them back for %v", n, elapsed, least)
	}
	select {
	case err := <-d.lost:
		t.Errorf("connection lost while held back: %v", err)
	default:
	}
}

// TestConnectThrottled: a device that connects more often than its connect
// budget gets CONNACK return code 3 (server unavailable); refused
// authentications do not spend the budget, so nobody can lock a device out
// with its id alone.
func TestConnectThrottled(t *testing.T) {
	q := quota.New(quota.Config{ConnectRate: 0.001, ConnectBurst: 2})
	h := newTestHub(t, func(c *Config) { c.Quota = q })
	dev := h.device("dev1")
	for range 5 {
		o := h.sdkOptions(dev)
		o.password = "not a token"
		if rc := h.connectCode(t, o); rc != 5 && rc != 4 {
			t.Fatalf("bad password: return code %d, want a refusal of the credentials", rc)
		}
	}
	for i := range 2 {
		if rc := h.connectCode(t, h.sdkOptions(dev)); rc != 0 {
			t.Fatalf("connection %d within the budget: return code %d, want 0", i+1, rc)
		}
	}
	if rc := h.connectCode(t, h.sdkOptions(dev)); rc != 3 {
		t.Errorf("third connection: return code %d, want 3 (server unavailable)", rc)
	}
	if got := q.Throttled("dev1"); got != (quota.Counts{Connects: 1}) {
		t.Errorf("Throttled = %+v, want 1 connect", got)
	}
}

// connectCode connects with o, disconnects if that worked, and returns
// the CONNACK return code.
func (h *testHub) connectCode(t *testing.T, o connectOptions) byte {
	t.Helper()
	client := paho.NewClient(paho.NewClientOptions().
		AddBroker(h.url).SetClientID(o.clientID).SetUsername(o.username).SetPassword(o.password).
		SetTLSConfig(&tls.Config{RootCAs: h.roots, ServerName: "localhost"}).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait))
	tok := client.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("connect timed out")
	}
	rc := tok.(*paho.ConnectToken).ReturnCode()
	if rc == 0 {
		testkit.WaitFor(t, "connection registered", func() bool { return h.broker.Connected(o.clientID) })
		client.Disconnect(0)
		testkit.WaitFor(t, "connection gone", func() bool { return !h.broker.Connected(o.clientID) })
	}
	return rc
}
