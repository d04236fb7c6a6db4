package handlers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldhub/ingest"
)

// TestDevicePropertiesCountTowardsMessageSize attacks the 256 KB message
// limit through properties, which Azure IoT Hub counts with the body: the
// names and values of application properties and the values of system
// properties. A message over the limit gets 413 and nothing is stored.
func TestDevicePropertiesCountTowardsMessageSize(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))

	// props returns n application property headers of about size bytes in all.
	props := func(n, size int) map[string]string {
		m := make(map[string]string, n)
		value := strings.Repeat("v", size/n-len("p0000"))
		for i := range n {
			m[fmt.Sprintf("iothub-app-p%04d", i)] = value
		}
		return m
	}
	refused := []struct {
		name    string
		body    string
		headers map[string]string
	}{
		{"5,000 property headers", `{"t":1}`, props(5000, 500_000)},
		{"properties alone over the limit", "", props(100, ingest.MaxMessageSize+100)},
		{"body and properties together over the limit", strings.Repeat("x", ingest.MaxMessageSize-1000), props(10, 2000)},
		{"a message id of 300 KB", "", map[string]string{"iothub-messageid": strings.Repeat("m", 300_000)}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := h.event("dev1", authz, tt.body, tt.headers)
			if r.status != 413 || !strings.Contains(r.errorText(), "properties") {
				t.Errorf("status %d (%s), want 413 naming the properties", r.status, r.errorText())
			}
			if msgs := h.messages("dev1"); len(msgs) != 0 {
				t.Errorf("%d messages stored, want none", len(msgs))
			}
		})
	}

	t.Run("exactly the limit with properties", func(t *testing.T) {
		headers := map[string]string{"iothub-app-site": "north", "iothub-messageid": "m1"}
		body := strings.Repeat("x", ingest.MaxMessageSize-len("site")-len("north")-len("m1"))
		if r := h.event("dev1", authz, body, headers); r.status != 204 {
			t.Fatalf("status %d (%s), want 204", r.status, r.errorText())
		}
		if r := h.event("dev1", authz, body+"x", headers); r.status != 413 {
			t.Errorf("one byte more: status %d, want 413", r.status)
		}
		if msgs := h.messages("dev1"); len(msgs) != 1 {
			t.Errorf("%d messages stored, want 1", len(msgs))
		}
	})
}

// TestDeviceBatchSize checks each message of a batch, properties included,
// and the batch as a whole against 256 KB (Azure IoT Hub's batch limit).
func TestDeviceBatchSize(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	item := func(bodySize int, props map[string]string) map[string]any {
		return map[string]any{"body": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), bodySize)), "properties": props}
	}
	bigProps := map[string]string{}
	for i := range 50 {
		bigProps[fmt.Sprintf("iothub-app-p%02d", i)] = strings.Repeat("v", 2000)
	}
	tests := []struct {
		name    string
		items   []any
		want    int
		wantMsg string
	}{
		{"a message over the limit with its properties", []any{item(ingest.MaxMessageSize-50_000, bigProps)}, 413, "message 0"},
		{"messages within the limit, the batch over it", []any{item(150_000, nil), item(150_000, nil)}, 413, "batch"},
		{"the batch at the limit", []any{item(ingest.MaxMessageSize/2, nil), item(ingest.MaxMessageSize/2, nil)}, 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.messages("dev1"))
			b, _ := json.Marshal(tt.items)
			r := h.post("/devices/dev1/messages/events", authz, bytes.NewReader(b), int64(len(b)),
				map[string]string{"Content-Type": ingest.BatchContentType})
			if r.status != tt.want || !strings.Contains(r.errorText(), tt.wantMsg) {
				t.Errorf("status %d (%s), want %d containing %q", r.status, r.errorText(), tt.want, tt.wantMsg)
			}
			stored := len(h.messages("dev1")) - before
			if want := map[bool]int{true: len(tt.items)}[tt.want == 204]; stored != want {
				t.Errorf("%d messages stored, want %d", stored, want)
			}
		})
	}
}
