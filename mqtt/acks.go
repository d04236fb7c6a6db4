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
// (ErrRejectPacket, which leaves the connection open), and the PUBACKs go
// out after each commit, in the order the publishes arrived as MQTT 3.1.1
// requires.
//
// Who writes them: the ingest writer settles each telemetry publish in its
// connection's queue as its commit completes (settled, called by the
// pipeline) and hands the connections whose oldest publish became settled
// to the broker's ack workers (ackWorkers), which write their PUBACKs. A
// commit of hundreds of messages from as many devices thus wakes one
// worker, not one goroutine per message (bench/README.md, issue 10, fifth
// round). A publish settled when it was read (a method response) whose
// connection waits for nothing is acknowledged at once by its reader.
type ackState struct {
	slots chan struct{} // one per publish in flight; bounds the queue
	// waits counts the times the connection's reader waited for a place:
	// the device sends faster than the hub stores, and is read no faster.
	waits atomic.Int64
	// settle is given to the pipeline with every telemetry publish (one
	// function per connection, not one per publish).
	settle func(error)

	mu    sync.Mutex
	queue []pendingAck // in the order the publishes arrived
	// flushing: a goroutine is writing this connection's PUBACKs; it takes
	// whatever becomes settled meanwhile. ready: the connection waits in the
	// ack workers' list. dead: a store failed, the connection is closing and
	// nothing more is acknowledged on it.
	flushing, ready, dead bool
	out                   []pendingAck // the flusher's own, reused
}

// pendingAck is a publish waiting for its outcome: those that are not
// telemetry (method responses, twin requests) are settled when they are
// read, and sendAck is false for QoS 0, which is never acknowledged but
// still keeps its place so that a failed store closes the connection before
// later PUBACKs go out.
type pendingAck struct {
	packetID uint16
	sendAck  bool
	settled  bool
	err      error // the store's failure
}

func (b *Broker) newAckState(c *conn) *ackState {
	s := &ackState{slots: make(chan struct{}, maxPublishesInFlight)}
	s.settle = func(err error) { b.settled(c, err) }
	return s
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
// broker is closing. A reserved place is filled by ackLater, and given back
// when its PUBACK is written or by ackWithdraw.
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

// ackLater fills a reserved place with a publish to acknowledge in turn.
// A publish that is not settled yet (telemetry, queued before it is handed
// to the pipeline, which may settle it at once) is settled by the pipeline
// through c.acks.settle; one that is settled already is acknowledged at
// once, on the caller's goroutine, when nothing before it waits. It reports
// false, and gives the place back, when the connection is closing after a
// failed store.
func (b *Broker) ackLater(c *conn, a pendingAck) bool {
	s := c.acks
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		<-s.slots
		return false
	}
	s.queue = append(s.queue, a)
	now := a.settled && len(s.queue) == 1 && !s.flushing
	s.mu.Unlock()
	if now {
		b.flushAcks(c)
	}
	return true
}

// ackWithdraw takes back the last publish ackLater queued, whose telemetry
// was not queued for storage after all, and gives its place back.
func (b *Broker) ackWithdraw(c *conn) {
	s := c.acks
	s.mu.Lock()
	if n := len(s.queue); n > 0 && !s.dead {
		s.queue[n-1] = pendingAck{}
		s.queue = s.queue[:n-1]
	}
	s.mu.Unlock()
	<-s.slots
}

// settled records the outcome of the connection's oldest unsettled
// publish: the pipeline reports outcomes in the order the publishes were
// queued. It runs on the ingest writer's goroutine, so it only marks the
// publish and, when the connection's oldest publish is settled, hands the
// connection to the ack workers.
func (b *Broker) settled(c *conn, err error) {
	s := c.acks
	s.mu.Lock()
	for i := range s.queue {
		if !s.queue[i].settled {
			s.queue[i].settled, s.queue[i].err = true, err
			break
		}
	}
	hand := len(s.queue) > 0 && s.queue[0].settled && !s.flushing && !s.ready && !s.dead
	if hand {
		s.ready = true
	}
	s.mu.Unlock()
	if hand {
		b.acking.add(b, c)
	}
}

// flushAcks writes the PUBACKs of the connection's settled publishes from
// the oldest on, until one that waits for its commit, and of those settled
// meanwhile. A publish whose store failed closes the connection without its
// PUBACK or any later one: MQTT 3.1.1 has no negative acknowledgement, and
// the SDKs send what was not acknowledged again after reconnecting.
// Withholding the PUBACK on an open connection would not do: PUBACKs go
// out in order, so every later publish would wait behind it, and the
// device would not know to resend.
func (b *Broker) flushAcks(c *conn) {
	s := c.acks
	s.mu.Lock()
	s.ready = false
	if s.flushing || s.dead {
		s.mu.Unlock()
		return
	}
	s.flushing = true
	for {
		n := 0
		for n < len(s.queue) && s.queue[n].settled {
			n++
		}
		if n == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		s.out = append(s.out[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()
		if !b.writeAcks(c, s.out) {
			s.mu.Lock()
			s.dead, s.flushing = true, false
			clear(s.queue)
			s.queue = s.queue[:0]
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
	}
}

// writeAcks writes the PUBACKs of settled publishes, giving back their
// places. It reports false when the connection failed or closed.
func (b *Broker) writeAcks(c *conn, acks []pendingAck) bool {
	for _, a := range acks {
		select {
		case <-c.done:
			return false // nothing is acknowledged on a closed connection
		default:
		}
		if a.err != nil {
			// A storage fault is logged once by storage.Health, not per publish.
			level := slog.LevelWarn
			if errors.Is(a.err, ingest.ErrStorage) {
				level = slog.LevelDebug
				b.cfg.Refusals.Add(ingest.ProtocolMQTT, ingest.ReasonStorageFault)
			}
			b.log.Log(context.Background(), level, "mqtt telemetry not stored; closing the connection without PUBACK", "device", c.deviceID, "err", a.err)
			c.close("telemetry not stored: " + a.err.Error())
			return false
		}
		if a.sendAck {
			if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: a.packetID}); err != nil {
				return false
			}
		}
		<-c.acks.slots
	}
	return true
}

// ackStall is how long the ack workers may spend on one connection's write
// before another worker takes over the rest of the list: a device that
// stops reading fills its socket, and its write then waits (up to mochi's
// keep-alive deadline) while the other devices' PUBACKs must not.
const ackStall = 20 * time.Millisecond

// ackWorkers write the PUBACKs of the connections the ingest writer handed
// over. One runs while connections wait in the list, started by the first
// handed over and ending when the list is empty, and one more for every
// ackPerWorker connections waiting, up to one per processor (a PUBACK is a
// TLS record and a system call: one goroutine writes about 70,000 a second).
// A watchdog adds one while the list has not moved for ackStall, so a
// stalled write holds up only itself.
type ackWorkers struct {
	mu       sync.Mutex
	max      int     // workers, the watchdog's aside: GOMAXPROCS
	list     []*conn // from head on
	head     int
	running  int
	moved    uint64 // connections taken from the list so far
	watching bool
	closed   bool // the broker's goroutines are being waited for: start none
}

// ackPerWorker is how many connections waiting in the list make another
// worker worth waking.
const ackPerWorker = 64

// add hands a connection over and starts a worker if none runs, or if the
// list is long for those that do.
func (w *ackWorkers) add(b *Broker, c *conn) {
	w.mu.Lock()
	w.list = append(w.list, c)
	if w.running == 0 || w.running < w.max && len(w.list)-w.head > w.running*ackPerWorker {
		w.startLocked(b)
	}
	w.mu.Unlock()
}

// startLocked starts a worker, and the watchdog if it is not on.
func (w *ackWorkers) startLocked(b *Broker) {
	if w.closed {
		return // the connections are closed: nothing is acknowledged
	}
	w.running++
	b.wg.Add(1)
	go w.work(b)
	if !w.watching {
		w.watching = true
		moved := w.moved
		time.AfterFunc(ackStall, func() { w.watch(b, moved) })
	}
}

func (w *ackWorkers) work(b *Broker) {
	defer b.wg.Done()
	for {
		w.mu.Lock()
		if w.head == len(w.list) {
			w.running--
			w.list, w.head = w.list[:0], 0
			w.mu.Unlock()
			return
		}
		c := w.list[w.head]
		w.list[w.head] = nil
		w.head++
		w.moved++
		w.mu.Unlock()
		b.flushAcks(c)
	}
}

// watch starts another worker when the list waits and has not moved since
// the last look, and looks again while workers run.
func (w *ackWorkers) watch(b *Broker, moved uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head < len(w.list) && w.moved == moved {
		w.startLocked(b)
	}
	if w.running == 0 || w.closed {
		w.watching = false
		return
	}
	moved = w.moved
	time.AfterFunc(ackStall, func() { w.watch(b, moved) })
}

// stop starts no more workers; Close calls it before waiting for the
// broker's goroutines.
func (w *ackWorkers) stop() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
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
		pending := !c.acks.dead && (len(c.acks.queue) > 0 || c.acks.flushing)
		c.acks.mu.Unlock()
		if pending {
			return true
		}
	}
	return false
}
