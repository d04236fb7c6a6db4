package live

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/r3labs/sse/v2"

	"fieldhub/db"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// testServer serves the hub's fleet stream at /fleet and device streams at
// /devices/{id}, as handlers/live.go does without the authentication.
func testServer(t *testing.T, h *Hub) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/fleet", func(w http.ResponseWriter, r *http.Request) {
		last, err := LastEventID(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f, err := DeviceFilter(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = h.ServeFleet(w, r, last, f)
	})
	mux.HandleFunc("/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		last, err := LastEventID(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = h.ServeDevice(w, r, r.PathValue("id"), last)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

// received is one event as a client read it.
type received struct {
	ID, Type, Data string
}

// client reads a stream with r3labs/sse's event reader, so the tests also
// check the wire format against that library.
type client struct {
	t      *testing.T
	resp   *http.Response
	events chan received
}

func dial(t *testing.T, url string, lastID string) *client {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dial %s: status %d, want 200", url, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	c := &client{t: t, resp: resp, events: make(chan received, 10000)}
	go func() {
		defer close(c.events)
		body := &tailReader{r: resp.Body}
		rd := sse.NewEventStreamReader(body, 1<<20)
		// When the stream ends the reader hands out whatever it still
		// holds as a last event. A stream the hub cut mid-event (the write
		// deadline of a slow client) thus ends in a partial event, which
		// EventSource discards, and so does this client: once the body has
		// ended, an event is dispatched only if another follows it or the
		// body ended right after its blank line.
		var held []byte
		for {
			raw, err := rd.ReadEvent()
			if err != nil {
				if held != nil && body.endedCleanly() {
					c.dispatch(held)
				}
				return
			}
			if held != nil {
				c.dispatch(held)
				held = nil
			}
			if body.err == nil {
				c.dispatch(raw)
			} else {
				held = append([]byte(nil), raw...)
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return c
}

// dispatch hands a complete event to the test, skipping retry: fields and
// heartbeat comments.
func (c *client) dispatch(raw []byte) {
	ev := parseEvent(raw)
	if ev.Type == "" && ev.Data == "" {
		return
	}
	c.events <- ev
}

// tailReader remembers how a stream ended: its last two bytes and the error
// that ended it.
type tailReader struct {
	r    io.Reader
	tail [2]byte
	n    int
	err  error
}

func (tr *tailReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	switch {
	case n >= 2:
		tr.tail = [2]byte{p[n-2], p[n-1]}
	case n == 1:
		tr.tail = [2]byte{tr.tail[1], p[0]}
	}
	tr.n += n
	if err != nil {
		tr.err = err
	}
	return n, err
}

// endedCleanly reports whether the stream ended at EOF right after a blank
// line, that is after a complete event.
func (tr *tailReader) endedCleanly() bool {
	return errors.Is(tr.err, io.EOF) && tr.n >= 2 && tr.tail == [2]byte{'\n', '\n'}
}

func parseEvent(raw []byte) received {
	var ev received
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "id":
			ev.ID = v
		case "event":
			ev.Type = v
		case "data":
			ev.Data = v
		}
	}
	return ev
}

// next returns the next event, failing after a generous deadline.
func (c *client) next() received {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatal("stream ended, want another event")
		}
		return ev
	case <-time.After(10 * time.Second):
		c.t.Fatal("no event within 10 s")
	}
	return received{}
}

// nextOfType skips events of other types (stats, device activity).
func (c *client) nextOfType(typ string) received {
	c.t.Helper()
	for {
		if ev := c.next(); ev.Type == typ {
			return ev
		}
	}
}

// waitSubscribers waits until st has n subscribers, so a test publishes only
// once its clients listen.
func waitSubscribers(t *testing.T, st *stream, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st.mu.Lock()
		got := len(st.subs)
		st.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("stream never had %d subscribers", n)
}

// TestClientDropsEventCutShort: the test client, like EventSource,
// discards an event the stream ended in the middle of, as when the hub's
// write deadline cuts off a slow client. It used to hand it on, and
// TestStalledSubscriberIsDropped failed on a loaded machine with
// "unexpected end of JSON input".
func TestClientDropsEventCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 2000\n\nid: 1\nevent: reading\ndata: {\"n\":1}\n\nid: 2\nevent: reading\ndata: {\"n\":")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection closes mid-event
	}))
	defer srv.Close()
	c := dial(t, srv.URL, "")
	if ev := c.next(); ev.ID != "1" || ev.Data != `{"n":1}` {
		t.Fatalf("first event = %+v, want id 1", ev)
	}
	if ev, ok := <-c.events; ok {
		t.Errorf("got %+v after the stream was cut, want the stream to end", ev)
	}
}

func TestFanOutToEverySubscriber(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	clients := []*client{dial(t, srv.URL+"/devices/dev1", ""), dial(t, srv.URL+"/devices/dev1", ""), dial(t, srv.URL+"/devices/dev1", "")}
	other := dial(t, srv.URL+"/devices/dev2", "")
	waitSubscribers(t, h.deviceStream("dev1"), 3)
	waitSubscribers(t, h.deviceStream("dev2"), 1)

	for i := 0; i < 5; i++ {
		h.publishDevice("dev1", "reading", map[string]int{"n": i})
	}
	h.publishDevice("dev2", "reading", map[string]int{"n": 99})
	for ci, c := range clients {
		prev := int64(0)
		for i := 0; i < 5; i++ {
			ev := c.next()
			if want := fmt.Sprintf(`{"n":%d}`, i); ev.Type != "reading" || ev.Data != want {
				t.Fatalf("client %d event %d = %+v, want reading %s", ci, i, ev, want)
			}
			id, err := strconv.ParseInt(ev.ID, 10, 64)
			if err != nil || id <= prev {
				t.Fatalf("client %d event %d id %q, want an integer above %d", ci, i, ev.ID, prev)
			}
			prev = id
		}
	}
	if ev := other.next(); ev.Data != `{"n":99}` {
		t.Errorf("dev2 subscriber got %+v, want only dev2's event", ev)
	}
}

func TestResumeWithLastEventID(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	c := dial(t, srv.URL+"/devices/dev1", "")
	waitSubscribers(t, h.deviceStream("dev1"), 1)
	for i := 0; i < 3; i++ {
		h.publishDevice("dev1", "reading", map[string]int{"n": i})
	}
	var last received
	for i := 0; i < 3; i++ {
		last = c.next()
	}
	c.resp.Body.Close()
	waitSubscribers(t, h.deviceStream("dev1"), 0)

	// Published while the client was away.
	for i := 3; i < 6; i++ {
		h.publishDevice("dev1", "reading", map[string]int{"n": i})
	}
	again := dial(t, srv.URL+"/devices/dev1", last.ID)
	for i := 3; i < 6; i++ {
		ev := again.next()
		if want := fmt.Sprintf(`{"n":%d}`, i); ev.Data != want {
			t.Fatalf("resumed event = %+v, want data %s", ev, want)
		}
	}

	t.Run("query parameter", func(t *testing.T) {
		c := dial(t, srv.URL+"/devices/dev1?lastEventId="+last.ID, "")
		if ev := c.next(); ev.Data != `{"n":3}` {
			t.Errorf("first event = %+v, want the one after %s", ev, last.ID)
		}
	})
	t.Run("id older than the ring", func(t *testing.T) {
		c := dial(t, srv.URL+"/devices/dev1", "1")
		if ev := c.next(); ev.Type != EventResync {
			t.Errorf("first event = %+v, want %s", ev, EventResync)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/devices/dev1?lastEventId=abc")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
}

func TestReplayRingIsBounded(t *testing.T) {
	h := New(Options{DeviceReplay: 4})
	defer h.Close()
	st := h.deviceStream("dev1")
	for i := 0; i < 10; i++ {
		h.publishDevice("dev1", "reading", i)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.ring) != 4 {
		t.Fatalf("ring holds %d events, want 4", len(st.ring))
	}
	evs, gap := st.since(st.evicted - 1)
	if !gap || len(evs) != 4 {
		t.Errorf("since(old id) = %d events, gap %v; want 4 and a gap", len(evs), gap)
	}
	evs, gap = st.since(st.evicted)
	if gap || len(evs) != 4 || evs[0].id >= evs[3].id {
		t.Errorf("since(evicted) = %d events, gap %v; want the 4 kept in order, no gap", len(evs), gap)
	}
}

// TestStalledSubscriberIsDropped connects a client that never reads. The
// publisher must keep going, the healthy client must get every event, and the
// stalled one must be disconnected.
func TestStalledSubscriberIsDropped(t *testing.T) {
	h := New(Options{SubscriberBuffer: 16, DeviceReplay: 8192, DeviceReplayBytes: 1 << 30, WriteTimeout: 2 * time.Second})
	srv := testServer(t, h)

	// A raw connection with a tiny receive buffer that is never read.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(1024)
	fmt.Fprintf(conn, "GET /devices/dev1 HTTP/1.1\r\nHost: x\r\n\r\n")
	st := h.deviceStream("dev1")
	waitSubscribers(t, st, 1)
	var stalled *subscriber
	st.mu.Lock()
	for sub := range st.subs {
		stalled = sub
	}
	st.mu.Unlock()
	healthy := dial(t, srv.URL+"/devices/dev1", "")
	waitSubscribers(t, st, 2)

	// Enough bytes to fill the kernel's socket buffers on both ends.
	const n = 3000
	payload := strings.Repeat("x", 10_000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			h.publishDevice("dev1", "reading", map[string]any{"n": i, "pad": payload})
		}
	}()
	published := make(chan struct{})
	go func() { wg.Wait(); close(published) }()
	select {
	case <-published:
	case <-time.After(30 * time.Second):
		t.Fatal("publisher blocked by a stalled subscriber")
	}

	// The healthy client may itself be dropped if it falls behind on this
	// busy machine; it then resumes with Last-Event-ID, like a browser.
	lastID := ""
	for i := 0; i < n; {
		ev, ok := <-healthy.events
		if !ok {
			healthy = dial(t, srv.URL+"/devices/dev1", lastID)
			continue
		}
		if ev.Type != "reading" {
			t.Fatalf("healthy client got %+v", ev)
		}
		var got struct{ N int }
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
			t.Fatal(err)
		}
		if got.N != i {
			t.Fatalf("healthy client got event %d, want %d", got.N, i)
		}
		lastID = ev.ID
		i++
	}
	select {
	case <-stalled.gone:
	default:
		t.Fatal("the stalled subscriber was not dropped")
	}

	// The stalled client's handler has ended: only the healthy one is left.
	deadline := time.Now().Add(30 * time.Second)
	for h.Connected() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still served, want 1", h.Connected())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFleetFilter(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	c := dial(t, srv.URL+"/fleet?devices=a,b", "")
	waitSubscribers(t, h.fleet, 1)
	h.publishFleet("c", EventDevice, DeviceStatus{ID: "c"})
	h.publishFleet("a", EventDevice, DeviceStatus{ID: "a"})
	h.publishFleet("", EventStats, Stats{MessagesPerMinute: 7})
	if ev := c.next(); ev.Data != `{"id":"a"}` {
		t.Errorf("first event = %+v, want device a (c filtered out)", ev)
	}
	if ev := c.next(); ev.Type != EventStats {
		t.Errorf("second event = %+v, want stats (for everyone)", ev)
	}
}

// TestPublishAllReachesEveryStream: a storage fault reaches the fleet
// stream, a filtered fleet subscriber and every device stream.
func TestPublishAllReachesEveryStream(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	fleet, filtered := dial(t, srv.URL+"/fleet", ""), dial(t, srv.URL+"/fleet?devices=a", "")
	dev1, dev2 := dial(t, srv.URL+"/devices/dev1", ""), dial(t, srv.URL+"/devices/dev2", "")
	waitSubscribers(t, h.fleet, 2)
	waitSubscribers(t, h.deviceStream("dev1"), 1)
	waitSubscribers(t, h.deviceStream("dev2"), 1)
	h.publishAll(EventStorage, storage.Status{Reason: "storing device messages fails (disk full)"})
	for name, c := range map[string]*client{"fleet": fleet, "filtered fleet": filtered, "dev1": dev1, "dev2": dev2} {
		if ev := c.nextOfType(EventStorage); ev.Data != `{"ok":false,"reason":"storing device messages fails (disk full)"}` {
			t.Errorf("%s got %+v, want the storage event", name, ev)
		}
	}
}

func TestCloseEndsStreams(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	c := dial(t, srv.URL+"/fleet", "")
	waitSubscribers(t, h.fleet, 1)
	h.Close()
	select {
	case _, ok := <-c.events:
		for ok {
			_, ok = <-c.events
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open 10 s after Close")
	}
	h.publishFleet("", EventStats, Stats{}) // no panic after Close
	resp, err := http.Get(srv.URL + "/fleet")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("subscribe after Close: status %d, want 503", resp.StatusCode)
	}
}

func TestMessagesPerMinute(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := New(Options{Now: func() time.Time { return now }})
	defer h.Close()
	h.mu.Lock()
	h.countMessages(now.Add(-90*time.Second), 100) // out of the window
	h.countMessages(now.Add(-30*time.Second), 5)
	h.countMessages(now, 2)
	h.mu.Unlock()
	if got := h.MessagesPerMinute(); got != 7 {
		t.Errorf("MessagesPerMinute = %d, want 7", got)
	}
}

func TestLastEventIDAndFilterParsing(t *testing.T) {
	tests := []struct {
		url, header string
		want        int64
		wantErr     bool
	}{
		{"/x", "", 0, false},
		{"/x", "42", 42, false},
		{"/x?lastEventId=7", "", 7, false},
		{"/x?lastEventId=7", "9", 9, false},
		{"/x", "-1", 0, true},
		{"/x", "1e3", 0, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.url, nil)
		if tt.header != "" {
			r.Header.Set("Last-Event-ID", tt.header)
		}
		got, err := LastEventID(r)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("LastEventID(%s, %q) = %d, %v; want %d, error %v", tt.url, tt.header, got, err, tt.want, tt.wantErr)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/x?devices="+strings.Repeat("a,", MaxFilterDevices+1), nil)
	if _, err := DeviceFilter(r); err == nil {
		t.Error("DeviceFilter accepted too many devices")
	}
}

func TestActivityIsCoalesced(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := New(Options{Now: clock, ActivityInterval: time.Hour}) // the sweeper stays out of the way
	defer h.Close()
	st := h.fleet
	sub := &subscriber{ch: make(chan *event, 100), gone: make(chan struct{}), maxBytes: 1 << 40}
	st.mu.Lock()
	st.subs[sub] = struct{}{}
	st.mu.Unlock()

	for i := 0; i < 10; i++ {
		h.recordActivity("dev1", now, 1)
		h.flushActivity(now)
	}
	if got := len(sub.ch); got != 1 {
		t.Fatalf("10 messages in the same instant gave %d fleet events, want 1", got)
	}
	later := now.Add(2 * time.Hour)
	h.flushActivity(later)
	if got := len(sub.ch); got != 2 {
		t.Errorf("after the interval: %d events, want 2 (the pending activity)", got)
	}
	offline := later.Add(db.OnlineWindow)
	h.markOffline(offline)
	h.flushActivity(offline)
	var last DeviceStatus
	for len(sub.ch) > 0 {
		ev := <-sub.ch
		data := ev.wire[strings.Index(string(ev.wire), "data: ")+6:]
		_ = json.Unmarshal(data[:len(data)-2], &last)
	}
	if last.Status != "offline" {
		t.Errorf("status after the online window = %q, want offline", last.Status)
	}
}

func TestCommittedPublishesReadingsAndMessages(t *testing.T) {
	h := New(Options{})
	srv := testServer(t, h)
	dev := dial(t, srv.URL+"/devices/dev1", "")
	fleet := dial(t, srv.URL+"/fleet", "")
	waitSubscribers(t, h.deviceStream("dev1"), 1)
	waitSubscribers(t, h.fleet, 1)

	at := time.UnixMilli(1_700_000_000_123)
	long := strings.Repeat("é", MaxLiveBody) // 2 bytes a rune: cut mid-rune
	h.Committed([]telemetry.Record{
		{Message: telemetry.Message{ID: 1, DeviceID: "dev1", EnqueuedAt: at, MessageID: "m1", Body: []byte(`{"temp":21.5}`), Properties: map[string]string{"k": "v"}},
			Time: at, Readings: []telemetry.Reading{{Metric: "temp", Value: 21.5}, {Metric: "hum", Value: 40}}},
		{Message: telemetry.Message{ID: 2, DeviceID: "dev2", EnqueuedAt: at, Body: []byte("x")}},
		{Message: telemetry.Message{ID: 3, DeviceID: "dev1", EnqueuedAt: at, Body: []byte(long)}},
		{Message: telemetry.Message{ID: 4, DeviceID: "dev1", EnqueuedAt: at, Body: []byte{0xff, 0xfe}}},
	})

	var msg MessageEvent
	if err := json.Unmarshal([]byte(dev.nextOfType(EventMessage).Data), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID != 1 || msg.MessageID != "m1" || msg.Body != `{"temp":21.5}` || msg.Properties["k"] != "v" || !msg.EnqueuedTime.Equal(at) {
		t.Errorf("message event = %+v", msg)
	}
	var rd ReadingEvent
	if err := json.Unmarshal([]byte(dev.nextOfType(EventReading).Data), &rd); err != nil {
		t.Fatal(err)
	}
	if rd.T != at.UnixMilli() || rd.V["temp"] != 21.5 || rd.V["hum"] != 40 {
		t.Errorf("reading event = %+v, want both metrics at %d", rd, at.UnixMilli())
	}
	msg = MessageEvent{}
	if err := json.Unmarshal([]byte(dev.nextOfType(EventMessage).Data), &msg); err != nil {
		t.Fatal(err)
	}
	if !msg.Truncated || msg.Size != len(long) || len(msg.Body) > MaxLiveBody || !utf8.ValidString(msg.Body) {
		t.Errorf("long message: truncated %v, size %d, body %d bytes (valid UTF-8 %v)", msg.Truncated, msg.Size, len(msg.Body), utf8.ValidString(msg.Body))
	}
	msg = MessageEvent{}
	if err := json.Unmarshal([]byte(dev.nextOfType(EventMessage).Data), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Body != "//4=" || !msg.BodyBase64 {
		t.Errorf("binary message: body %q, base64 %v; want base64", msg.Body, msg.BodyBase64)
	}

	// The fleet hears that both devices are active, once each.
	seen := map[string]DeviceStatus{}
	for len(seen) < 2 {
		var ds DeviceStatus
		if err := json.Unmarshal([]byte(fleet.nextOfType(EventDevice).Data), &ds); err != nil {
			t.Fatal(err)
		}
		if _, dup := seen[ds.ID]; dup {
			t.Fatalf("second activity event for %s within the coalescing interval", ds.ID)
		}
		seen[ds.ID] = ds
	}
	if s := seen["dev1"]; s.LastActivity == nil || !s.LastActivity.Equal(at) {
		t.Errorf("dev1 activity = %+v, want last activity %v", s, at)
	}
	if got := h.MessagesPerMinute(); got != 4 {
		t.Errorf("MessagesPerMinute = %d, want 4", got)
	}
}

func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "42", "-1", "1e3", "99999999999999999999", " 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set("Last-Event-ID", raw)
		id, err := LastEventID(r)
		if err == nil && id < 0 {
			t.Errorf("LastEventID(%q) = %d without an error", raw, id)
		}
		if err != nil && id != 0 {
			t.Errorf("LastEventID(%q) = %d with error %v", raw, id, err)
		}
	})
}

func FuzzDeviceFilter(f *testing.F) {
	for _, s := range []string{"", ",", "a,b", "a,,b", " a , b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		q := r.URL.Query()
		q.Set("devices", raw)
		r.URL.RawQuery = q.Encode()
		got, err := DeviceFilter(r)
		if err != nil {
			return
		}
		if raw != "" && got == nil {
			t.Errorf("DeviceFilter(%q) = nil: a non-empty list must filter", raw)
		}
		for id := range got {
			if id == "" || strings.TrimSpace(id) != id {
				t.Errorf("DeviceFilter(%q) holds %q", raw, id)
			}
		}
	})
}

func TestRememberedDeviceGoesOffline(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := New(Options{Now: func() time.Time { return now }, ActivityInterval: time.Hour})
	defer h.Close()
	sub := &subscriber{ch: make(chan *event, 10), gone: make(chan struct{}), maxBytes: 1 << 40}
	h.fleet.mu.Lock()
	h.fleet.subs[sub] = struct{}{}
	h.fleet.mu.Unlock()
	h.Remember("dev1", now.Add(-time.Minute))
	h.markOffline(now)
	h.flushActivity(now)
	if n := len(sub.ch); n != 0 {
		t.Fatalf("%d events while dev1 is still within its online window", n)
	}
	later := now.Add(db.OnlineWindow)
	h.markOffline(later)
	h.flushActivity(later)
	if n := len(sub.ch); n != 1 {
		t.Fatalf("%d events after the online window, want 1 (offline)", n)
	}
	if ev := <-sub.ch; !strings.Contains(string(ev.wire), `"status":"offline"`) {
		t.Errorf("event %q, want dev1 offline", ev.wire)
	}
}

func TestSetConnectedAnnouncesOnlineAndOffline(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := New(Options{Now: func() time.Time { return now }, ActivityInterval: time.Hour})
	defer h.Close()
	sub := &subscriber{ch: make(chan *event, 10), gone: make(chan struct{}), maxBytes: 1 << 40}
	h.fleet.mu.Lock()
	h.fleet.subs[sub] = struct{}{}
	h.fleet.mu.Unlock()
	h.SetConnected("dev1", true)
	if n := len(sub.ch); n != 1 {
		t.Fatalf("%d events after connect, want 1", n)
	}
	if ev := <-sub.ch; !strings.Contains(string(ev.wire), `"status":"online"`) {
		t.Errorf("event %q, want dev1 online", ev.wire)
	}
	// A device that hangs up is offline at once, even within the online window.
	now = now.Add(time.Second)
	h.SetConnected("dev1", false)
	if n := len(sub.ch); n != 1 {
		t.Fatalf("%d events after disconnect, want 1", n)
	}
	if ev := <-sub.ch; !strings.Contains(string(ev.wire), `"status":"offline"`) {
		t.Errorf("event %q, want dev1 offline", ev.wire)
	}
}
