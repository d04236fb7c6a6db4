package ingest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"

	"fieldhub/telemetry"
)

// sdkRequests mirrors testdata/http_requests.json, recorded from
// azure-iot-device-http 1.14.4 (see testdata/gen_http_requests.cjs).
type sdkRequest struct {
	Path       string            `json:"path"`
	Headers    map[string]string `json:"headers"`
	BodyBase64 string            `json:"bodyBase64"`
}

func loadSDKRequests(t *testing.T) map[string]sdkRequest {
	t.Helper()
	var reqs map[string]sdkRequest
	if err := json.Unmarshal(readTestdata(t, "http_requests.json"), &reqs); err != nil {
		t.Fatal(err)
	}
	return reqs
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpHeader builds headers the way net/http's server does (canonical keys).
func httpHeader(kv map[string]string) http.Header {
	h := http.Header{}
	for k, v := range kv {
		h.Add(k, v)
	}
	return h
}

func TestMessageFromHTTPNodeSDK(t *testing.T) {
	req := loadSDKRequests(t)["single"]
	body, err := base64.StdEncoding.DecodeString(req.BodyBase64)
	if err != nil {
		t.Fatal(err)
	}
	got := MessageFromHTTP(httpHeader(req.Headers), body)
	want := telemetry.Message{
		MessageID:       "mid-7",
		CorrelationID:   "cid-7",
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		To:              "/devices/dev1/messages/events",
		UserID:          "user-7",
		// Header names lose their case in net/http, so names are lower-cased.
		Properties: map[string]string{"alert": "high", "sensor-kind": "dht22"},
		Body:       []byte(`{"temp":21.5}`),
	}
	assertMessage(t, got, want)
}

func TestMessageFromHTTP(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    telemetry.Message
	}{
		{
			name:    "no headers",
			headers: nil,
			want:    telemetry.Message{},
		},
		{
			name:    "content type falls back to Content-Type",
			headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
			want:    telemetry.Message{ContentType: "text/plain; charset=utf-8"},
		},
		{
			name:    "iothub-contenttype wins",
			headers: map[string]string{"Content-Type": "text/plain", "iothub-contenttype": "application/json"},
			want:    telemetry.Message{ContentType: "application/json"},
		},
		{
			name:    "batch content type is not the message's",
			headers: map[string]string{"Content-Type": BatchContentType + "; charset=utf-8"},
			want:    telemetry.Message{},
		},
		{
			name:    "empty app property name ignored",
			headers: map[string]string{"iothub-app-": "x", "Iothub-App-K": "v", "X-Other": "y"},
			want:    telemetry.Message{Properties: map[string]string{"k": "v"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertMessage(t, MessageFromHTTP(httpHeader(tt.headers), nil), tt.want)
		})
	}
}

func TestIsBatch(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"", false},
		{"application/json", false},
		{BatchContentType, true},
		{"Application/Vnd.Microsoft.IotHub.Json; charset=utf-8", true},
	}
	for _, tt := range tests {
		if got := IsBatch(httpHeader(map[string]string{"Content-Type": tt.contentType})); got != tt.want {
			t.Errorf("IsBatch(%q): got %v, want %v", tt.contentType, got, tt.want)
		}
	}
}

func TestDecodeBatchNodeSDK(t *testing.T) {
	req := loadSDKRequests(t)["batch"]
	if got := req.Headers["Content-Type"]; got != BatchContentType {
		t.Fatalf("the SDK sent Content-Type %q, want %q", got, BatchContentType)
	}
	msgs, err := DecodeBatch(readTestdata(t, "batch_node_sdk.json"))
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	want := []telemetry.Message{
		{
			// The SDK carries only application properties in a batch, with their case.
			Properties: map[string]string{"alert": "high", "Sensor-Kind": "dht22"},
			Body:       []byte(`{"temp":21.5,"hum":40,"ts":"2024-05-01T10:00:00Z"}`),
		},
		{Body: []byte{0, 1, 2, 255}},
		{Body: []byte{}},
	}
	assertMessages(t, msgs, want)
}

func TestDecodeBatchExplicit(t *testing.T) {
	msgs, err := DecodeBatch(readTestdata(t, "batch_explicit.json"))
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	want := []telemetry.Message{
		{
			MessageID: "m1", CorrelationID: "c1", ContentType: "application/json", ContentEncoding: "utf-8",
			To: "/devices/dev1/messages/events", UserID: "u1",
			Properties: map[string]string{"Room": "kitchen"},
			Body:       []byte(`{"temp": 21}`),
		},
		{Body: []byte(`{"temp": 22}`)},
		{Body: []byte{}},
	}
	assertMessages(t, msgs, want)
}

func TestDecodeBatchErrors(t *testing.T) {
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxMessageSize+1))
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{"empty body", ``, "want a JSON array"},
		{"object", `{"body": "YQ=="}`, "want a JSON array"},
		{"empty array", `[]`, "holds no messages"},
		{"element not an object", `[{"body": "YQ=="}, 5]`, "message 1: want an object"},
		{"missing body", `[{"properties": {}}]`, `missing "body"`},
		{"null body", `[{"body": null}]`, `missing "body"`},
		{"body not base64", `[{"body": "{\"t\": 1}"}]`, `"body" is not base64`},
		{"body not base64 with flag", `[{"body": "!!", "base64Encoded": true}]`, `"body" is not base64`},
		{"body not a string", `[{"body": 5}]`, "message 0: want an object"},
		{"property not a string", `[{"body": "", "properties": {"iothub-app-n": 5}}]`, `property "iothub-app-n": value must be a string, got 5`},
		{"too big", `[{"body": "` + big + `"}]`, fmt.Sprintf("body is %d bytes, the limit is %d", MaxMessageSize+1, MaxMessageSize)},
		{"trailing garbage", `[{"body": ""}] x`, "data after the array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := DecodeBatch([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DecodeBatch: got error %v, want one containing %q", err, tt.wantErr)
			}
			if msgs != nil {
				t.Errorf("DecodeBatch: got %d messages with an error, want none", len(msgs))
			}
		})
	}
}

func TestDecodeBatchAtSizeLimit(t *testing.T) {
	body := `[{"body": "` + base64.StdEncoding.EncodeToString(make([]byte, MaxMessageSize)) + `"}]`
	msgs, err := DecodeBatch([]byte(body))
	if err != nil {
		t.Fatalf("DecodeBatch of a message of exactly MaxMessageSize: %v", err)
	}
	if len(msgs) != 1 || len(msgs[0].Body) != MaxMessageSize {
		t.Errorf("got %d messages, want one of %d bytes", len(msgs), MaxMessageSize)
	}
}

func assertMessages(t *testing.T, got, want []telemetry.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		assertMessage(t, got[i], want[i])
	}
}

func assertMessage(t *testing.T, got, want telemetry.Message) {
	t.Helper()
	type fields struct{ ID, CID, CT, CE, To, UID string }
	g := fields{got.MessageID, got.CorrelationID, got.ContentType, got.ContentEncoding, got.To, got.UserID}
	w := fields{want.MessageID, want.CorrelationID, want.ContentType, want.ContentEncoding, want.To, want.UserID}
	if g != w {
		t.Errorf("system properties:\n got %+v\nwant %+v", g, w)
	}
	if len(got.Properties) != len(want.Properties) || !maps.Equal(got.Properties, want.Properties) {
		t.Errorf("Properties: got %v, want %v", got.Properties, want.Properties)
	}
	if string(got.Body) != string(want.Body) {
		t.Errorf("Body: got %q, want %q", got.Body, want.Body)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, name := range []string{"batch_node_sdk.json", "batch_explicit.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"body":"!!"}]`))
	f.Add([]byte(`[{"body":"", "properties":{"iothub-app-":"x","iothub-app-a":1}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := DecodeBatch(body)
		if err != nil {
			if msgs != nil {
				t.Fatalf("error %v came with %d messages", err, len(msgs))
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no error and no messages")
		}
		for i, m := range msgs {
			if len(m.Body) > MaxMessageSize {
				t.Fatalf("message %d: %d bytes, over the limit", i, len(m.Body))
			}
			for k := range m.Properties {
				if k == "" {
					t.Fatalf("message %d: empty property name", i)
				}
			}
			// Bodies go on to Flatten; it must cope with whatever a batch holds.
			readings, _, _, _ := telemetry.Flatten(m.Body)
			for _, r := range readings {
				if r.Metric == "" || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
					t.Fatalf("message %d: bad reading %+v", i, r)
				}
			}
		}
	})
}

// TestCanonicalHeaderNames: MessageFromHTTP reads the headers by their
// canonical names, which must be the system properties' names.
func TestCanonicalHeaderNames(t *testing.T) {
	for name, canonical := range map[string]string{
		headerMessageID: canonicalMessageID, headerCorrelationID: canonicalCorrelationID,
		headerContentType: canonicalContentType, headerContentEncoding: canonicalContentEncoding,
		headerTo: canonicalTo, headerUserID: canonicalUserID,
	} {
		if got := textproto.CanonicalMIMEHeaderKey(name); got != canonical {
			t.Errorf("%s: canonical %q, constant %q", name, got, canonical)
		}
	}
}

// TestDecodeBatchSizedOnce: a batch's messages are decoded into one array
// of their number (appending had copied them once more on average and left
// the smaller arrays as garbage), whatever the property values say, and a
// batch of more messages than the array is sized for beforehand decodes
// whole.
func TestDecodeBatchSizedOnce(t *testing.T) {
	batchOf := func(n int, props string) []byte {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"body":"%s","properties":{%s}}`, base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"n":%d}`, i)), props)
		}
		return []byte("[" + strings.Join(items, ",") + "]")
	}
	for _, tc := range []struct {
		name    string
		n       int
		props   string
		wantCap int
	}{
		{"SDK batch", 50, `"iothub-app-room":"kitchen"`, 50},
		{"a property named and valued body", 50, `"iothub-app-body":"body"`, 100},
		{"more than sized for", maxBatchPresize + 100, ``, 0},
	} {
		msgs, err := DecodeBatch(batchOf(tc.n, tc.props))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(msgs) != tc.n {
			t.Errorf("%s: %d messages, want %d", tc.name, len(msgs), tc.n)
		}
		if tc.wantCap > 0 && cap(msgs) != tc.wantCap {
			t.Errorf("%s: room for %d messages, want %d", tc.name, cap(msgs), tc.wantCap)
		}
		if last := msgs[len(msgs)-1].Body; string(last) != fmt.Sprintf(`{"n":%d}`, tc.n-1) {
			t.Errorf("%s: the last body is %s", tc.name, last)
		}
	}
}

// BenchmarkDecodeBatch decodes an SDK batch of 50 messages of 10 numeric
// fields each (bench BenchmarkHubHTTPS's batches); B/op is what a batch
// message costs the collector before it is queued.
func BenchmarkDecodeBatch(b *testing.B) {
	items := make([]string, 50)
	for i := range items {
		body := fmt.Sprintf(`{"temperature":%d.5,"humidity":41.2,"pressure":1013.2,"battery":3.71,"rssi":-67,"voltage":229.8,"current":0.42,"power":96.5,"co2":612,"noise":38.4}`, i)
		items[i] = fmt.Sprintf(`{"body":"%s","properties":{"iothub-app-seq":"%d"}}`, base64.StdEncoding.EncodeToString([]byte(body)), i)
	}
	batch := []byte("[" + strings.Join(items, ",") + "]")
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := DecodeBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
}
