package handlers_test

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTelemetryAPI(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	h.addDevice("quiet")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for i := range 20 {
		body := fmt.Sprintf(`{"ts": %d, "temp": %d.5, "door": {"open": %v}}`, start.Add(time.Duration(i)*time.Second).UnixMilli(), 20+i, i%2 == 0)
		if r := h.event("dev1", authz, body, map[string]string{"iothub-messageid": fmt.Sprint("m-", i)}); r.status != 204 {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
	}
	if r := h.event("dev1", authz, "\x00\x01binary", nil); r.status != 204 {
		t.Fatalf("send binary: %d", r.status)
	}

	t.Run("metrics", func(t *testing.T) {
		r := h.get("/api/v1/devices/dev1/metrics")
		var got struct {
			Metrics []struct {
				Name      string
				LastValue *float64
				LastTime  *time.Time
			}
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("status %d body %s (%v)", r.status, r.body, err)
		}
		if len(got.Metrics) != 2 || got.Metrics[0].Name != "door.open" || got.Metrics[1].Name != "temp" {
			t.Fatalf("metrics = %s, want door.open and temp", r.body)
		}
		if m := got.Metrics[1]; *m.LastValue != 39.5 || !m.LastTime.Equal(start.Add(19*time.Second)) {
			t.Errorf("temp last = %v at %v, want 39.5 at %v", *m.LastValue, m.LastTime, start.Add(19*time.Second))
		}
		if r := h.get("/api/v1/devices/quiet/metrics"); r.status != 200 || !strings.Contains(string(r.body), `"metrics":[]`) {
			t.Errorf("device without metrics: %d %s, want an empty list", r.status, r.body)
		}
	})

	t.Run("readings", func(t *testing.T) {
		q := fmt.Sprintf("/api/v1/devices/dev1/readings?metric=temp&from=%d&to=%s&points=4",
			start.UnixMilli(), start.Add(20*time.Second-time.Millisecond).Format(time.RFC3339Nano))
		r := h.get(q)
		var got struct {
			Buckets []struct {
				T             int64
				Min, Max, Avg float64
				Count         int
			}
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("status %d body %s (%v)", r.status, r.body, err)
		}
		if len(got.Buckets) != 4 {
			t.Fatalf("buckets = %s, want 4", r.body)
		}
		for i, b := range got.Buckets {
			lo := 20 + float64(i*5) + 0.5
			if b.T != start.Add(time.Duration(i*5)*time.Second).UnixMilli() || b.Count != 5 || b.Min != lo || b.Max != lo+4 || b.Avg != lo+2 {
				t.Errorf("bucket %d = %+v, want 5 readings from %v to %v", i, b, lo, lo+4)
			}
		}
		// The default range is the last hour.
		if r := h.get("/api/v1/devices/dev1/readings?metric=temp"); r.status != 200 || !strings.Contains(string(r.body), `"min":20.5`) {
			t.Errorf("default range: %d %s", r.status, r.body)
		}
	})

	t.Run("export", func(t *testing.T) {
		r := h.get("/api/v1/devices/dev1/readings?metric=temp&format=csv")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
			!strings.Contains(r.header.Get("Content-Disposition"), `filename="dev1-temp.csv"`) {
			t.Fatalf("csv: %d %v", r.status, r.header)
		}
		rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil || len(rows) != 21 || rows[0][0] != "time" || rows[1][1] != "20.5" || rows[20][1] != "39.5" {
			t.Errorf("csv rows = %v (%v), want a header and 20 readings from 20.5 to 39.5", rows, err)
		}
		if ts, err := time.Parse(time.RFC3339Nano, rows[1][0]); err != nil || !ts.Equal(start) {
			t.Errorf("first csv time = %q, want %v", rows[1][0], start)
		}
		r = h.get("/api/v1/devices/dev1/readings?metric=door.open&format=json")
		var got struct {
			Device, Metric string
			Readings       []struct {
				Time  time.Time
				Value float64
			}
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 || got.Metric != "door.open" || len(got.Readings) != 20 || got.Readings[0].Value != 1 {
			t.Errorf("json export: %d %s (%v)", r.status, r.body, err)
		}
		if !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
			t.Errorf("json export is not a download: %v", r.header)
		}
	})

	t.Run("messages", func(t *testing.T) {
		r := h.get("/api/v1/devices/dev1/messages?limit=2")
		var got struct {
			Messages []struct {
				ID           int64
				EnqueuedTime time.Time
				MessageID    string
				Body         string
				BodyBase64   bool
				AuthMethod   string
				Properties   map[string]string
			}
			Next int64
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 || len(got.Messages) != 2 {
			t.Fatalf("status %d body %s (%v)", r.status, r.body, err)
		}
		bin := got.Messages[0]
		if raw, _ := base64.StdEncoding.DecodeString(bin.Body); !bin.BodyBase64 || string(raw) != "\x00\x01binary" || bin.AuthMethod != "sas-primary" {
			t.Errorf("binary message = %+v, want base64 body flagged", bin)
		}
		if m := got.Messages[1]; m.BodyBase64 || !strings.Contains(m.Body, `"temp": 39.5`) || m.MessageID != "m-19" || m.EnqueuedTime.IsZero() {
			t.Errorf("JSON message = %+v, want text body and message id m-19", m)
		}
		if got.Next != got.Messages[1].ID {
			t.Errorf("next = %d, want %d", got.Next, got.Messages[1].ID)
		}
		r = h.get(fmt.Sprintf("/api/v1/devices/dev1/messages?limit=1000&before=%d", got.Next))
		if n := strings.Count(string(r.body), `"authMethod"`); n != 19 {
			t.Errorf("second page has %d messages, want 19", n)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			path   string
			status int
			want   string
		}{
			{"/api/v1/devices/ghost/metrics", 404, "ghost"},
			{"/api/v1/devices/ghost/messages", 404, "ghost"},
			{"/api/v1/devices/dev1/readings?metric=nope", 404, "nope"},
			{"/api/v1/devices/dev1/readings?metric=nope&format=csv", 404, "nope"},
			{"/api/v1/devices/dev1/readings", 400, "metric is required"},
			{"/api/v1/devices/dev1/readings?metric=temp&from=yesterday", 400, "RFC 3339"},
			{"/api/v1/devices/dev1/readings?metric=temp&from=2000&to=1000", 400, "after"},
			{"/api/v1/devices/dev1/readings?metric=temp&points=0", 400, "points"},
			{"/api/v1/devices/dev1/readings?metric=temp&format=xml", 400, "csv or json"},
			{"/api/v1/devices/dev1/messages?limit=5000", 400, "limit"},
			{"/api/v1/devices/dev1/messages?before=x", 400, "before"},
		}
		for _, tt := range tests {
			r := h.get(tt.path)
			if r.status != tt.status || !strings.Contains(r.errorText(), tt.want) {
				t.Errorf("GET %s: %d %q, want %d mentioning %q", tt.path, r.status, r.errorText(), tt.status, tt.want)
			}
		}
		req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/devices/dev1/metrics", nil)
		if r := h.send(req); r.status != 401 {
			t.Errorf("without credentials: %d, want 401", r.status)
		}
	})
}
