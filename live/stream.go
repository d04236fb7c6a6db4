package live

import (
	"bytes"
	"sync"

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

// subscriber is one connected client. Its buffer is bounded: when the client
// cannot keep up the buffer fills and the subscriber is dropped (gone is
// closed), so a slow client never slows the publisher. The client reconnects
// with Last-Event-ID and catches up from the replay ring.
type subscriber struct {
	ch     chan *event
	gone   chan struct{}
	filter map[string]bool // nil: every event
}

func (s *subscriber) wants(ev *event) bool {
	return s.filter == nil || ev.device == "" || s.filter[ev.device]
}

// stream is one SSE stream: the fleet, or one device.
type stream struct {
	mu   sync.Mutex
	ring []*event // circular, oldest at head when full
	head int
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

func newStream(size int, evicted int64) *stream {
	return &stream{ring: make([]*event, 0, size), evicted: evicted, subs: make(map[*subscriber]struct{})}
}

// push appends ev to the ring and hands it to every subscriber that wants it,
// dropping those whose buffer is full. The caller holds s.mu.
func (s *stream) push(ev *event) {
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, ev)
	} else {
		s.evicted = s.ring[s.head].id
		s.ring[s.head] = ev
		s.head = (s.head + 1) % len(s.ring)
	}
	for sub := range s.subs {
		if !sub.wants(ev) {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			s.drop(sub)
		}
	}
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
	n := len(s.ring)
	for i := 0; i < n; i++ {
		ev := s.ring[(s.head+i)%n]
		if ev.id > lastID {
			events = append(events, ev)
		}
	}
	return events, gap
}
