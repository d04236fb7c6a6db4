package bus

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"fieldhub/live"
)

// AttachHub makes the bus deliver other instances' live events to peers
// (the live hub). For one instance it only remembers peers.
func (b *Bus) AttachHub(peers Peers) error {
	b.mu.Lock()
	b.peers = peers
	b.mu.Unlock()
	if b.nc == nil {
		return nil
	}
	return b.subscribe(subjectLive, b.fromPeer)
}

// Relay queues a live event for the other instances (live.Relay). It never
// waits: when the queue is full, or the bus is one instance, the event is
// dropped.
func (b *Bus) Relay(ev live.PeerEvent) {
	if b.nc == nil {
		return
	}
	select {
	case b.relayq <- ev:
	default:
		if b.stats.relayDropped.Add(1)%1000 == 1 {
			b.log.Warn("live events for other instances dropped: the bus cannot keep up", "dropped", b.stats.relayDropped.Load())
		}
	}
}

// Watch subscribes to the message events of a device whose stream the hub
// keeps, or drops the subscription (live.Relay). A device's subscription
// holds few messages: a browser follows a device at human speed.
func (b *Bus) Watch(deviceID string, watching bool) {
	if b.nc == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sub := b.watched[deviceID]
	switch {
	case watching && sub == nil:
		sub, err := b.nc.Subscribe(deviceSubject(deviceID), b.fromPeer)
		if err == nil {
			err = sub.SetPendingLimits(devicePending, devicePendingBytes)
		}
		if err != nil {
			b.log.Warn("follow a device's messages on other instances", "device", deviceID, "err", err)
			return
		}
		b.watched[deviceID] = sub
	case !watching && sub != nil:
		b.dropped += b.droppedOf(sub)
		_ = sub.Unsubscribe()
		delete(b.watched, deviceID)
	}
}

// Bounds of the subscription to one device's message events.
const (
	devicePending      = 256
	devicePendingBytes = 4 << 20
)

// droppedOf is what NATS dropped of a subscription, as a slow consumer.
func (b *Bus) droppedOf(sub *nats.Subscription) int64 {
	n, err := sub.Dropped()
	if err != nil {
		return 0
	}
	return int64(n)
}

// runRelay sends the queued live events until Close.
func (b *Bus) runRelay() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case ev := <-b.relayq:
			b.sendLive(ev)
		}
	}
}

// sendLive publishes one event. The messages of a batch go to the
// subjects of their devices, their activity to every instance.
func (b *Bus) sendLive(ev live.PeerEvent) {
	if ev.Type != live.PeerMessages {
		b.publishLive(subjectLive, ev)
		return
	}
	if len(ev.Activity) > 0 {
		b.publishLive(subjectLive, live.PeerEvent{Type: live.PeerMessages, Activity: ev.Activity})
	}
	byDevice := map[string][]live.PeerMessage{}
	var order []string
	for _, m := range ev.Messages {
		id := m.Message.DeviceID
		if _, ok := byDevice[id]; !ok {
			order = append(order, id)
		}
		byDevice[id] = append(byDevice[id], m)
	}
	for _, id := range order {
		b.publishLive(deviceSubject(id), live.PeerEvent{Type: live.PeerMessages, Messages: byDevice[id]})
	}
}

// publishLive publishes one event, split into several when its messages
// or activity do not fit one NATS message.
func (b *Bus) publishLive(subject string, ev live.PeerEvent) {
	data, err := json.Marshal(ev)
	if err != nil {
		b.stats.refused.Add(1)
		b.log.Error("encode live event for other instances", "type", ev.Type, "err", err)
		return
	}
	if len(data) > b.max {
		if n := len(ev.Messages); n > 1 {
			first, second := ev, ev
			first.Messages, second.Messages = ev.Messages[:n/2], ev.Messages[n/2:]
			b.publishLive(subject, first)
			b.publishLive(subject, second)
			return
		}
		if n := len(ev.Activity); n > 1 {
			first, second := ev, ev
			first.Activity, second.Activity = ev.Activity[:n/2], ev.Activity[n/2:]
			b.publishLive(subject, first)
			b.publishLive(subject, second)
			return
		}
		b.stats.refused.Add(1)
		b.log.Warn("live event not sent to other instances: too large", "type", ev.Type, "device", ev.Device, "bytes", len(data), "max", b.max)
		return
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{headerNode: []string{b.node}}}
	if err := b.nc.PublishMsg(msg); err != nil {
		if b.stats.relayDropped.Add(1)%1000 == 1 {
			b.log.Warn("live events for other instances dropped", "err", err, "dropped", b.stats.relayDropped.Load())
		}
		return
	}
	b.stats.relayed.Add(1)
	b.stats.bytesSent.Add(int64(len(data)))
}

// fromPeer applies a live event of another instance.
func (b *Bus) fromPeer(m *nats.Msg) {
	node := m.Header.Get(headerNode)
	if node == b.node || b.tooBig(m) {
		return
	}
	if err := CheckNode(node); err != nil {
		b.peerError(fmt.Errorf("live event without its node: %w", err))
		return
	}
	var ev live.PeerEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		b.peerError(fmt.Errorf("live event from %s is not JSON: %w", node, err))
		return
	}
	b.mu.RLock()
	peers := b.peers
	b.mu.RUnlock()
	if peers == nil {
		return
	}
	if err := peers.FromPeer(node, ev); err != nil {
		b.peerError(err)
	}
}

func (b *Bus) peerError(err error) {
	if b.stats.peerErrors.Add(1)%100 == 1 {
		b.log.Warn("live event from another instance refused", "err", err, "refused", b.stats.peerErrors.Load())
	}
}
