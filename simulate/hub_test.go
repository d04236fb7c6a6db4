package simulate_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/registry"
	"fieldhub/simulate"
	"fieldhub/telemetry"
)

// TestSimulatorAgainstTheRealHub runs simulated devices against the real
// device router over TLS, with the real ingest pipeline: the hub must accept
// their SAS tokens and store their messages and readings.
func TestSimulatorAgainstTheRealHub(t *testing.T) {
	ctx := context.Background()
	store := dbtest.MustOpen(t)
	hub := live.New(live.Options{})
	defer hub.Close()
	tel := dbtest.Telemetry(t, store)
	pipe := ingest.New(tel, hub, ingest.Options{})
	defer pipe.Close(ctx)
	_, srv := handlers.New(testkit.WithServices(handlers.Config{Telemetry: tel, Ingest: pipe}, store, hub))
	ts := httptest.NewTLSServer(srv.DeviceRouter())
	defer ts.Close()

	devices, err := simulate.Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", simulate.Specs("sim-", 3))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var stats simulate.Stats
	done := make(chan error)
	go func() {
		done <- simulate.Run(runCtx, simulate.Config{URL: ts.URL, Devices: devices, Interval: 20 * time.Millisecond, Client: ts.Client()}, &stats)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for stats.Sent.Load() < 15 && stats.Failed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f := stats.Failed.Load(); f != 0 {
		t.Fatalf("%d messages failed (see the log)", f)
	}
	if s := stats.Sent.Load(); s < 15 {
		t.Fatalf("only %d messages acknowledged in 30 s", s)
	}
	for _, d := range devices {
		msgs, err := tel.Messages(ctx, d.ID, telemetry.MessageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Errorf("%s: no stored messages", d.ID)
			continue
		}
		if msgs[0].Properties["source"] != "simulator" || msgs[0].ContentType != "application/json" {
			t.Errorf("%s: stored message %+v lacks the simulator's properties", d.ID, msgs[0])
		}
		metrics, err := tel.Metrics(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, m := range metrics {
			names[m.Name] = true
		}
		for _, want := range []string{"temperature", "humidity", "battery"} {
			if !names[want] {
				t.Errorf("%s: no %s metric; have %v", d.ID, want, names)
			}
		}
	}
}
