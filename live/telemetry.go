package live

import (
	"maps"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"fieldhub/ingest"
)

// MaxLiveBody is the most of a message body a live event carries; the full
// body is in the message log. It keeps one chatty device with 256 KB messages
// from filling every subscriber's buffer.
const MaxLiveBody = 16 * 1024

// MaxLiveProperties is the most of a message's application properties (names
// and values) a live event carries, for the same reason: whole properties,
// in name order; the rest are in the message log.
const MaxLiveProperties = 16 * 1024

// MessageEvent is the payload of EventMessage: the message as the operator
// API lists it (GET /api/v1/devices/{id}/messages), so pages render both the
// same way, plus its size and whether the body was cut.
type MessageEvent struct {
	ID              int64             `json:"id"` // the message log's id
	DeviceID        string            `json:"deviceId"`
	EnqueuedTime    time.Time         `json:"enqueuedTime"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Properties      map[string]string `json:"properties"`
	AuthMethod      string            `json:"authMethod"`
	// Body is text, or base64 when BodyBase64 is set (binary or control
	// characters), at most MaxLiveBody bytes of the original.
	Body       string `json:"body"`
	BodyBase64 bool   `json:"bodyBase64,omitempty"`
	Size       int    `json:"size"`
	Truncated  bool   `json:"truncated,omitempty"`
	// PropertiesTruncated says that Properties were cut at MaxLiveProperties.
	PropertiesTruncated bool `json:"propertiesTruncated,omitempty"`
}

// Committed publishes a batch of stored messages. It implements
// ingest.Publisher and runs on the pipeline's writer, so it only updates
// counters for the fleet and encodes events for devices someone watches.
func (h *Hub) Committed(batch []ingest.Committed) {
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
		c := &batch[i]
		a := h.activityOf(c.DeviceID)
		if c.EnqueuedAt.After(a.last) {
			a.last = c.EnqueuedAt
		}
		if ds, ok := h.due(c.DeviceID, a, now); ok {
			delete(h.pending, c.DeviceID)
			due = append(due, ds)
		} else {
			h.pending[c.DeviceID] = struct{}{}
		}
	}
	h.mu.Unlock()
	h.announce(due)

	for i := range batch {
		c := &batch[i]
		h.mu.Lock()
		st := h.devices[c.DeviceID]
		h.mu.Unlock()
		if st == nil {
			continue
		}
		h.publish(st, c.DeviceID, EventMessage, messageEvent(c))
		for _, r := range readingEvents(c.Readings) {
			h.publish(st, c.DeviceID, EventReading, r)
		}
	}
}

func messageEvent(c *ingest.Committed) MessageEvent {
	m := &c.Message
	ev := MessageEvent{
		ID: c.Seq, DeviceID: c.DeviceID, EnqueuedTime: c.EnqueuedAt,
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, ContentType: m.ContentType,
		ContentEncoding: m.ContentEncoding, AuthMethod: m.AuthMethod,
		Size: len(m.Body),
	}
	ev.Properties, ev.PropertiesTruncated = liveProperties(m.Properties)
	body := m.Body
	if len(body) > MaxLiveBody {
		// Cut before a rune boundary so text stays text.
		cut := MaxLiveBody
		for k := 0; k < utf8.UTFMax && cut > 0 && !utf8.RuneStart(body[cut]); k++ {
			cut--
		}
		body, ev.Truncated = body[:cut], true
	}
	ev.Body, ev.BodyBase64 = ingest.DisplayBody(body)
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

// readingEvents groups readings by time, oldest first.
func readingEvents(rs []ingest.TimedReading) []ReadingEvent {
	if len(rs) == 0 {
		return nil
	}
	byTime := make(map[int64]map[string]float64)
	for _, r := range rs {
		t := r.Time.UnixMilli()
		v := byTime[t]
		if v == nil {
			v = make(map[string]float64)
			byTime[t] = v
		}
		v[r.Metric] = r.Value
	}
	out := make([]ReadingEvent, 0, len(byTime))
	for t, v := range byTime {
		out = append(out, ReadingEvent{T: t, V: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}
