package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldhub/internal/testkit"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestMethodAnswerNotHeldByTelemetry: a device's answer to a direct method
// reaches the caller at once even when telemetry the device sent just
// before it still waits for its commit; the PUBACKs keep the order of the
// publishes.
func TestMethodAnswerNotHeldByTelemetry(t *testing.T) {
	h := newTestHub(t)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	h.store.set(func(g *gatedStore) { g.gate, g.entered = gate, entered })
	d := h.connect(h.device("dev1"))
	d.subscribe(t, "$iothub/methods/POST/#", 0)

	telemetry := d.publish(t, "devices/dev1/messages/events/", 1, `{"t":1}`)
	<-entered // the commit holding it is under way and held

	type result struct {
		status  int
		payload string
		err     error
	}
	called := make(chan result, 1)
	go func() {
		status, payload, err := h.broker.InvokeMethod(context.Background(), "dev1", "reboot", []byte(`{"delay":1}`), wait)
		called <- result{status, string(payload), err}
	}()
	req := d.next(t, "$iothub/methods/POST/reboot/")
	rid := req.Topic()[strings.Index(req.Topic(), "$rid=")+len("$rid="):]
	answer := d.publish(t, "$iothub/methods/res/200/?$rid="+rid, 1, `{"ok":true}`)
	r := <-called
	if r.err != nil || r.status != 200 || r.payload != `{"ok":true}` {
		t.Fatalf("method call = %d %s %v, want 200 {\"ok\":true}", r.status, r.payload, r.err)
	}
	if telemetry.WaitTimeout(100*time.Millisecond) || answer.WaitTimeout(100*time.Millisecond) {
		t.Fatal("a PUBACK arrived while the telemetry before it was not committed")
	}
	close(gate)
	for name, tok := range map[string]paho.Token{"telemetry": telemetry, "method answer": answer} {
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Errorf("%s: no PUBACK after the commit (%v)", name, tok.Error())
		}
	}
}

// TestPublishesInFlightBounded: while commits are held, a device that keeps
// publishing has at most maxPublishesInFlight messages queued for storage —
// the hub stops reading its connection — and once they commit, every
// message is acknowledged and stored, in order.
func TestPublishesInFlightBounded(t *testing.T) {
	h := newTestHub(t)
	gate, entered := make(chan struct{}), make(chan struct{}, 100)
	h.store.set(func(g *gatedStore) { g.gate, g.entered = gate, entered })
	d := h.connect(h.device("dev1"))

	const n = maxPublishesInFlight + 36
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = d.publish(t, "devices/dev1/messages/events/", 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	// The reader queues publishes one after another and, at the bound, waits
	// for a place instead of reading on: once it waits, every message it will
	// queue before a commit is queued.
	c := h.broker.current("dev1")
	testkit.WaitFor(t, "the reader waiting at the in-flight bound", func() bool { return c.acks.waits.Load() > 0 })
	if q := h.pipe.Stats().Queued; q != maxPublishesInFlight {
		t.Fatalf("%d messages queued for storage, want at most %d", q, maxPublishesInFlight)
	}
	close(gate)
	for i, tok := range toks {
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish %d: no PUBACK (%v)", i, tok.Error())
		}
	}
	msgs := h.stored("dev1")
	if len(msgs) != n {
		t.Fatalf("stored %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(m.Body) != want {
			t.Fatalf("message %d is %s, want %s", i, m.Body, want)
		}
	}
}

// TestCloseAcknowledgesQueuedTelemetry: on shutdown, telemetry already
// queued is acknowledged once it commits, before connections close, so
// devices do not send it again.
func TestCloseAcknowledgesQueuedTelemetry(t *testing.T) {
	h := newTestHub(t)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	h.store.set(func(g *gatedStore) { g.gate, g.entered = gate, entered })
	d := h.connect(h.device("dev1"))
	tok := d.publish(t, "devices/dev1/messages/events/", 1, `{"t":1}`)
	<-entered
	closed := make(chan struct{})
	go func() {
		h.broker.Close()
		close(closed)
	}()
	testkit.WaitFor(t, "close under way", func() bool { return h.broker.taking.Err() != nil })
	close(gate)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("no PUBACK for telemetry committed during shutdown (%v)", tok.Error())
	}
	<-closed
	d.waitLost(t)
	if n := len(h.stored("dev1")); n != 1 {
		t.Errorf("stored %d messages, want 1", n)
	}
}

// TestStalledDeviceHoldsUpNoOtherPuback: while the write of one device's
// PUBACK does not return (a device that stopped reading fills its socket,
// and the write waits until mochi's keep-alive deadline; here the client's
// write lock is held instead, which stops the write the same way), other
// devices' PUBACKs still go out (the ack workers' watchdog), and the held
// one follows once its write can proceed.
func TestStalledDeviceHoldsUpNoOtherPuback(t *testing.T) {
	h := newTestHub(t)
	stalled, good := h.connect(h.device("dev1")), h.connect(h.device("dev2"))
	c := h.broker.current("dev1")

	c.client.Lock()
	held := stalled.publish(t, "devices/dev1/messages/events/", 1, `{"t":1}`)
	testkit.WaitFor(t, "dev1's PUBACK write under way", func() bool {
		c.acks.mu.Lock()
		defer c.acks.mu.Unlock()
		return c.acks.flushing
	})
	tok := good.publish(t, "devices/dev2/messages/events/", 1, `{"t":1}`)
	ok := tok.WaitTimeout(wait) && tok.Error() == nil
	c.client.Unlock()
	if !ok {
		t.Fatalf("no PUBACK for another device while dev1's PUBACK write waits (%v)", tok.Error())
	}
	if !held.WaitTimeout(wait) || held.Error() != nil {
		t.Fatalf("no PUBACK for dev1 once its write could proceed (%v)", held.Error())
	}
}
