package telemetry

import (
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is a device-to-cloud message: what the device endpoints build from
// what a device sent, what the message log stores and what queries return.
type Message struct {
	// ID is the message log's id, in commit order; 0 until stored. The live
	// streams use it as the message's sequence number.
	ID int64
	// DeviceID is the authenticated device, never what the payload claims.
	DeviceID        string
	MessageID       string
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	To              string
	UserID          string
	// Properties are the application properties; nil when there are none.
	Properties map[string]string
	Body       []byte
	// AuthMethod says how the device authenticated, e.g. "sas-primary".
	AuthMethod string
	// EnqueuedAt is when the hub accepted the message.
	EnqueuedAt time.Time
	// Protocol is what the message came by ("https", "mqtt"), for the
	// metrics; not stored.
	Protocol string
}

// Size is the message's size as Azure IoT Hub counts it against its 256 KB
// limit: the body, the values of the system properties and the names and
// values of the application properties. Counting properties keeps a device
// from storing megabytes of them beside a small body.
func (m *Message) Size() int {
	n := len(m.Body) + len(m.MessageID) + len(m.CorrelationID) + len(m.ContentType) +
		len(m.ContentEncoding) + len(m.To) + len(m.UserID)
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	return n
}

// Reading is one numeric value of a message. Metric is the path of keys to
// the value, joined with dots ("engine.temp"); the message gives its time.
type Reading struct {
	Metric string
	Value  float64
}

// Record is a message with the readings its body yields: what Append
// stores, and what the ingest pipeline publishes once it committed (with
// Message.ID set).
type Record struct {
	Message Message
	// Time is the time of every reading: the device's timestamp when the
	// body has a plausible one (see SaneTimestamp), else EnqueuedAt.
	Time     time.Time
	Readings []Reading
}

// NewRecord finds the readings of m's body. It is the one place a body
// becomes readings: ingest calls it as a message is submitted (on the
// sender's goroutine, so that the single writer only writes) and recovery
// as it replays the message log. A body that is not a JSON object yields no
// readings; the message is stored all the same.
func NewRecord(m Message) Record {
	return (*Names)(nil).NewRecord(m)
}

// NewRecord is the package's NewRecord with the metric names taken from n
// (a nil n: new strings), for the ingest path, where most messages name
// the metrics the messages before them named.
func (n *Names) NewRecord(m Message) Record {
	r := Record{Message: m, Time: m.EnqueuedAt}
	rs, ts, hasTS, err := flatten(m.Body, n)
	if err != nil || len(rs) == 0 {
		return r
	}
	if hasTS && SaneTimestamp(ts, m.EnqueuedAt) {
		r.Time = ts
	}
	r.Readings = rs
	return r
}

// MessageView is a logged message as operators see it, in JSON: the operator
// API lists it (GET /api/v1/devices/{id}/messages) and the live stream's
// message event carries it, so that pages show a message the same way
// whichever path it arrived by. docs/api.md describes it.
type MessageView struct {
	ID              int64             `json:"id"`
	EnqueuedTime    time.Time         `json:"enqueuedTime"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Properties      map[string]string `json:"properties"` // {} when there are none
	// Body is the text itself when it is UTF-8 without control characters
	// other than whitespace, else base64 and BodyBase64 is set.
	Body       string `json:"body"`
	BodyBase64 bool   `json:"bodyBase64,omitempty"`
	AuthMethod string `json:"authMethod"`
}

// View returns how operators see m.
func (m *Message) View() MessageView {
	v := MessageView{
		ID: m.ID, EnqueuedTime: m.EnqueuedAt, MessageID: m.MessageID, CorrelationID: m.CorrelationID,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Properties: m.Properties,
		AuthMethod: m.AuthMethod,
	}
	if v.Properties == nil {
		v.Properties = map[string]string{}
	}
	v.Body, v.BodyBase64 = displayBody(m.Body)
	return v
}

// displayBody is the body as text when it is UTF-8 without control
// characters other than whitespace, else base64 (and true).
func displayBody(b []byte) (string, bool) {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool {
		return r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f
	}) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}
