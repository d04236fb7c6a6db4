package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/quota"
)

// TestDeviceThrottled: a device over its message rate gets 429 with
// Retry-After, nothing of what was refused is stored, a batch counts as its
// messages, another device is not affected, and the API shows the count.
func TestDeviceThrottled(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	refusals := &ingest.Refusals{}
	h := newIngestHub(t, func(c *handlers.Config) {
		c.DeviceQuota = quota.New(quota.Config{MessageRate: 1, MessageBurst: 2, Now: clock.Now})
		c.Refusals = refusals
	})
	dev := h.addDevice("dev1")
	other := h.addDevice("dev2")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	batch := func(n int) result {
		var items []map[string]any
		for range n {
			items = append(items, map[string]any{"body": `{"b":1}`, "base64Encoded": false})
		}
		b, _ := json.Marshal(items)
		return h.post("/devices/dev1/messages/events", authz, bytes.NewReader(b), int64(len(b)),
			map[string]string{"Content-Type": ingest.BatchContentType})
	}
	steps := []struct {
		name      string
		advance   time.Duration
		send      func() result
		want      int
		wantRetry string
	}{
		{"first", 0, func() result { return h.event("dev1", authz, `{"n":1}`, nil) }, 204, ""},
		{"second, within the burst", 0, func() result { return h.event("dev1", authz, `{"n":2}`, nil) }, 204, ""},
		{"third at once", 0, func() result { return h.event("dev1", authz, `{"n":3}`, nil) }, 429, "1"},
		{"a second later", time.Second, func() result { return h.event("dev1", authz, `{"n":4}`, nil) }, 204, ""},
		{"a batch of 2 with one token", 0, batch2(batch), 429, "2"},
		{"a batch of 3 on a full bucket", 2 * time.Second, func() result { return batch(3) }, 204, ""},
		{"then one more", 0, func() result { return h.event("dev1", authz, `{"n":5}`, nil) }, 429, "2"},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		r := s.send()
		if r.status != s.want || r.header.Get("Retry-After") != s.wantRetry {
			t.Fatalf("%s: status %d Retry-After %q (%s), want %d %q", s.name, r.status, r.header.Get("Retry-After"), r.errorText(), s.want, s.wantRetry)
		}
		if r.status == 429 && !strings.Contains(r.errorText(), "limit of 1 messages a second") {
			t.Errorf("%s: error %q does not say the limit", s.name, r.errorText())
		}
	}
	if n := len(h.messages("dev1")); n != 6 {
		t.Errorf("%d messages stored, want the 6 admitted", n)
	}
	// The metrics count each refused request (a batch once) as throttled.
	if n := refusals.Count(ingest.ProtocolHTTPS, ingest.ReasonThrottled); n != 3 {
		t.Errorf("%d refusals counted as throttled, want the 3 answered 429", n)
	}
	if r := h.event("dev2", token(t, "dev2", other.PrimaryKey, time.Now().Add(time.Hour)), `{}`, nil); r.status != 204 {
		t.Errorf("another device: status %d, want 204", r.status)
	}

	admin := auth.NewAPIToken()
	if _, err := h.db.CreateAPIToken(context.Background(), "admin", db.RoleAdmin, admin); err != nil {
		t.Fatal(err)
	}
	r := h.get("/api/v1/devices/dev1")
	var got struct{ Throttled quota.Counts }
	if err := json.Unmarshal(r.body, &got); err != nil || got.Throttled != (quota.Counts{Messages: 4}) {
		t.Errorf("GET /api/v1/devices/dev1: throttled %+v (%s), want 4 messages (1 + a batch of 2 + 1)", got.Throttled, r.body)
	}
	if r := h.get("/api/v1/devices/dev2"); !strings.Contains(string(r.body), `"throttled":{"messages":0,"connects":0}`) {
		t.Errorf("GET /api/v1/devices/dev2 = %s, want zero throttled counts", r.body)
	}
}

func batch2(batch func(int) result) func() result { return func() result { return batch(2) } }
