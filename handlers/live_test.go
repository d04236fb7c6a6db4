package handlers_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/live"
)

// newLiveTestHub is newTestHub with live streams.
func newLiveTestHub(t *testing.T) (*testHub, *live.Hub) {
	t.Helper()
	hub := live.New(live.Options{})
	t.Cleanup(hub.Close)
	h := newTestHub(t, func(c *handlers.Config) { c.Live = hub })
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	return h, hub
}

// openStream starts a stream request and returns the response (body open).
func openStream(t *testing.T, url string, r req) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, url+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: r.cookie})
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLiveStreamAccess(t *testing.T) {
	h, _ := newLiveTestHub(t)
	cookie, _ := h.session(db.RoleViewer)
	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"fleet without credentials", req{path: "/api/v1/events"}, http.StatusUnauthorized},
		{"device without credentials", req{path: "/api/v1/devices/dev1/events"}, http.StatusUnauthorized},
		{"fleet with a bad token", req{path: "/api/v1/events", bearer: "nope"}, http.StatusUnauthorized},
		{"fleet as viewer token", req{path: "/api/v1/events", bearer: h.tokens[db.RoleViewer]}, http.StatusOK},
		{"device as viewer token", req{path: "/api/v1/devices/dev1/events", bearer: h.tokens[db.RoleViewer]}, http.StatusOK},
		{"device as viewer session", req{path: "/api/v1/devices/dev1/events", cookie: cookie}, http.StatusOK},
		{"fleet as admin", req{path: "/api/v1/events", bearer: h.tokens[db.RoleAdmin]}, http.StatusOK},
		{"unknown device", req{path: "/api/v1/devices/nope/events", bearer: h.tokens[db.RoleViewer]}, http.StatusNotFound},
		{"bad last event id", req{path: "/api/v1/events?lastEventId=x", bearer: h.tokens[db.RoleViewer]}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := openStream(t, h.srv.URL, tt.r)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			ct := resp.Header.Get("Content-Type")
			if tt.status == http.StatusOK && ct != "text/event-stream" {
				t.Errorf("Content-Type %q, want text/event-stream", ct)
			}
			if tt.status != http.StatusOK && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("error Content-Type %q, want JSON", ct)
			}
		})
	}
}

func TestLiveStreamDeliversDeviceEvents(t *testing.T) {
	h, hub := newLiveTestHub(t)
	resp := openStream(t, h.srv.URL, req{path: "/api/v1/devices/dev1/events", bearer: h.tokens[db.RoleViewer]})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The subscription may not be registered yet when the headers arrive:
	// publish until the event shows up.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line := <-lines:
			if strings.HasPrefix(line, `data: {"deviceId":"dev1","etag":"\"3\""`) {
				return
			}
		case <-tick.C:
			hub.PublishTwin(commands.TwinView{DeviceID: "dev1", ETag: `"3"`})
		case <-deadline:
			t.Fatal("no event within 10 s")
		}
	}
}

func TestDisablingADeviceIsAnnounced(t *testing.T) {
	h, _ := newLiveTestHub(t)
	resp := openStream(t, h.srv.URL, req{path: "/api/v1/events", bearer: h.tokens[db.RoleViewer]})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Wait for the stream's first line so the subscription is in place.
	select {
	case <-lines:
	case <-time.After(10 * time.Second):
		t.Fatal("stream sent nothing")
	}
	if status, _ := h.do(req{method: http.MethodPatch, path: "/api/v1/devices/dev1", body: `{"enabled": false}`, bearer: h.tokens[db.RoleAdmin]}); status != http.StatusOK {
		t.Fatalf("disable: status %d", status)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line := <-lines:
			if line == `data: {"id":"dev1","status":"disabled"}` {
				return
			}
		case <-deadline:
			t.Fatal("no disabled event within 10 s")
		}
	}
}

// TestDevicePageListsContractEvents: the device page hands its script the
// device stream's event types from the Go contract, so the browser forwards
// every one of them (connection events were once left out).
func TestDevicePageListsContractEvents(t *testing.T) {
	h, _ := newLiveTestHub(t)
	cookie, _ := h.session(db.RoleViewer)
	resp := openStream(t, h.srv.URL, req{path: "/devices/dev1", cookie: cookie})
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device page: %d, %v", resp.StatusCode, err)
	}
	want := `data-stream-events="` + strings.Join(live.DeviceStreamEvents, " ") + `"`
	if !strings.Contains(string(body), want) || !strings.Contains(want, live.EventConnection) {
		t.Errorf("device page lacks %s", want)
	}
}
