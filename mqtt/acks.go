package mqtt

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/ingest"
)

// maxPublishesInFlight is how many of a device's publishes may wait for
// their commit at once. Beyond it the connection's read loop waits, which
// stops reading from the socket: TCP then holds the device back.
const maxPublishesInFlight = 64

// ackState is one connection's publishes between OnPublish and their
// PUBACK. mochi reads a connection's packets on one goroutine and would
// write the PUBACK as soon as OnPublish returns; waiting for the commit in
// OnPublish would hold up everything the device sends after a telemetry
// message (a method response, a twin request) until that commit. So
// OnPublish only queues the message, tells mochi not to acknowledge it
// (ErrRejectPacket, which leaves the connection open), and an ack goroutine
// writes the PUBACKs after each commit, in the order the publishes arrived
// as MQTT 3.1.1 requires. Like the cloud-to-device sender, that goroutine
// runs only while there is something to acknowledge.
type ackState struct {
	slots chan struct{} // one per publish in flight; bounds the queue
	// waits counts the times the connection's reader waited for a place:
	// the device sends faster than the hub stores, and is read no faster.
	waits atomic.Int64

	mu      sync.Mutex
	queue   []pendingAck
	running bool
}

// pendingAck is a publish waiting for its outcome: committed is nil for one
// settled when it was read (method responses, twin requests), and sendAck
// is false for QoS 0, which is never acknowledged but still keeps its place
// so that a failed store closes the connection before later PUBACKs go out.
type pendingAck struct {
	packetID  uint16
	sendAck   bool
	committed <-chan error
}

func newAckState() *ackState {
	return &ackState{slots: make(chan struct{}, maxPublishesInFlight)}
}

// drainTimeout bounds how long Close waits for queued telemetry to commit
// and be acknowledged.
const drainTimeout = 5 * time.Second

// errConnClosed is returned to a read loop whose connection ended while it
// waited for room.
var errConnClosed = errors.New("connection closed")

// reserveAck takes a place in the connection's acknowledgement queue: for
// telemetry before it is queued for storage, so that no more than
// maxPublishesInFlight of the device's messages ever wait there. It waits
// while all places are taken, and gives up when the connection ends or the
// broker is closing. A reserved place is either filled by ackLater or given
// back by unreserveAck.
func (b *Broker) reserveAck(c *conn) error {
	select {
	case <-c.done:
		return errConnClosed
	default:
	}
	select {
	case c.acks.slots <- struct{}{}:
		return nil
	default:
	}
	c.acks.waits.Add(1)
	select {
	case c.acks.slots <- struct{}{}:
		return nil
	case <-c.done:
		return errConnClosed
	case <-b.taking.Done():
		return errConnClosed
	}
}

func (b *Broker) unreserveAck(c *conn) {
	<-c.acks.slots
}

// ackLater fills a reserved place with a publish to acknowledge in turn.
func (b *Broker) ackLater(c *conn, a pendingAck) {
	c.acks.mu.Lock()
	c.acks.queue = append(c.acks.queue, a)
	start := !c.acks.running
	c.acks.running = true
	c.acks.mu.Unlock()
	if start {
		b.wg.Add(1)
		go b.ackRun(c)
	}
}

// ackRun acknowledges queued publishes in order as their commits complete,
// and ends when the queue is empty or the connection has gone. A publish
// whose store failed closes the connection without its PUBACK or any later
// one: MQTT 3.1.1 has no negative acknowledgement, and the SDKs send what
// was not acknowledged again after reconnecting. Withholding the PUBACK on
// an open connection would not do: PUBACKs go out in order, so every later
// publish would wait behind it, and the device would not know to resend.
func (b *Broker) ackRun(c *conn) {
	defer b.wg.Done()
	for {
		c.acks.mu.Lock()
		if len(c.acks.queue) == 0 {
			c.acks.running = false
			c.acks.mu.Unlock()
			return
		}
		a := c.acks.queue[0]
		c.acks.queue[0] = pendingAck{}
		c.acks.queue = c.acks.queue[1:]
		c.acks.mu.Unlock()

		if a.committed != nil {
			var err error
			select {
			case err = <-a.committed:
			case <-c.done:
				return // running stays set: nothing is acknowledged on a closed connection
			}
			if err != nil {
				// A storage fault is logged once by storage.Health, not per publish.
				level := slog.LevelWarn
				if errors.Is(err, ingest.ErrStorage) {
					level = slog.LevelDebug
					b.cfg.Refusals.Add(ingest.ProtocolMQTT, ingest.ReasonStorageFault)
				}
				b.log.Log(context.Background(), level, "mqtt telemetry not stored; closing the connection without PUBACK", "device", c.deviceID, "err", err)
				c.close("telemetry not stored: " + err.Error())
				return
			}
		}
		if a.sendAck {
			if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: a.packetID}); err != nil {
				return
			}
		}
		<-c.acks.slots
	}
}

// drainAcks waits until no connection has publishes waiting for their
// PUBACK, or until timeout. New telemetry is refused meanwhile.
func (b *Broker) drainAcks(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for b.acksPending() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *Broker) acksPending() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, c := range b.byClient {
		c.acks.mu.Lock()
		pending := c.acks.running
		c.acks.mu.Unlock()
		if pending {
			return true
		}
	}
	return false
}
