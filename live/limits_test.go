package live

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldhub/telemetry"
)

// TestMessageEventCutsProperties: a live message event carries at most
// MaxLiveProperties bytes of properties, whole properties in name order,
// and says when some were left out; small property sets pass unchanged.
func TestMessageEventCutsProperties(t *testing.T) {
	props := map[string]string{}
	for i := range 5000 {
		props[fmt.Sprintf("p%04d", i)] = strings.Repeat("v", 100)
	}
	ev := messageEvent(&telemetry.Message{ID: 1, DeviceID: "dev1", Body: []byte(`{}`), Properties: props})
	size := 0
	for k, v := range ev.Properties {
		size += len(k) + len(v)
	}
	if !ev.PropertiesTruncated || size > MaxLiveProperties || size < MaxLiveProperties-200 {
		t.Errorf("5,000 properties of 100 bytes: propertiesTruncated %v, %d bytes kept; want true and just under %d", ev.PropertiesTruncated, size, MaxLiveProperties)
	}
	if _, ok := ev.Properties["p0000"]; !ok {
		t.Error("the first property by name was left out")
	}

	ev = messageEvent(&telemetry.Message{ID: 2, DeviceID: "dev1", Properties: map[string]string{"k": "v"}})
	if ev.PropertiesTruncated || len(ev.Properties) != 1 || ev.Properties["k"] != "v" {
		t.Errorf("one small property: %v, truncated %v; want it whole", ev.Properties, ev.PropertiesTruncated)
	}
}

// ringBytes is what the events in st's replay buffer hold, counted anew.
func ringBytes(st *stream) (n, bytes int) {
	for i := range st.n {
		bytes += cap(st.ring[(st.head+i)%len(st.ring)].wire)
	}
	return st.n, bytes
}

// TestReplayBuffersBoundedInBytes follows two devices that send messages
// with 200 KB of properties and checks that each device's replay buffer,
// and the fleet's, stays within its byte budget, with the budget's
// accounting matching what the buffer holds.
func TestReplayBuffersBoundedInBytes(t *testing.T) {
	const deviceBudget, fleetBudget = 256 << 10, 64 << 10
	h := New(Options{DeviceReplayBytes: deviceBudget, FleetReplayBytes: fleetBudget})
	srv := testServer(t, h)
	props := map[string]string{}
	for i := range 200 {
		props[fmt.Sprintf("p%03d", i)] = strings.Repeat("v", 1000)
	}
	devices := []string{"dev1", "dev2"}
	for _, id := range devices {
		c := dial(t, srv.URL+"/devices/"+id, "")
		waitSubscribers(t, h.deviceStream(id), 1)
		go func() {
			for range c.events {
			}
		}()
	}
	for i := range 300 {
		var batch []telemetry.Record
		for _, id := range devices {
			batch = append(batch, telemetry.Record{Message: telemetry.Message{ID: int64(i), DeviceID: id,
				Body: []byte(strings.Repeat("b", 20_000)), Properties: props}})
		}
		h.Committed(batch)
		h.publishFleet("", EventStats, Stats{MessagesPerMinute: int64(i)})
	}
	for _, id := range devices {
		st := h.deviceStream(id)
		st.mu.Lock()
		n, bytes := ringBytes(st)
		accounted := st.bytes
		st.mu.Unlock()
		if bytes != accounted || bytes > deviceBudget || n == 0 {
			t.Errorf("%s: replay buffer holds %d events of %d bytes, accounted %d; want some, within %d", id, n, bytes, accounted, deviceBudget)
		}
		if n >= 256 {
			t.Errorf("%s: %d events kept; the byte budget should bind before the count", id, n)
		}
	}
	h.fleet.mu.Lock()
	n, bytes := ringBytes(h.fleet)
	accounted := h.fleet.bytes
	h.fleet.mu.Unlock()
	if bytes != accounted || bytes > fleetBudget || n == 0 {
		t.Errorf("fleet: replay buffer holds %d events of %d bytes, accounted %d; want some, within %d", n, bytes, accounted, fleetBudget)
	}
}

// TestEventOverBudgetIsLiveOnly: an event larger than the whole replay
// budget reaches current subscribers but is not kept, so a client resuming
// from before it is told to resynchronise.
func TestEventOverBudgetIsLiveOnly(t *testing.T) {
	h := New(Options{DeviceReplayBytes: 4 << 10})
	srv := testServer(t, h)
	c := dial(t, srv.URL+"/devices/dev1", "")
	waitSubscribers(t, h.deviceStream("dev1"), 1)
	h.publishDevice("dev1", "reading", map[string]int{"n": 1})
	first := c.next()
	h.publishDevice("dev1", "reading", map[string]string{"pad": strings.Repeat("x", 8<<10)})
	if ev := c.next(); !strings.Contains(ev.Data, "xxxx") {
		t.Fatalf("live subscriber got %+v, want the big event", ev)
	}
	st := h.deviceStream("dev1")
	st.mu.Lock()
	n, bytes := ringBytes(st)
	st.mu.Unlock()
	if n != 0 || bytes != 0 {
		t.Errorf("replay buffer holds %d events (%d bytes), want none", n, bytes)
	}
	again := dial(t, srv.URL+"/devices/dev1", first.ID)
	if ev := again.next(); ev.Type != EventResync {
		t.Errorf("resuming before the big event: first event %+v, want %s", ev, EventResync)
	}
}

// TestSubscriberBoundedInBytes: a subscriber that does not read is dropped
// once the events waiting for it exceed its byte budget, before its buffer
// is full by count.
func TestSubscriberBoundedInBytes(t *testing.T) {
	h := New(Options{SubscriberBytes: 64 << 10})
	defer h.Close()
	st := h.deviceStream("dev1")
	sub := h.newSubscriber(nil)
	st.mu.Lock()
	st.subs[sub] = struct{}{}
	st.mu.Unlock()
	pad := strings.Repeat("x", 10_000)
	for range 20 {
		h.publishDevice("dev1", "reading", map[string]string{"pad": pad})
	}
	select {
	case <-sub.gone:
	default:
		t.Fatal("subscriber with 200 KB waiting not dropped")
	}
	if n := len(sub.ch); n > 7 || n == 0 {
		t.Errorf("%d events of 10 KB queued for it, want the 6 or so within 64 KB", n)
	}
}

// TestMessageEventIsTheView: the live message event is the message as the
// operator API shows it, plus deviceId, size and what was cut.
func TestMessageEventIsTheView(t *testing.T) {
	m := telemetry.Message{ID: 3, DeviceID: "dev1", MessageID: "m3", Body: []byte(`{"t":1}`), AuthMethod: "sas-primary",
		EnqueuedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	got, err := json.Marshal(messageEvent(&m))
	if err != nil {
		t.Fatal(err)
	}
	view, _ := json.Marshal(m.View())
	want := strings.TrimSuffix(string(view), "}") + `,"deviceId":"dev1","size":7}`
	if string(got) != want {
		t.Errorf("event JSON:\n got %s\nwant %s", got, want)
	}
}
