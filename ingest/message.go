package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"fieldhub/telemetry"
)

// MaxMessageSize is the largest device-to-cloud message body Azure IoT Hub
// accepts (256 KB); larger messages are refused with 413.
const MaxMessageSize = 256 * 1024

// ErrTooLarge is wrapped by errors about a message, or a batch, over
// MaxMessageSize.
var ErrTooLarge = errors.New("message too large")

// BatchContentType marks an HTTP telemetry request whose body is a JSON
// array of messages (the SDKs' sendEventBatch).
const BatchContentType = "application/vnd.microsoft.iothub.json"

// CheckSize returns an error wrapping ErrTooLarge when the message is over
// MaxMessageSize as Size counts it, saying how much of it is properties.
func CheckSize(m *telemetry.Message) error {
	size := m.Size()
	switch {
	case size <= MaxMessageSize:
		return nil
	case size == len(m.Body):
		return fmt.Errorf("%w: body is %d bytes, the limit is %d (256 KB)", ErrTooLarge, size, MaxMessageSize)
	default:
		return fmt.Errorf("%w: %d bytes with its properties (body %d, properties %d), the limit is %d (256 KB) for both together",
			ErrTooLarge, size, len(m.Body), size-len(m.Body), MaxMessageSize)
	}
}

// HTTP header names and batch property names for the system properties.
const (
	headerAppPrefix       = "iothub-app-"
	headerMessageID       = "iothub-messageid"
	headerCorrelationID   = "iothub-correlationid"
	headerContentType     = "iothub-contenttype"
	headerContentEncoding = "iothub-contentencoding"
	headerTo              = "iothub-to"
	headerUserID          = "iothub-userid"
)

// The same names as net/http keeps them (textproto.CanonicalMIMEHeaderKey):
// http.Header.Get with a name in another case makes the canonical string
// anew on every call, six allocations per message.
const (
	canonicalMessageID       = "Iothub-Messageid"
	canonicalCorrelationID   = "Iothub-Correlationid"
	canonicalContentType     = "Iothub-Contenttype"
	canonicalContentEncoding = "Iothub-Contentencoding"
	canonicalTo              = "Iothub-To"
	canonicalUserID          = "Iothub-Userid"
)

// MessageFromHTTP builds a message from a POST …/messages/events request.
// Header names arrive case-folded by net/http, so the names of application
// properties (iothub-app-<name>) are lower-cased: their original case is lost.
// DeviceID, AuthMethod and EnqueuedAt are the caller's to fill in.
func MessageFromHTTP(h http.Header, body []byte) telemetry.Message {
	m := telemetry.Message{
		MessageID:       h.Get(canonicalMessageID),
		CorrelationID:   h.Get(canonicalCorrelationID),
		ContentType:     h.Get(canonicalContentType),
		ContentEncoding: h.Get(canonicalContentEncoding),
		To:              h.Get(canonicalTo),
		UserID:          h.Get(canonicalUserID),
		Body:            body,
	}
	if m.ContentType == "" {
		if ct := h.Get("Content-Type"); !isBatchContentType(ct) {
			m.ContentType = ct
		}
	}
	for name, values := range h {
		if len(name) <= len(headerAppPrefix) || !strings.EqualFold(name[:len(headerAppPrefix)], headerAppPrefix) || len(values) == 0 {
			continue
		}
		if m.Properties == nil {
			m.Properties = make(map[string]string)
		}
		m.Properties[strings.ToLower(name[len(headerAppPrefix):])] = values[0]
	}
	return m
}

// IsBatch reports whether an HTTP telemetry request carries a batch.
func IsBatch(h http.Header) bool {
	return isBatchContentType(h.Get("Content-Type"))
}

func isBatchContentType(ct string) bool {
	if ct == "" || ct == "application/json" || strings.HasPrefix(ct, "application/json;") {
		return false // what single messages carry, without parsing
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	return err == nil && mediaType == BatchContentType
}

// batchItem is one element of a batch as the SDKs send it. azure-iot-device-
// http 1.14.4 writes {"body": "<base64>", "properties": {"iothub-app-k": "v"}}
// and no base64Encoded field; the C and .NET SDKs add "base64Encoded": true.
// The body is therefore base64 unless base64Encoded is explicitly false.
type batchItem struct {
	Body          *string                    `json:"body"`
	Base64Encoded *bool                      `json:"base64Encoded"`
	Properties    map[string]json.RawMessage `json:"properties"`
}

// bodyKey is how each batch item's body begins; maxBatchPresize bounds the
// messages DecodeBatch allocates room for before it has decoded them (a
// body of nothing but "body" strings gets room for 500, about 100 KB, then
// fails to decode; a batch of more messages appends beyond).
var bodyKey = []byte(`"body"`)

const maxBatchPresize = 500

// DecodeBatch decodes a BatchContentType body into its messages. Properties
// named iothub-app-<name> become application properties (case kept), the
// iothub-messageid/-correlationid/-contenttype/-contentencoding/-to/-userid
// properties set the system fields, and others are ignored. Each message,
// and the batch as a whole, may have MaxMessageSize bytes as Size counts
// them (Azure IoT Hub's limit for both); beyond, the error wraps ErrTooLarge.
func DecodeBatch(body []byte) ([]telemetry.Message, error) {
	// Walk the array item by item: decoding it whole first would copy every
	// item once more, and batches arrive by the thousand under load.
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errors.New("decode batch: want a JSON array of messages")
	}
	// Sized from the items' "body" keys (a body value that is the string
	// "body" only makes it larger), up to maxBatchPresize: growing by
	// append copied every message about once more and left the smaller
	// arrays as garbage, 40 % of what decoding a batch allocated.
	msgs := make([]telemetry.Message, 0, min(bytes.Count(body, bodyKey), maxBatchPresize))
	total := 0
	for i := 0; dec.More(); i++ {
		var it batchItem
		if err := dec.Decode(&it); err != nil {
			return nil, fmt.Errorf(`decode batch: message %d: want an object {"body": …, "properties": {…}}: %w`, i, err)
		}
		m, err := batchMessage(it)
		if err != nil {
			return nil, fmt.Errorf("decode batch: message %d: %w", i, err)
		}
		if total += m.Size(); total > MaxMessageSize {
			return nil, fmt.Errorf("decode batch: %w: the messages up to message %d total %d bytes with their properties; a batch may have at most %d (256 KB)",
				ErrTooLarge, i, total, MaxMessageSize)
		}
		msgs = append(msgs, m)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("decode batch: the array is not closed: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode batch: data after the array")
	}
	if len(msgs) == 0 {
		return nil, errors.New("decode batch: the array holds no messages")
	}
	return msgs, nil
}

func batchMessage(it batchItem) (telemetry.Message, error) {
	if it.Body == nil {
		return telemetry.Message{}, errors.New(`missing "body"`)
	}
	var m telemetry.Message
	if it.Base64Encoded != nil && !*it.Base64Encoded {
		m.Body = []byte(*it.Body)
	} else {
		b, err := base64.StdEncoding.DecodeString(*it.Body)
		if err != nil {
			return telemetry.Message{}, fmt.Errorf(`"body" is not base64 (send "base64Encoded": false for a plain body): %w`, err)
		}
		m.Body = b
	}
	if len(m.Body) > MaxMessageSize {
		return telemetry.Message{}, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, len(m.Body), MaxMessageSize)
	}
	for name, rawValue := range it.Properties {
		var value string
		if err := json.Unmarshal(rawValue, &value); err != nil {
			return telemetry.Message{}, fmt.Errorf("property %q: value must be a string, got %s", name, abbreviate(rawValue))
		}
		switch lower := strings.ToLower(name); lower {
		case headerMessageID:
			m.MessageID = value
		case headerCorrelationID:
			m.CorrelationID = value
		case headerContentType:
			m.ContentType = value
		case headerContentEncoding:
			m.ContentEncoding = value
		case headerTo:
			m.To = value
		case headerUserID:
			m.UserID = value
		default:
			if len(name) > len(headerAppPrefix) && strings.HasPrefix(lower, headerAppPrefix) {
				if m.Properties == nil {
					m.Properties = make(map[string]string)
				}
				m.Properties[name[len(headerAppPrefix):]] = value
			}
		}
	}
	if err := CheckSize(&m); err != nil {
		return telemetry.Message{}, err
	}
	return m, nil
}

// abbreviate shortens raw JSON for an error message.
func abbreviate(raw []byte) string {
	const max = 40
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}
