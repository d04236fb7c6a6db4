package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/db"
)

// CloudMessages is the cloud-to-device queue as the broker uses it;
// commands.CloudQueue implements it.
type CloudMessages interface {
	Receive(ctx context.Context, deviceID string) (db.CloudMessage, error)
	Complete(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error)
	Abandon(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error)
	// Release gives back a message taken but never sent, which is not a
	// delivery.
	Release(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error)
	// OnQueued calls fn when a message becomes deliverable to a device.
	OnQueued(fn func(deviceID string)) (cancel func())
}

// maxC2DInFlight is how many cloud-to-device messages a device may hold
// unacknowledged at once.
const maxC2DInFlight = 8

// maxOutbox and maxOutboxBytes bound the QoS 0 publishes (desired
// patches) waiting for one connection.
const (
	maxOutbox      = 64
	maxOutboxBytes = 1 << 20
)

// c2dState is one connection's hub-to-device sending: cloud-to-device
// messages and queued QoS 0 publishes such as desired patches. A sender
// goroutine runs only while there is work, so idle connections cost no
// goroutine; the read goroutine settles messages on PUBACK.
type c2dState struct {
	pending atomic.Bool // work was asked for since the sender last looked
	running atomic.Bool // a sender goroutine is running

	mu sync.Mutex
	// stopped is set when the connection has ended: no sender starts
	// after it. senders counts the running sender, so that the
	// connection's messages are given back only once it has stopped.
	stopped     bool
	senders     sync.WaitGroup
	inFlight    map[uint16]string // packet id → lock token
	nextID      uint16
	outbox      []outbound
	outboxBytes int
}

// outbound is a QoS 0 publish waiting for the sender.
type outbound struct {
	topic   string
	payload []byte
}

func newC2DState() *c2dState {
	return &c2dState{inFlight: map[uint16]string{}}
}

// c2dWake makes the connection look at its queue and outbox, starting a
// sender unless one runs.
func (b *Broker) c2dWake(c *conn) {
	c.c2d.pending.Store(true)
	if !c.c2d.running.CompareAndSwap(false, true) {
		return
	}
	c.c2d.mu.Lock()
	defer c.c2d.mu.Unlock()
	if c.c2d.stopped {
		return // running stays set: the connection sends nothing more
	}
	c.c2d.senders.Add(1)
	b.wg.Add(1)
	go b.c2dRun(c)
}

// stop waits for the sender of a connection that has ended, and keeps
// another from starting.
func (c *c2dState) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.senders.Wait()
}

// c2dRun sends until nothing is asked for, then ends.
func (b *Broker) c2dRun(c *conn) {
	defer b.wg.Done()
	defer c.c2d.senders.Done()
	for {
		for c.c2d.pending.Swap(false) {
			b.flushOutbox(c)
			if b.cfg.CloudMessages != nil {
				b.c2dFill(c)
			}
		}
		c.c2d.running.Store(false)
		// A wake between the last Swap and the Store found the sender still
		// running and started none: look again.
		if !c.c2d.pending.Load() || !c.c2d.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// c2dQueued is the queue's notification: wake the device's connection.
func (b *Broker) c2dQueued(deviceID string) {
	b.WakeCloudMessages(deviceID)
}

// WakeCloudMessages makes the device's connection here look at its queue,
// for messages queued on another instance of a cluster (package bus). It
// reports whether the device is connected here.
func (b *Broker) WakeCloudMessages(deviceID string) bool {
	c := b.current(deviceID)
	if c == nil {
		return false
	}
	b.c2dWake(c)
	return true
}

// c2dAcked completes the message the device acknowledged. Over MQTT the
// PUBACK is the only settlement: there is no reject or abandon.
func (b *Broker) c2dAcked(c *conn, packetID uint16) {
	c.c2d.mu.Lock()
	lock, ok := c.c2d.inFlight[packetID]
	delete(c.c2d.inFlight, packetID)
	c.c2d.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := b.cfg.CloudMessages.Complete(ctx, c.deviceID, lock); err != nil {
		// A lock that expired meanwhile: the message was delivered again or
		// will be; at-least-once is what the protocol promises.
		b.log.Warn("complete cloud-to-device message", "device", c.deviceID, "err", err)
	}
	b.c2dWake(c)
}

// flushOutbox sends the queued QoS 0 publishes in order.
func (b *Broker) flushOutbox(c *conn) {
	c.c2d.mu.Lock()
	out := c.c2d.outbox
	c.c2d.outbox, c.c2d.outboxBytes = nil, 0
	c.c2d.mu.Unlock()
	for _, o := range out {
		if err := c.publish0(o.topic, o.payload); err != nil {
			b.log.Info("hub-to-device publish not sent", "device", c.deviceID, "topic", o.topic, "err", err)
			return
		}
	}
}

// c2dFill sends queued messages until the queue is empty or the device
// holds maxC2DInFlight, if the device listens for them.
func (b *Broker) c2dFill(c *conn) {
	if !c.subscribed(c2dFilter(c.deviceID)) {
		return
	}
	for {
		select {
		case <-c.done:
			return
		default:
		}
		c.c2d.mu.Lock()
		full := len(c.c2d.inFlight) >= maxC2DInFlight
		c.c2d.mu.Unlock()
		if full {
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		msg, err := b.cfg.CloudMessages.Receive(ctx, c.deviceID)
		cancel()
		if errors.Is(err, db.ErrQueueEmpty) {
			return
		}
		if err != nil {
			b.log.Error("receive cloud-to-device message", "device", c.deviceID, "err", err)
			return
		}
		c.c2d.mu.Lock()
		select {
		case <-c.done:
			// Closed while receiving: never sent.
			c.c2d.mu.Unlock()
			b.release(c.deviceID, msg.LockToken)
			return
		default:
		}
		id := c.c2d.packetID()
		c.c2d.inFlight[id] = msg.LockToken
		c.c2d.mu.Unlock()
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			PacketID:    id,
			TopicName:   C2DTopic(c.deviceID, c2dSystemProperties(msg), msg.Properties),
			Payload:     msg.Body,
		}
		if err := c.write(pk); err != nil {
			if errors.Is(err, mochi.ErrConnectionClosed) {
				// Closed before the write: never sent.
				c.c2d.mu.Lock()
				delete(c.c2d.inFlight, id)
				c.c2d.mu.Unlock()
				b.release(c.deviceID, msg.LockToken)
			}
			// Otherwise some of it may have gone out: c2dAbandonAll
			// gives it back as a delivery.
			return
		}
	}
}

// packetID picks an id not held by an unacknowledged message. The hub sends
// nothing else at QoS 1 to a device, so mochi allocates no ids of its own on
// these connections. The caller holds s.mu.
func (s *c2dState) packetID() uint16 {
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inFlight[s.nextID]; !used {
			return s.nextID
		}
	}
}

// c2dAbandonAll returns the unacknowledged messages of a closed connection
// to the queue; a disconnect before PUBACK is a delivery that failed. It
// first waits for the connection's sender: a sender still running could
// otherwise take a message given back here for the closed connection again.
func (b *Broker) c2dAbandonAll(c *conn) {
	c.c2d.stop()
	c.c2d.mu.Lock()
	locks := make([]string, 0, len(c.c2d.inFlight))
	for id, lock := range c.c2d.inFlight {
		locks = append(locks, lock)
		delete(c.c2d.inFlight, id)
	}
	c.c2d.mu.Unlock()
	for _, lock := range locks {
		b.abandon(c.deviceID, lock)
	}
}

// release gives back a message taken for a connection but never sent.
func (b *Broker) release(deviceID, lock string) {
	// Not b.ctx: on shutdown the locks must still be given back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.cfg.CloudMessages.Release(ctx, deviceID, lock); err != nil && !errors.Is(err, db.ErrLockLost) {
		b.log.Error("return cloud-to-device message to the queue", "device", deviceID, "err", err)
	}
}

func (b *Broker) abandon(deviceID, lock string) {
	// Not b.ctx: on shutdown the locks must still be given back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.cfg.CloudMessages.Abandon(ctx, deviceID, lock); err != nil && !errors.Is(err, db.ErrLockLost) {
		b.log.Error("return cloud-to-device message to the queue", "device", deviceID, "err", err)
	}
}

// sendLater queues a QoS 0 publish for the connection's sender. A device
// whose outbox is full has stopped reading (the sender is stuck writing to
// its socket); rather than drop a desired patch and leave the device
// believing an old twin, the hub closes the connection. Devices are to GET
// the twin after every reconnect (IoT Hub does not keep patches for
// disconnected devices either), so the device resynchronises.
func (b *Broker) sendLater(c *conn, topic string, payload []byte) {
	c.c2d.mu.Lock()
	full := len(c.c2d.outbox) >= maxOutbox || c.c2d.outboxBytes+len(payload) > maxOutboxBytes
	if !full {
		c.c2d.outbox = append(c.c2d.outbox, outbound{topic: topic, payload: payload})
		c.c2d.outboxBytes += len(payload)
	}
	n := len(c.c2d.outbox)
	c.c2d.mu.Unlock()
	if full {
		b.log.Warn("device is not reading; closing its connection", "device", c.deviceID, "waiting", n, "topic", topic)
		c.close(fmt.Sprintf("the device did not read what the hub sent (%d publishes waiting); it must reconnect and get its twin", n))
		return
	}
	b.c2dWake(c)
}

func c2dFilter(deviceID string) string {
	return "devices/" + deviceID + "/messages/devicebound/#"
}

// c2dSystemProperties are the bag's $.… entries for a message, as Azure
// sends them.
func c2dSystemProperties(m db.CloudMessage) map[string]string {
	sys := map[string]string{
		"$.mid": m.MessageID,
		"$.to":  "/devices/" + m.DeviceID + "/messages/deviceBound",
	}
	if m.CorrelationID != "" {
		sys["$.cid"] = m.CorrelationID
	}
	if !m.ExpiresAt.IsZero() {
		sys["$.exp"] = m.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return sys
}
