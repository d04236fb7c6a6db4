package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/live"
	"fieldhub/storage"
)

// Audit actions of the device log.
const (
	ActionConnected    = "device.connected"
	ActionDisconnected = "device.disconnected"
)

// presenceEvent is a connection opening or closing, recorded in order by
// runPresence so that connecting never waits for the database.
type presenceEvent struct {
	deviceID   string
	connected  bool
	remote     string
	authMethod string
	reason     string
	at         time.Time
}

// announce queues a presence event. It blocks when the queue is full (a
// burst of thousands of connections), which slows connecting, not the
// connected devices.
func (b *Broker) announce(ev presenceEvent) {
	select {
	case b.presence <- ev:
	case <-b.ctx.Done():
	}
}

// runPresence records presence events: the device's online flag and last
// activity, the device log, and live events. The online flag written is the
// device's state when the event is handled, not the event's, so a takeover
// whose disconnect is recorded after the new connect leaves it online.
func (b *Broker) runPresence() {
	defer b.wg.Done()
	log := newPresenceLog(presenceLogInterval)
	tick := time.NewTicker(presenceLogInterval / 4)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-b.presence:
			if !ok {
				// Closing: the device log ends in each device's last state.
				b.writeDeviceLog(log.flush())
				return
			}
			b.recordPresence(ev, log)
		case <-tick.C:
			b.writeDeviceLog(log.due(b.cfg.Now()))
		}
	}
}

func (b *Broker) recordPresence(ev presenceEvent, log *presenceLog) {
	// Not b.ctx: events queued during shutdown are still recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	online := b.Connected(ev.deviceID)
	previous, err := b.cfg.Store.SetDeviceConnection(ctx, ev.deviceID, b.cfg.Node, online)
	if err != nil {
		b.log.Log(ctx, b.writeErrorLevel(), "record device presence", "device", ev.deviceID, "err", err)
	}
	if !online && err == nil {
		// The close stored a disconnect time: the device's next message
		// (over HTTPS, say) must be stored as later activity at once.
		if err := b.cfg.Ingest.HungUp(ctx, ev.deviceID); err != nil {
			b.log.Log(ctx, b.writeErrorLevel(), "record device presence", "device", ev.deviceID, "err", err)
		}
	}
	if online && previous != "" && previous != b.cfg.Node && b.cfg.Cluster != nil {
		// The device left a session open on another instance: its
		// connection there is stale (half-open) or a second device with
		// the same identity; either way the newest connection wins.
		b.log.Info("device moved here; taking over its session on another instance", "device", ev.deviceID, "node", previous)
		b.cfg.Cluster.TakeOver(previous, ev.deviceID)
	}
	entry := db.AuditEntry{At: ev.at, Actor: "device:" + ev.deviceID, Target: ev.deviceID}
	if ev.connected {
		entry.Action = ActionConnected
		entry.Detail = fmt.Sprintf("MQTT from %s (%s)", ev.remote, ev.authMethod)
	} else {
		entry.Action = ActionDisconnected
		entry.Detail = ev.reason
	}
	b.writeDeviceLog(log.add(entry, ev.connected))
	if p := b.cfg.Presence; p != nil {
		p.SetConnected(ev.deviceID, online)
		// The close of a connection that another instance has taken over
		// (the device moved there) is not the device going away: device
		// pages keep showing the newer connection.
		if moved := !ev.connected && !online && err == nil && previous != "" && previous != b.cfg.Node; !moved {
			p.PublishConnection(ev.deviceID, live.ConnectionEvent{
				Connected: ev.connected, Protocol: "mqtt", Remote: ev.remote, Reason: ev.reason, At: ev.at, Node: b.clusterNode(),
			})
		}
	}
}

// writeDeviceLog records device log entries in the audit log.
func (b *Broker) writeDeviceLog(entries []db.AuditEntry) {
	if len(entries) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range entries {
		if err := b.cfg.Store.RecordAudit(ctx, e); err != nil {
			b.log.Log(ctx, b.writeErrorLevel(), "record device presence", "device", e.Target, "err", err)
		}
	}
}

// writeErrorLevel is the level of a failed write's log line: during a
// storage fault, which storage.Health has logged once, devices reconnect over
// and over, and each failed write is not worth a line of its own.
func (b *Broker) writeErrorLevel() slog.Level {
	if !b.cfg.Health.Status().OK {
		return slog.LevelDebug
	}
	return slog.LevelError
}

// presenceLogInterval bounds what a device's connections write to the audit
// log: within it at most one device.connected and one device.disconnected
// entry per device. A connect/disconnect loop wrote 2,530 rows in 15 s.
const presenceLogInterval = time.Minute

// presenceLog decides which connects and disconnects reach the audit log.
// The first of each kind in an interval is written; later ones are counted,
// and the newest of them is written when the interval ends, so the log
// always ends in the device's real state. Each written entry's detail
// carries the counts of the events left out before it. Only runPresence
// uses it.
type presenceLog struct {
	every   time.Duration
	devices map[string]*devicePresence
}

// devicePresence is one device's interval. Index 0 of the arrays counts
// disconnects, 1 connects.
type devicePresence struct {
	start    time.Time
	written  [2]bool
	skipped  [2]int
	newest   db.AuditEntry // the newest event not written; Action "" for none
	newestOf int
}

func newPresenceLog(every time.Duration) *presenceLog {
	return &presenceLog{every: every, devices: map[string]*devicePresence{}}
}

func presenceKind(connected bool) int {
	if connected {
		return 1
	}
	return 0
}

// add takes the entry of a device's connect or disconnect and returns what
// to write now: the entry, or nothing when it is left out.
func (p *presenceLog) add(e db.AuditEntry, connected bool) []db.AuditEntry {
	k := presenceKind(connected)
	d := p.devices[e.Target]
	switch {
	case d == nil:
		d = &devicePresence{start: e.At}
		p.devices[e.Target] = d
	case e.At.Sub(d.start) >= p.every:
		e = d.noted(e)
		*d = devicePresence{start: e.At}
	case d.written[k]:
		d.skipped[k]++
		d.newest, d.newestOf = e, k
		return nil
	default:
		e = d.noted(e)
		d.skipped, d.newest = [2]int{}, db.AuditEntry{}
	}
	d.written[k] = true
	return []db.AuditEntry{e}
}

// due ends the intervals that are over by now: each device's newest event
// left out is written, and devices with nothing left are forgotten.
func (p *presenceLog) due(now time.Time) []db.AuditEntry {
	var out []db.AuditEntry
	for id, d := range p.devices {
		if now.Sub(d.start) < p.every {
			continue
		}
		if d.newest.Action == "" {
			delete(p.devices, id)
			continue
		}
		e, k := d.newest, d.newestOf
		d.skipped[k]--
		out = append(out, d.noted(e))
		*d = devicePresence{start: now}
		d.written[k] = true
	}
	return out
}

// flush writes every device's newest event left out (at shutdown).
func (p *presenceLog) flush() []db.AuditEntry {
	var out []db.AuditEntry
	for id, d := range p.devices {
		if d.newest.Action != "" {
			d.skipped[d.newestOf]--
			out = append(out, d.noted(d.newest))
		}
		delete(p.devices, id)
	}
	return out
}

// noted adds to e's detail the events left out before it.
func (d *devicePresence) noted(e db.AuditEntry) db.AuditEntry {
	if d.skipped[0] > 0 || d.skipped[1] > 0 {
		e.Detail += fmt.Sprintf(" (not recorded one by one before this: %d connects, %d disconnects)", d.skipped[1], d.skipped[0])
	}
	return e
}

// runRecheck periodically checks connected devices against the registry
// and closes connections of devices that were disabled or deleted or whose
// key, thumbprint, CA or authentication type is gone. Changes made through
// this process's registry.Registry are checked at once (CheckDevice,
// CheckAllDevices); this catches the CLI's, made in another process.
func (b *Broker) runRecheck() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RecheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			if err := b.recheck(b.ctx); err != nil && !errors.Is(err, context.Canceled) {
				b.log.Error("recheck connected devices", "err", err)
			}
		}
	}
}

// recheck compares every connection with its device row.
func (b *Broker) recheck(ctx context.Context) error {
	b.mu.Lock()
	conns := make([]*conn, 0, len(b.byDevice))
	for _, c := range b.byDevice {
		conns = append(conns, c)
	}
	// Drop authentications whose connection died before its session began.
	for cl := range b.pending {
		if cl.Closed() {
			delete(b.pending, cl)
		}
	}
	b.mu.Unlock()
	if len(conns) == 0 {
		return nil
	}
	states, err := b.cfg.Store.AllDeviceCredentials(ctx)
	if err != nil {
		return err
	}
	cas, err := b.caThumbprints(ctx, conns...)
	if err != nil {
		return err
	}
	for _, c := range conns {
		st, ok := states[c.deviceID]
		b.judge(c, st, ok, cas)
	}
	return nil
}

// caThumbprints reads the registered CAs when one of conns was admitted
// through a CA; otherwise it returns nil without reading.
func (b *Broker) caThumbprints(ctx context.Context, conns ...*conn) (map[string]bool, error) {
	for _, c := range conns {
		if c.authMethod == auth.AuthX509CA {
			return b.cfg.Store.CAThumbprints(ctx)
		}
	}
	return nil, nil
}

// CheckAllDevices checks every connection against the registry at once;
// the registry calls it after removing a CA certificate, which may have
// admitted many devices.
func (b *Broker) CheckAllDevices() {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := b.recheck(ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.log.Error("check device connections", "err", err)
	}
}

// CheckDevice checks the device's connection against the registry at once
// and closes it if the change no longer admits it (judge). The registry
// calls it after every device change, so the connection ends without
// waiting for the periodic check.
func (b *Broker) CheckDevice(deviceID string) {
	c := b.current(deviceID)
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	dev, err := b.cfg.Store.Device(ctx, deviceID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		b.log.Error("check device connection", "device", deviceID, "err", err)
		return
	}
	cas, cerr := b.caThumbprints(ctx, c)
	if cerr != nil {
		b.log.Error("check device connection", "device", deviceID, "err", cerr)
		return
	}
	b.judge(c, db.DeviceCredentials{Enabled: dev.Enabled, Keys: [2]string{dev.PrimaryKey, dev.SecondaryKey}, Auth: dev.Auth}, err == nil, cas)
}

// judge closes c when the device's registry state no longer admits it.
// cas are the registered CA thumbprints (needed only for connections
// admitted through a CA).
func (b *Broker) judge(c *conn, st db.DeviceCredentials, exists bool, cas map[string]bool) {
	switch {
	case !exists:
		c.close("device deleted")
		b.forgetSession(c.deviceID)
	case !st.Enabled:
		c.close("device disabled")
	case st.Auth.Type != c.authType:
		c.close(fmt.Sprintf("authentication changed from %s to %s", c.authType, st.Auth.Type))
	case c.authMethod == auth.AuthX509Primary || c.authMethod == auth.AuthX509Secondary:
		if c.credential != st.Auth.PrimaryThumbprint && c.credential != st.Auth.SecondaryThumbprint {
			c.close("certificate thumbprint no longer registered")
		}
	case c.authMethod == auth.AuthX509CA:
		if !cas[c.credential] {
			c.close("CA certificate removed")
		}
	case st.Keys[c.keyIndex] != c.credential:
		c.close(fmt.Sprintf("%s key rotated", []string{"primary", "secondary"}[c.keyIndex]))
	}
}

// forgetSession drops the persistent session of a deleted device, so a
// device re-created with the same id starts without old subscriptions.
func (b *Broker) forgetSession(deviceID string) {
	if cl, ok := b.server.Clients.Get(deviceID); ok {
		b.server.UnsubscribeClient(cl)
		cl.ClearInflights()
		b.server.Clients.Delete(deviceID)
	}
}
