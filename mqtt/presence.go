package mqtt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fieldhub/db"
)

// EventConnection is the live event type on a device's stream when its MQTT
// connection opens or closes; the payload is a ConnectionEvent.
const EventConnection = "connection"

// ConnectionEvent is the payload of EventConnection.
type ConnectionEvent struct {
	Connected bool      `json:"connected"`
	Protocol  string    `json:"protocol"`
	Remote    string    `json:"remote,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

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
	for ev := range b.presence {
		b.recordPresence(ev)
	}
}

func (b *Broker) recordPresence(ev presenceEvent) {
	// Not b.ctx: events queued during shutdown are still recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	online := b.Connected(ev.deviceID)
	if err := b.cfg.DB.SetDeviceConnected(ctx, ev.deviceID, online); err != nil {
		b.log.Error("record device presence", "device", ev.deviceID, "err", err)
	}
	entry := db.AuditEntry{At: ev.at, Actor: "device:" + ev.deviceID, Target: ev.deviceID}
	if ev.connected {
		entry.Action = ActionConnected
		entry.Detail = fmt.Sprintf("MQTT from %s (%s)", ev.remote, ev.authMethod)
	} else {
		entry.Action = ActionDisconnected
		entry.Detail = ev.reason
	}
	if err := b.cfg.DB.RecordAudit(ctx, entry); err != nil {
		b.log.Error("record device presence", "device", ev.deviceID, "err", err)
	}
	if p := b.cfg.Presence; p != nil {
		p.SetConnected(ev.deviceID, online)
		p.PublishDevice(ev.deviceID, EventConnection, ConnectionEvent{
			Connected: ev.connected, Protocol: "mqtt", Remote: ev.remote, Reason: ev.reason, At: ev.at,
		})
	}
}

// runRecheck periodically checks connected devices against the registry
// and closes connections of devices that were disabled or deleted or whose
// signing key was rotated. Handlers call DisconnectDevice at once; this
// also covers changes made by the CLI, which runs in another process.
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
	states, err := b.cfg.DB.AllDeviceCredentials(ctx)
	if err != nil {
		return err
	}
	for _, c := range conns {
		st, ok := states[c.deviceID]
		b.judge(c, st, ok)
	}
	return nil
}

// CheckDevice checks the device's connection against the registry at once
// and closes it if the device was disabled or deleted or the key it signed
// with was rotated. Handlers call it after changing a device, so the
// connection ends without waiting for the periodic check.
func (b *Broker) CheckDevice(deviceID string) {
	c := b.current(deviceID)
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	dev, err := b.cfg.DB.Device(ctx, deviceID)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		b.log.Error("check device connection", "device", deviceID, "err", err)
		return
	}
	b.judge(c, db.DeviceCredentials{Enabled: dev.Enabled, Keys: [2]string{dev.PrimaryKey, dev.SecondaryKey}}, err == nil)
}

// judge closes c when the device's registry state no longer admits it.
func (b *Broker) judge(c *conn, st db.DeviceCredentials, exists bool) {
	switch {
	case !exists:
		c.close("device deleted")
		b.forgetSession(c.deviceID)
	case !st.Enabled:
		c.close("device disabled")
	case st.Keys[c.keyIndex] != c.key:
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
