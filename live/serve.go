package live

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxFilterDevices bounds the ?devices= list of a fleet subscription.
const MaxFilterDevices = 1000

// LastEventID reads the id a reconnecting client last saw: the Last-Event-ID
// header EventSource sends, or ?lastEventId= for a fresh EventSource that
// resumes (browsers cannot set the header themselves). 0 means none.
func LastEventID(r *http.Request) (int64, error) {
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("lastEventId")
	}
	if raw == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("last event id %q is not an event id of this hub", raw)
	}
	return id, nil
}

// DeviceFilter parses ?devices=a,b,c: the devices a fleet subscriber wants
// events about (nil: all of them).
func DeviceFilter(r *http.Request) (map[string]bool, error) {
	raw := r.URL.Query().Get("devices")
	if raw == "" {
		return nil, nil
	}
	ids := strings.Split(raw, ",")
	if len(ids) > MaxFilterDevices {
		return nil, fmt.Errorf("devices lists %d devices; at most %d", len(ids), MaxFilterDevices)
	}
	f := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			f[id] = true
		}
	}
	return f, nil
}

// ServeFleet streams the fleet to one client until it goes away, is too
// slow, or the hub closes. filter limits device events to some devices (nil: all).
func (h *Hub) ServeFleet(w http.ResponseWriter, r *http.Request, lastID int64, filter map[string]bool) error {
	return h.serve(w, r, func() *stream { return h.fleet }, lastID, filter)
}

// ServeJobs streams jobs' progress to one client.
func (h *Hub) ServeJobs(w http.ResponseWriter, r *http.Request, lastID int64) error {
	return h.serve(w, r, func() *stream { return h.jobs }, lastID, nil)
}

// ServeDevice streams one device's events to one client.
func (h *Hub) ServeDevice(w http.ResponseWriter, r *http.Request, deviceID string, lastID int64) error {
	return h.serve(w, r, func() *stream { return h.deviceStream(deviceID) }, lastID, nil)
}

// errSlow ends a stream whose client fell behind; the client reconnects.
var errSlow = errors.New("live: subscriber too slow, disconnected")

// serve streams to one client. stream returns the stream to follow; it is
// asked again if the sweeper forgot that stream in the meantime.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, stream func() *stream, lastID int64, filter map[string]bool) error {
	if h.isClosed() {
		http.Error(w, "the hub is shutting down", http.StatusServiceUnavailable)
		return nil
	}
	h.connected.Add(1)
	defer h.connected.Add(-1)
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	// Tell nginx and similar proxies not to buffer the stream.
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	sub := h.newSubscriber(filter)
	// Replay and registration happen under the stream's lock, so no event
	// falls between what is replayed and what is delivered live.
	st := stream()
	st.mu.Lock()
	for st.forgotten {
		st.mu.Unlock()
		st = stream()
		st.mu.Lock()
	}
	var replay []*event
	gap := false
	if lastID > 0 {
		replay, gap = st.since(lastID)
	}
	st.subs[sub] = struct{}{}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.subs, sub)
		st.mu.Unlock()
	}()

	// A stalled client must not hold this goroutine forever: a write
	// deadline, set once per burst of writes, ends it (the subscriber has
	// been dropped from the stream long before).
	write := func(b []byte) error {
		_, err := w.Write(b)
		return err
	}
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(h.opt.WriteTimeout)) }
	flush := rc.Flush

	deadline()
	// retry: how long EventSource waits before reconnecting.
	if err := write([]byte("retry: 2000\n\n")); err != nil {
		return nil
	}
	if gap {
		id := h.nextID.Load()
		if err := write([]byte(fmt.Sprintf("id: %d\nevent: %s\ndata: {}\n\n", id, EventResync))); err != nil {
			return nil
		}
	}
	for _, ev := range replay {
		if !sub.wants(ev) {
			continue
		}
		if err := write(ev.wire); err != nil {
			return nil
		}
	}
	if err := flush(); err != nil {
		return nil
	}

	heartbeat := time.NewTicker(h.opt.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-h.closed:
			return nil
		case <-sub.gone:
			// Dropped for being slow, or the hub closed. Deliver what is
			// already queued; the client resumes after it.
			if h.isClosed() {
				return nil
			}
			deadline()
			for {
				select {
				case ev := <-sub.ch:
					sub.sent(ev)
					if err := write(ev.wire); err != nil {
						return nil
					}
				default:
					_ = flush()
					return errSlow
				}
			}
		case <-heartbeat.C:
			deadline()
			if err := write([]byte(": ping\n\n")); err != nil {
				return nil
			}
		case ev := <-sub.ch:
			sub.sent(ev)
			deadline()
			if err := write(ev.wire); err != nil {
				return nil
			}
			// Write whatever else is queued before flushing once.
			for more := true; more; {
				select {
				case ev := <-sub.ch:
					sub.sent(ev)
					if err := write(ev.wire); err != nil {
						return nil
					}
				default:
					more = false
				}
			}
		}
		if err := flush(); err != nil {
			return nil
		}
	}
}

// IsSlow reports whether err ended a stream because the client fell behind.
func IsSlow(err error) bool { return errors.Is(err, errSlow) }
