// Package live fans committed telemetry and device events out to browsers
// and API clients as server-sent events: one fleet stream and one stream per
// device. Every subscriber has its own bounded buffer; a subscriber that
// falls behind is disconnected (and resumes with Last-Event-ID from a bounded
// replay ring), so publishing never waits for a client.
package live

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"

	"fieldhub/db"
)

// Options tune a Hub. Zero values take the defaults.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
	// SubscriberBuffer is how many events may wait for one client before it
	// is dropped (default 512).
	SubscriberBuffer int
	// SubscriberBytes bounds the bytes of the events waiting for one client
	// (default 4 MiB): a few large events drop a slow client as surely as
	// many small ones.
	SubscriberBytes int
	// FleetReplay and DeviceReplay size the replay rings (defaults 2048, 256
	// events); FleetReplayBytes and DeviceReplayBytes bound their bytes
	// (defaults 2 MiB, 1 MiB), so that large events (readings of 1,000
	// metrics, messages with big properties) cannot fill memory.
	FleetReplay       int
	DeviceReplay      int
	FleetReplayBytes  int
	DeviceReplayBytes int
	// Heartbeat is the interval of keep-alive comments (default 15 s).
	Heartbeat time.Duration
	// ActivityInterval is the least time between two activity events for one
	// device on the fleet stream (default 1 s).
	ActivityInterval time.Duration
	// StatsInterval is how often the fleet stream gets a stats event (default 5 s).
	StatsInterval time.Duration
	// Counts, when set, adds device counts to the stats events.
	Counts func(ctx context.Context) (db.FleetCounts, error)
	// WriteTimeout bounds one write to a client (default 10 s).
	WriteTimeout time.Duration
	// Relay, when set, carries every event published here to the other
	// instances of a cluster (peers.go).
	Relay Relay
}

// Hub owns the streams. Create it with New and stop it with Close.
type Hub struct {
	opt    Options
	log    *slog.Logger
	nextID atomic.Int64
	// connected counts clients being served.
	connected atomic.Int64

	fleet *stream
	jobs  *stream // jobs' progress (EventJob)

	mu       sync.Mutex
	devices  map[string]*stream
	activity map[string]*deviceActivity
	pending  map[string]struct{}
	perSec   [60]int64 // messages per second, indexed by unix second mod 60
	perSecAt [60]int64 // the unix second each slot counts

	closeOnce sync.Once
	closed    chan struct{}
	done      chan struct{}
}

// deviceActivity is what the fleet stream last said about a device.
type deviceActivity struct {
	last      time.Time // newest message
	connected bool      // held open by a protocol connection (MQTT) here
	peer      string    // the other instance holding its connection, "" for none
	hungUp    time.Time // when its last connection closed: offline at once (db.Online)
	status    string    // status last published
	sentAt    time.Time // when the last device event went out
}

// New starts a hub and its background sweeper.
func New(opt Options) *Hub {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.SubscriberBuffer <= 0 {
		opt.SubscriberBuffer = 512
	}
	if opt.FleetReplay <= 0 {
		opt.FleetReplay = 2048
	}
	if opt.DeviceReplay <= 0 {
		opt.DeviceReplay = 256
	}
	if opt.SubscriberBytes <= 0 {
		opt.SubscriberBytes = 4 << 20
	}
	if opt.FleetReplayBytes <= 0 {
		opt.FleetReplayBytes = 2 << 20
	}
	if opt.DeviceReplayBytes <= 0 {
		opt.DeviceReplayBytes = 1 << 20
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = 15 * time.Second
	}
	if opt.ActivityInterval <= 0 {
		opt.ActivityInterval = time.Second
	}
	if opt.StatsInterval <= 0 {
		opt.StatsInterval = 5 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 10 * time.Second
	}
	h := &Hub{
		opt: opt, log: opt.Logger,
		devices:  make(map[string]*stream),
		activity: make(map[string]*deviceActivity),
		pending:  make(map[string]struct{}),
		closed:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	// Ids continue from the clock so they keep increasing across restarts:
	// a browser that reconnects to a restarted hub sends an id older than
	// every new one and is told to resynchronise instead of missing events.
	h.nextID.Store(opt.Now().UnixMicro())
	h.fleet = newStream(opt.FleetReplay, opt.FleetReplayBytes, h.nextID.Load())
	h.jobs = newStream(opt.DeviceReplay, opt.DeviceReplayBytes, h.nextID.Load())
	go h.sweep()
	return h
}

// Close disconnects every client and stops the sweeper. Publishing after
// Close does nothing. It is safe to call more than once.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		close(h.closed)
		<-h.done
	})
}

func (h *Hub) isClosed() bool {
	select {
	case <-h.closed:
		return true
	default:
		return false
	}
}

// publish encodes one event and pushes it into st.
func (h *Hub) publish(st *stream, device, typ string, data any) {
	payload, err := json.Marshal(data)
	if err != nil {
		h.log.Error("encode live event", "type", typ, "err", err)
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// The id is taken under the stream's lock so the ring is in id order.
	id := h.nextID.Add(1)
	ev := &event{id: id, device: device}
	ev.wire = encode(&sse.Event{ID: []byte(strconv.FormatInt(id, 10)), Event: []byte(typ), Data: payload})
	st.push(ev)
}

// publishDevice sends an event to the stream of one device, if anyone
// follows it. Other packages publish through the typed methods of the
// contract (events.go).
func (h *Hub) publishDevice(deviceID, eventType string, data any) {
	if h.isClosed() {
		return
	}
	h.mu.Lock()
	st := h.devices[deviceID]
	h.mu.Unlock()
	if st == nil {
		return
	}
	h.publish(st, deviceID, eventType, data)
}

// publishFleet sends an event to the fleet stream. A non-empty deviceID lets
// clients that follow only some devices skip it.
func (h *Hub) publishFleet(deviceID, eventType string, data any) {
	if h.isClosed() {
		return
	}
	h.publish(h.fleet, deviceID, eventType, data)
}

// publishAll sends an event to the fleet stream and to every device stream:
// news for every open page, like a storage fault. It is meant for rare
// events: each goes into every stream's replay ring.
func (h *Hub) publishAll(eventType string, data any) {
	if h.isClosed() {
		return
	}
	h.publish(h.fleet, "", eventType, data)
	h.mu.Lock()
	ids := make([]string, 0, len(h.devices))
	streams := make([]*stream, 0, len(h.devices))
	for id, st := range h.devices {
		ids, streams = append(ids, id), append(streams, st)
	}
	h.mu.Unlock()
	for i, st := range streams {
		h.publish(st, ids[i], eventType, data)
	}
}

// SetStatus announces a status change that the hub cannot see in telemetry:
// a device disabled or enabled by an operator (db.StatusDisabled …), or
// deleted (StatusDeleted).
func (h *Hub) SetStatus(deviceID, status string) {
	h.setStatus(deviceID, status)
	h.relay(PeerEvent{Type: PeerStatus, Device: deviceID, Status: status})
}

func (h *Hub) setStatus(deviceID, status string) {
	h.mu.Lock()
	a := h.activityOf(deviceID)
	a.status = status
	a.sentAt = h.opt.Now()
	ds := DeviceStatus{ID: deviceID, Status: status}
	if !a.last.IsZero() {
		t := a.last
		ds.LastActivity = &t
	}
	if status == StatusDeleted {
		delete(h.activity, deviceID)
		delete(h.pending, deviceID)
	}
	h.mu.Unlock()
	h.publishFleet(deviceID, EventDevice, ds)
	h.publishDevice(deviceID, EventDevice, ds)
}

// Remember tells the hub when a device was last heard from before the hub
// started, so that it announces the device going offline when its online
// window passes. serve calls it for the devices online at start.
func (h *Hub) Remember(deviceID string, lastActivity time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.activityOf(deviceID)
	if lastActivity.After(a.last) {
		a.last = lastActivity
	}
	a.status = h.statusOf(a, h.opt.Now())
}

// SetConnected records that a protocol connection (MQTT) opened or closed:
// a connected device is online even when it sends nothing.
func (h *Hub) SetConnected(deviceID string, connected bool) {
	h.setConnected(deviceID, "", connected)
	h.relay(PeerEvent{Type: PeerConnected, Device: deviceID, Connected: connected})
}

// setConnected records a connection opening or closing here (node "") or
// on another instance. A device has one connection in the cluster, so
// one other instance is remembered; the close of a connection on another
// instance than the one last heard of (a device that moved) changes nothing.
func (h *Hub) setConnected(deviceID, node string, connected bool) {
	h.mu.Lock()
	a := h.activityOf(deviceID)
	now := h.opt.Now()
	switch {
	case node == "":
		a.connected = connected
	case connected:
		a.peer = node
	case a.peer == node || a.peer == anyPeer:
		a.peer = ""
	default:
		h.mu.Unlock()
		return
	}
	if connected {
		a.last = now
	} else {
		a.hungUp = now
	}
	ds, ok := h.due(deviceID, a, now)
	if ok {
		delete(h.pending, deviceID)
	} else {
		h.pending[deviceID] = struct{}{}
	}
	h.mu.Unlock()
	if ok {
		h.announce([]DeviceStatus{ds})
	}
}

// recordActivity notes n messages from a device, the newest at at.
func (h *Hub) recordActivity(deviceID string, at time.Time, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.activityOf(deviceID)
	if at.After(a.last) {
		a.last = at
	}
	h.pending[deviceID] = struct{}{}
	h.countMessages(h.opt.Now(), n)
}

// activityOf returns the device's activity record. The caller holds h.mu.
func (h *Hub) activityOf(deviceID string) *deviceActivity {
	a := h.activity[deviceID]
	if a == nil {
		a = &deviceActivity{}
		h.activity[deviceID] = a
	}
	return a
}

// countMessages adds n messages received at now to the per-minute window.
// The caller holds h.mu.
func (h *Hub) countMessages(now time.Time, n int) {
	sec := now.Unix()
	i := sec % 60
	if h.perSecAt[i] != sec {
		h.perSecAt[i], h.perSec[i] = sec, 0
	}
	h.perSec[i] += int64(n)
}

// MessagesPerMinute is the number of messages in the last 60 seconds.
func (h *Hub) MessagesPerMinute() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.messagesPerMinute(h.opt.Now())
}

func (h *Hub) messagesPerMinute(now time.Time) int64 {
	sec := now.Unix()
	var n int64
	for i := range h.perSec {
		if at := h.perSecAt[i]; at > sec-60 && at <= sec {
			n += h.perSec[i]
		}
	}
	return n
}

// statusOf is a device's status from what the hub has seen, by the one
// online rule (db.Online).
func (h *Hub) statusOf(a *deviceActivity, now time.Time) string {
	if a.status == db.StatusDisabled {
		return db.StatusDisabled
	}
	if db.Online(a.connected || a.peer != "", a.last, a.hungUp, now) {
		return db.StatusOnline
	}
	return db.StatusOffline
}

// due reports whether a device event should go out now: its status changed,
// or the last one is at least ActivityInterval old. If so it marks the event
// as sent and returns it. The caller holds h.mu.
func (h *Hub) due(id string, a *deviceActivity, now time.Time) (DeviceStatus, bool) {
	status := h.statusOf(a, now)
	if status == a.status && now.Sub(a.sentAt) < h.opt.ActivityInterval {
		return DeviceStatus{}, false
	}
	a.status, a.sentAt = status, now
	ds := DeviceStatus{ID: id, Status: status}
	if !a.last.IsZero() {
		t := a.last
		ds.LastActivity = &t
	}
	return ds, true
}

// flushActivity publishes the pending device events that are due: status
// changes at once, mere activity at most once per ActivityInterval.
func (h *Hub) flushActivity(now time.Time) {
	var out []DeviceStatus
	h.mu.Lock()
	for id := range h.pending {
		a := h.activity[id]
		if a == nil {
			delete(h.pending, id)
			continue
		}
		if ds, ok := h.due(id, a, now); ok {
			delete(h.pending, id)
			out = append(out, ds)
		}
	}
	h.mu.Unlock()
	h.announce(out)
}

// announce publishes device events on the fleet stream and each device's.
func (h *Hub) announce(out []DeviceStatus) {
	for _, ds := range out {
		h.publishFleet(ds.ID, EventDevice, ds)
		h.publishDevice(ds.ID, EventDevice, ds)
	}
}

// markOffline queues devices whose online window has passed, so the fleet
// hears that they went offline.
func (h *Hub) markOffline(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, a := range h.activity {
		if a.status == db.StatusOnline && h.statusOf(a, now) != db.StatusOnline {
			h.pending[id] = struct{}{}
		}
	}
}

// sweep runs until Close: flushes coalesced activity, sends stats, notices
// devices going offline and forgets device streams nobody follows.
func (h *Hub) sweep() {
	defer close(h.done)
	tick := time.NewTicker(h.opt.ActivityInterval / 4)
	defer tick.Stop()
	var lastStats, lastOffline time.Time
	for {
		select {
		case <-h.closed:
			h.disconnectAll()
			return
		case <-tick.C:
		}
		now := h.opt.Now()
		if now.Sub(lastOffline) >= 5*time.Second {
			lastOffline = now
			h.markOffline(now)
			h.forgetIdleStreams()
		}
		h.flushActivity(now)
		if now.Sub(lastStats) >= h.opt.StatsInterval {
			lastStats = now
			h.publishStats(now)
		}
	}
}

func (h *Hub) publishStats(now time.Time) {
	h.fleet.mu.Lock()
	listeners := len(h.fleet.subs)
	h.fleet.mu.Unlock()
	if listeners == 0 {
		return
	}
	h.mu.Lock()
	st := Stats{MessagesPerMinute: h.messagesPerMinute(now)}
	h.mu.Unlock()
	if h.opt.Counts != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := h.opt.Counts(ctx)
		cancel()
		if err != nil {
			h.log.Warn("count devices for the live fleet stats", "err", err)
		} else {
			total := c.Online + c.Offline + c.Disabled
			st.Total, st.Online, st.Offline, st.Disabled = &total, &c.Online, &c.Offline, &c.Disabled
		}
	}
	h.publishFleet("", EventStats, st)
}

// forgetIdleStreams drops device streams that had no subscriber for a while,
// so memory follows the devices people look at, not the fleet size.
func (h *Hub) forgetIdleStreams() {
	const idleSweeps = 60 // × 5 s: five minutes of replay for a reconnecting page
	var forgotten []string
	defer func() {
		for _, id := range forgotten {
			h.watch(id, false)
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, st := range h.devices {
		st.mu.Lock()
		if len(st.subs) > 0 {
			st.idleTicks = 0
		} else {
			st.idleTicks++
		}
		idle := st.idleTicks > idleSweeps
		if idle {
			st.forgotten = true
			delete(h.devices, id)
			forgotten = append(forgotten, id)
		}
		st.mu.Unlock()
	}
}

func (h *Hub) disconnectAll() {
	h.mu.Lock()
	streams := []*stream{h.fleet}
	for _, st := range h.devices {
		streams = append(streams, st)
	}
	h.mu.Unlock()
	for _, st := range streams {
		st.mu.Lock()
		for sub := range st.subs {
			delete(st.subs, sub)
			close(sub.gone)
		}
		st.mu.Unlock()
	}
}

// deviceStream returns the stream of a device, creating it.
func (h *Hub) deviceStream(deviceID string) *stream {
	h.mu.Lock()
	st := h.devices[deviceID]
	created := st == nil
	if created {
		st = newStream(h.opt.DeviceReplay, h.opt.DeviceReplayBytes, h.nextID.Load())
		h.devices[deviceID] = st
	}
	h.mu.Unlock()
	if created {
		h.watch(deviceID, true)
	}
	return st
}

// newSubscriber makes a subscriber with the hub's buffer bounds.
func (h *Hub) newSubscriber(filter map[string]bool) *subscriber {
	return &subscriber{ch: make(chan *event, h.opt.SubscriberBuffer), gone: make(chan struct{}), filter: filter,
		maxBytes: int64(h.opt.SubscriberBytes)}
}

// Connected is the number of clients being served.
func (h *Hub) Connected() int64 { return h.connected.Load() }

// Dropped is how many subscribers were disconnected for being too slow.
func (h *Hub) Dropped() int64 {
	h.mu.Lock()
	streams := []*stream{h.fleet}
	for _, st := range h.devices {
		streams = append(streams, st)
	}
	h.mu.Unlock()
	var n int64
	for _, st := range streams {
		st.mu.Lock()
		n += st.dropped
		st.mu.Unlock()
	}
	return n
}
