package live

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/r3labs/sse/v2"
)

// event is one encoded server-sent event in a stream's replay ring.
type event struct {
	id int64
	// device is the device the event is about ("" = fleet-wide); fleet
	// subscribers that asked for some devices only get events about those.
	device string
	wire   []byte
}

// encode writes ev in the text/event-stream format r3labs/sse's server
// writes: id, event, one data line per line of data, a blank line.
func encode(ev *sse.Event) []byte {
	var b bytes.Buffer
	// Sized up front, so the replay buffers' byte accounting (cap) is what
	// an event really holds.
	b.Grow(len(ev.ID) + len(ev.Event) + len(ev.Data) + 32 + 7*bytes.Count(ev.Data, []byte("\n")))
	if len(ev.ID) > 0 {
		b.WriteString("id: ")
		b.Write(ev.ID)
		b.WriteByte('\n')
	}
	if len(ev.Event) > 0 {
		b.WriteString("event: ")
		b.Write(ev.Event)
		b.WriteByte('\n')
	}
	for _, line := range bytes.Split(ev.Data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// subscriber is one connected client. Its buffer is bounded in events and
// in bytes: when the client cannot keep up the buffer fills and the
// subscriber is dropped (gone is closed), so a slow client never slows the
// publisher. The client reconnects with Last-Event-ID and catches up from
// the replay ring.
type subscriber struct {
	ch     chan *event
	gone   chan struct{}
	filter map[string]bool // nil: every event
	// queued is the bytes of the events in ch, at most maxBytes.
	queued   atomic.Int64
	maxBytes int64
}

// size is what an event holds in memory, as the byte budgets count it.
func (ev *event) size() int { return cap(ev.wire) }

// sent records that the client took ev from its buffer.
func (s *subscriber) sent(ev *event) { s.queued.Add(-int64(ev.size())) }

func (s *subscriber) wants(ev *event) bool {
	return s.filter == nil || ev.device == "" || s.filter[ev.device]
}

// stream is one SSE stream: the fleet, or one device.
type stream struct {
	mu sync.Mutex
	// ring is the replay buffer: n events from head, circular, oldest
	// first. It keeps at most len(ring) events and maxBytes bytes of them.
	ring     []*event
	head, n  int
	bytes    int
	maxBytes int
	// evicted is the id of the newest event no longer in the ring (or the
	// id counter when the stream was created): a client that last saw an
	// older id has missed events and must resynchronise.
	evicted int64
	subs    map[*subscriber]struct{}
	// idleTicks counts sweeps without subscribers, to forget idle device streams.
	idleTicks int
	// dropped counts subscribers dropped for being too slow.
	dropped int64
	// forgotten is set when the hub no longer publishes to this stream; a
	// client that finds it set subscribes to the stream's successor.
	forgotten bool
}

func newStream(size, maxBytes int, evicted int64) *stream {
	return &stream{ring: make([]*event, size), maxBytes: maxBytes, evicted: evicted, subs: make(map[*subscriber]struct{})}
}

// push appends ev to the ring, evicting the oldest events to stay within
// its count and bytes, and hands it to every subscriber that wants it,
// dropping those whose buffer is full. An event larger than the whole byte
// budget goes to the subscribers only: the ring is emptied and a client
// resuming from before it resynchronises. The caller holds s.mu.
func (s *stream) push(ev *event) {
	size := ev.size()
	if size > s.maxBytes {
		for s.n > 0 {
			s.evictOldest()
		}
		s.evicted = ev.id
	} else {
		for s.n > 0 && (s.n == len(s.ring) || s.bytes+size > s.maxBytes) {
			s.evictOldest()
		}
		s.ring[(s.head+s.n)%len(s.ring)] = ev
		s.n++
		s.bytes += size
	}
	for sub := range s.subs {
		if !sub.wants(ev) {
			continue
		}
		if sub.queued.Add(int64(size)) > sub.maxBytes {
			s.drop(sub)
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			s.drop(sub)
		}
	}
}

// evictOldest drops the oldest event of the ring. The caller holds s.mu.
func (s *stream) evictOldest() {
	old := s.ring[s.head]
	s.evicted = old.id
	s.bytes -= old.size()
	s.ring[s.head] = nil
	s.head = (s.head + 1) % len(s.ring)
	s.n--
}

// drop disconnects sub. The caller holds s.mu.
func (s *stream) drop(sub *subscriber) {
	if _, ok := s.subs[sub]; !ok {
		return
	}
	delete(s.subs, sub)
	close(sub.gone)
	s.dropped++
}

// since returns the events after lastID, oldest first, and whether the
// client missed events that are no longer kept. The caller holds s.mu.
func (s *stream) since(lastID int64) (events []*event, gap bool) {
	gap = lastID < s.evicted
	for i := range s.n {
		ev := s.ring[(s.head+i)%len(s.ring)]
		if ev.id > lastID {
			events = append(events, ev)
		}
	}
	return events, gap
}
