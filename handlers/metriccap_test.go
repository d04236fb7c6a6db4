package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/telemetry"
)

// TestDevicePageShowsMetricCap: the device page says when the device has
// reached the limit of metrics, and not before.
func TestDevicePageShowsMetricCap(t *testing.T) {
	h := newPageHub(t)
	h.addUser("alice", db.RoleViewer, "correct-horse-battery")
	h.addDevice("full")
	h.addDevice("room")
	ctx := context.Background()
	send := func(device string, metrics int) {
		var rs []telemetry.Reading
		for i := range metrics {
			rs = append(rs, telemetry.Reading{Metric: fmt.Sprintf("m%04d", i), Value: 1})
		}
		now := time.Now()
		rec := telemetry.Record{Message: telemetry.Message{DeviceID: device, EnqueuedAt: now, Body: []byte("{}")}, Time: now, Readings: rs}
		if _, err := h.tel.Append(ctx, []telemetry.Record{rec}); err != nil {
			t.Fatal(err)
		}
	}
	send("full", telemetry.MaxMetricsPerDevice+1)
	send("room", telemetry.MaxMetricsPerDevice-1)
	b := h.browser()
	b.login("alice", "correct-horse-battery")
	const notice = "This device reached the limit of 1,000 metrics; new metric names are not recorded"
	if p := b.get("/devices/full"); !strings.Contains(p.body, notice) || !strings.Contains(p.body, `data-testid="metric-limit"`) {
		t.Errorf("device at the limit: page does not say %q", notice)
	}
	if p := b.get("/devices/room"); p.status != 200 || strings.Contains(p.body, `data-testid="metric-limit"`) {
		t.Errorf("device under the limit: status %d, notice shown %v", p.status, strings.Contains(p.body, notice))
	}
}
