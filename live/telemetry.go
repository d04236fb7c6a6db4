package live

import (
	"maps"
	"slices"
	"unicode/utf8"

	"fieldhub/telemetry"
)

// MaxLiveBody is the most of a message body a live event carries; the full
// body is in the message log. It keeps one chatty device with 256 KB messages
// from filling every subscriber's buffer.
const MaxLiveBody = 16 * 1024

// MaxLiveProperties is the most of a message's application properties (names
// and values) a live event carries, for the same reason: whole properties,
// in name order; the rest are in the message log.
const MaxLiveProperties = 16 * 1024

// Committed publishes a batch of stored messages. It implements
// ingest.Publisher and runs on the pipeline's writer, so it only updates
// counters for the fleet and encodes events for devices someone watches.
func (h *Hub) Committed(batch []telemetry.Record) {
	if h.isClosed() || len(batch) == 0 {
		return
	}
	now := h.opt.Now()
	// Device events that are due go out now (a device coming online shows
	// at once); the rest wait in pending for the sweeper, which coalesces a
	// chatty device to one event per ActivityInterval.
	var due []DeviceStatus
	h.mu.Lock()
	h.countMessages(now, len(batch))
	for i := range batch {
		m := &batch[i].Message
		a := h.activityOf(m.DeviceID)
		if m.EnqueuedAt.After(a.last) {
			a.last = m.EnqueuedAt
		}
		if ds, ok := h.due(m.DeviceID, a, now); ok {
			delete(h.pending, m.DeviceID)
			due = append(due, ds)
		} else {
			h.pending[m.DeviceID] = struct{}{}
		}
	}
	h.mu.Unlock()
	h.announce(due)

	// In a cluster every message goes to the other instances, whose
	// clients may follow any device; alone, only watched devices' are
	// encoded.
	var peers []PeerMessage
	if h.opt.Relay != nil {
		peers = make([]PeerMessage, 0, len(batch))
	}
	for i := range batch {
		r := &batch[i]
		h.mu.Lock()
		st := h.devices[r.Message.DeviceID]
		h.mu.Unlock()
		if st == nil && peers == nil {
			continue
		}
		msg := messageEvent(&r.Message)
		var reading *ReadingEvent
		if len(r.Readings) > 0 {
			rd := readingEvent(r)
			reading = &rd
		}
		if peers != nil {
			peers = append(peers, PeerMessage{Message: msg, Reading: reading})
		}
		if st == nil {
			continue
		}
		h.publish(st, r.Message.DeviceID, EventMessage, msg)
		if reading != nil {
			h.publish(st, r.Message.DeviceID, EventReading, reading)
		}
	}
	if peers != nil {
		h.relayMessages(batch, peers)
	}
}

func messageEvent(m *telemetry.Message) MessageEvent {
	ev := MessageEvent{DeviceID: m.DeviceID, Size: len(m.Body)}
	cut := *m
	cut.Properties, ev.PropertiesTruncated = liveProperties(m.Properties)
	if len(cut.Body) > MaxLiveBody {
		// Cut before a rune boundary so text stays text.
		n := MaxLiveBody
		for k := 0; k < utf8.UTFMax && n > 0 && !utf8.RuneStart(cut.Body[n]); k++ {
			n--
		}
		cut.Body, ev.Truncated = cut.Body[:n], true
	}
	ev.MessageView = cut.View()
	return ev
}

// liveProperties cuts properties to MaxLiveProperties bytes of names and
// values, keeping whole properties in name order, and reports whether it
// left any out. Properties within the limit are returned as they are.
func liveProperties(props map[string]string) (map[string]string, bool) {
	size := 0
	for k, v := range props {
		size += len(k) + len(v)
	}
	if size <= MaxLiveProperties {
		if props == nil {
			props = map[string]string{}
		}
		return props, false
	}
	out := make(map[string]string)
	size = 0
	for _, k := range slices.Sorted(maps.Keys(props)) {
		v := props[k]
		if size+len(k)+len(v) > MaxLiveProperties {
			continue // a smaller one further on may still fit
		}
		out[k] = v
		size += len(k) + len(v)
	}
	return out, true
}

// readingEvent is the readings of a record, at their one instant.
func readingEvent(r *telemetry.Record) ReadingEvent {
	v := make(map[string]float64, len(r.Readings))
	for _, rd := range r.Readings {
		v[rd.Metric] = rd.Value
	}
	return ReadingEvent{T: r.Time.UnixMilli(), V: v}
}
