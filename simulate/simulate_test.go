package simulate

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/registry"
)

// endpoint is a device endpoint that checks what the simulator sends the way
// the hub does: SAS token for the device in the path, JSON body.
type endpoint struct {
	t    *testing.T
	keys map[string]string // device id -> key

	mu       sync.Mutex
	received map[string][]message
	bad      []string
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/devices/")
	id, ok2 := strings.CutSuffix(id, "/messages/events")
	fail := func(status int, why string) {
		e.mu.Lock()
		e.bad = append(e.bad, why)
		e.mu.Unlock()
		http.Error(w, why, status)
	}
	if !ok || !ok2 || r.Method != http.MethodPost || r.URL.Query().Get("api-version") == "" {
		fail(http.StatusNotFound, "unexpected request "+r.Method+" "+r.URL.String())
		return
	}
	tok, err := auth.ParseSAS(r.Header.Get("Authorization"))
	if err != nil {
		fail(http.StatusUnauthorized, err.Error())
		return
	}
	if _, err := tok.Verify(id, []string{e.keys[id]}, time.Now(), nil); err != nil {
		fail(http.StatusUnauthorized, err.Error())
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m message
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		fail(http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if r.Header.Get("iothub-messageid") == "" || r.Header.Get("iothub-contenttype") != "application/json" {
		fail(http.StatusBadRequest, "missing system properties")
		return
	}
	e.mu.Lock()
	e.received[id] = append(e.received[id], m)
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func TestRunSendsAuthenticatedTelemetry(t *testing.T) {
	store := dbtest.MustOpen(t)
	ctx := context.Background()
	devices, err := Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", Specs("sim-", 3))
	if err != nil {
		t.Fatal(err)
	}
	ep := &endpoint{t: t, keys: map[string]string{}, received: map[string][]message{}}
	for _, d := range devices {
		ep.keys[d.ID] = d.Key
	}
	srv := httptest.NewTLSServer(ep)
	defer srv.Close()

	ctx, cancel := context.WithCancel(ctx)
	var stats Stats
	done := make(chan error)
	go func() {
		done <- Run(ctx, Config{URL: srv.URL, Devices: devices, Interval: 10 * time.Millisecond, Client: srv.Client(), Seed: 1}, &stats)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for stats.Sent.Load() < 30 && time.Now().Before(deadline) && stats.Failed.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if len(ep.bad) > 0 {
		t.Fatalf("endpoint refused requests: %q", ep.bad)
	}
	for _, d := range devices {
		if len(ep.received[d.ID]) == 0 {
			t.Errorf("nothing received from %s", d.ID)
		}
	}
	if got := stats.Sent.Load(); got < 30 {
		t.Errorf("Sent = %d after 20 s, want at least 30", got)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no devices", Config{URL: "https://localhost:8443"}, "no devices"},
		{"not a URL", Config{URL: "localhost", Devices: []Device{{ID: "a", Key: "eA=="}}}, "not an https://host:port"},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Run = %v, want an error about %q", tt.name, err, tt.want)
		}
	}
}

func TestSensorsStayBelievable(t *testing.T) {
	s := newSensors(rand.New(rand.NewPCG(7, 7)))
	prevT, _, prevB := s.reading()
	for i := 0; i < 100_000; i++ {
		temp, hum, bat := s.reading()
		if temp < 5 || temp > 40 {
			t.Fatalf("step %d: temperature %v °C out of an indoor range", i, temp)
		}
		if hum < 5 || hum > 100 {
			t.Fatalf("step %d: humidity %v %% out of range", i, hum)
		}
		if bat < 0 || bat > 100 {
			t.Fatalf("step %d: battery %v %% out of range", i, bat)
		}
		if d := temp - prevT; d > 1.5 || d < -1.5 {
			t.Fatalf("step %d: temperature jumped by %v °C between two messages", i, d)
		}
		if bat > prevB+0.5 && bat != 100 {
			t.Fatalf("step %d: battery rose from %v to %v without a recharge", i, prevB, bat)
		}
		prevT, prevB = temp, bat
	}
}

func TestProvisionReusesDevices(t *testing.T) {
	store := dbtest.MustOpen(t)
	ctx := context.Background()
	first, err := Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", Specs("sim-", 2))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", Specs("sim-", 3))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 3 || again[0] != first[0] || again[1] != first[1] {
		t.Errorf("second provisioning = %v, want the first two unchanged plus one", again)
	}
	if again[2].ID != "sim-003" {
		t.Errorf("third device id = %q, want sim-003", again[2].ID)
	}
	disabled := false
	if _, err := store.UpdateDevice(ctx, "sim-001", db.DeviceUpdate{Enabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", Specs("sim-", 1)); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("provisioning a disabled device: %v, want an error saying it is disabled", err)
	}
}

func TestDeviceIDs(t *testing.T) {
	if got := DeviceIDs("sim-", 2); got[0] != "sim-001" || got[1] != "sim-002" {
		t.Errorf("DeviceIDs(sim-, 2) = %q", got)
	}
	if got := DeviceIDs("d", 1200); got[0] != "d0001" || got[1199] != "d1200" {
		t.Errorf("DeviceIDs(d, 1200) = %q … %q", got[0], got[1199])
	}
}
