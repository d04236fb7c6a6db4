package db_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/db"
)

// logBuffer collects log lines for a test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMetricCapLoggedOncePerDevice: a device whose new metric names are
// dropped at MaxMetricsPerDevice is logged once, not once per message.
func TestMetricCapLoggedOncePerDevice(t *testing.T) {
	ctx := context.Background()
	var logs logBuffer
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "f.db"), db.Options{Synchronous: "NORMAL",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.Now = func() time.Time { return t0 }
	for _, id := range []string{"dev1", "dev2"} {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.RecoverTelemetry(ctx, jsonReadings); err != nil {
		t.Fatal(err)
	}
	fill := func(device string, from, n int) {
		var msgs []db.NewMessage
		for i := from; i < from+n; i++ {
			msgs = append(msgs, message(device, t0, map[string]float64{fmt.Sprintf("m%05d", i): 1}))
		}
		mustAppend(t, d, msgs...)
	}
	fill("dev1", 0, db.MaxMetricsPerDevice)
	fill("dev2", 0, db.MaxMetricsPerDevice-1)
	if strings.Contains(logs.String(), "limit") {
		t.Fatalf("logged before any name was dropped:\n%s", logs.String())
	}
	for round := range 5 {
		fill("dev1", db.MaxMetricsPerDevice+10*round, 10) // ten new names a round, each dropped
		fill("dev2", db.MaxMetricsPerDevice+10*round, 10) // the first fits, the rest are dropped
	}
	for _, id := range []string{"dev1", "dev2"} {
		if n := strings.Count(logs.String(), "device="+id+"\n"); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", id, n, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "limit of 1000 metrics") {
		t.Errorf("log does not name the limit:\n%s", logs.String())
	}
}
