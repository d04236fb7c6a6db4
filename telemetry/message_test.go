package telemetry

import (
	"encoding/json"
	"testing"
	"time"
)

// TestMessageViewJSON pins the JSON of a logged message as docs/api.md
// describes it: the operator API lists exactly this, and the live message
// event carries it.
func TestMessageViewJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 42, 15, 801_000_000, time.UTC)
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{
			"every field",
			Message{ID: 7, DeviceID: "dev1", MessageID: "m1", CorrelationID: "c1", ContentType: "application/json",
				ContentEncoding: "utf-8", To: "/devices/dev1/messages/events", UserID: "u1",
				Properties: map[string]string{"k": "v"}, Body: []byte(`{"t":21.5}`), AuthMethod: "sas-primary", EnqueuedAt: at},
			`{"id":7,"enqueuedTime":"2026-11-26T10:42:15.801Z","messageId":"m1","correlationId":"c1",` +
				`"contentType":"application/json","contentEncoding":"utf-8","properties":{"k":"v"},` +
				`"body":"{\"t\":21.5}","authMethod":"sas-primary"}`,
		},
		{
			"binary body, no properties",
			Message{ID: 8, DeviceID: "dev1", Body: []byte{0xff, 0xfe}, AuthMethod: "x509", EnqueuedAt: at},
			`{"id":8,"enqueuedTime":"2026-11-26T10:42:15.801Z","properties":{},"body":"//4=","bodyBase64":true,"authMethod":"x509"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.msg.View())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDisplayBody(t *testing.T) {
	tests := []struct {
		name       string
		body       []byte
		want       string
		wantBase64 bool
	}{
		{"json", []byte(`{"t": 21.5}`), `{"t": 21.5}`, false},
		{"text with whitespace", []byte("a\tb\r\nc"), "a\tb\r\nc", false},
		{"empty", nil, "", false},
		{"invalid utf-8", []byte{0xff, 0xfe}, "//4=", true},
		{"control character", []byte("a\x00b"), "YQBi", true},
		{"delete character", []byte("a\x7f"), "YX8=", true},
	}
	for _, tt := range tests {
		got, gotBase64 := displayBody(tt.body)
		if got != tt.want || gotBase64 != tt.wantBase64 {
			t.Errorf("%s: displayBody = %q, %v; want %q, %v", tt.name, got, gotBase64, tt.want, tt.wantBase64)
		}
	}
}
