package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/static"
	"fieldhub/storage"
)

// TestStorageFault runs the real router and pipeline over a database that
// fills up (dbtest.FillUp: SQLite's own "database or disk is full"): device
// messages get 503 with Retry-After, /readyz turns 503 with the reason, the
// pages of signed-in users show the fault, and all of it clears with the
// next successful commit.
func TestStorageFault(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	var logBuf syncBuffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	health := storage.NewHealth(logger, db.FaultKind, nil)
	tel := dbtest.Telemetry(t, d)
	p := ingest.New(tel, nil, ingest.Options{Health: health, Logger: logger})
	t.Cleanup(func() { p.Close(context.Background()) })
	assets, err := static.New()
	if err != nil {
		t.Fatal(err)
	}
	router, _ := handlers.New(testkit.WithServices(handlers.Config{Telemetry: tel, Assets: assets, DeviceHost: "hub.test:8443", Ingest: p, Health: health, Logger: logger}, d, nil))
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)

	dev, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	user, err := d.CreateUser(ctx, "viewer-user", "x", db.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	cookie := auth.RandomToken(32)
	if err := d.CreateSession(ctx, cookie, user.ID, auth.RandomToken(16), time.Hour); err != nil {
		t.Fatal(err)
	}
	operator := auth.NewAPIToken()
	if _, err := d.CreateAPIToken(ctx, "operator", db.RoleOperator, operator); err != nil {
		t.Fatal(err)
	}
	sas := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	body := `{"pad": "` + strings.Repeat("x", 100_000) + `"}`
	send := func(method, path, body string, header map[string]string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	post := func() (int, http.Header, string) {
		return send("POST", "/devices/dev1/messages/events?api-version=2021-04-12", body, map[string]string{"Authorization": sas})
	}
	banner := regexp.MustCompile(`<div class="storage-banner"[^>]*>`)
	page := func() (tag, html string) {
		t.Helper()
		status, _, html := send("GET", "/devices", "", map[string]string{"Cookie": "fieldhub_session=" + cookie})
		if status != http.StatusOK {
			t.Fatalf("fleet page: %d", status)
		}
		return banner.FindString(html), html
	}

	if status, _, _ := post(); status != http.StatusNoContent {
		t.Fatalf("before the disk filled: %d, want 204", status)
	}
	if tag, _ := page(); tag == "" || !strings.Contains(tag, "hidden") {
		t.Errorf("healthy: banner %q, want present and hidden", tag)
	}

	free := dbtest.FillUp(t, d)
	status, header, text := post()
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") != "10" || !strings.Contains(text, "storage fault") {
		t.Errorf("on a full disk: %d Retry-After %q %s, want 503, 10 and the storage fault named", status, header.Get("Retry-After"), text)
	}
	status, _, text = send("GET", "/readyz", "", nil)
	var ready map[string]string
	if err := json.Unmarshal([]byte(text), &ready); err != nil {
		t.Fatalf("readyz body %q: %v", text, err)
	}
	if status != http.StatusServiceUnavailable || ready["status"] != "storage fault" ||
		ready["reason"] != "storing device messages fails (disk full)" || ready["since"] == "" {
		t.Errorf("readyz on a full disk = %d %v, want 503 with the reason and since", status, ready)
	}
	if tag, html := page(); tag == "" || strings.Contains(tag, "hidden") || !strings.Contains(html, "storing device messages fails (disk full)") {
		t.Errorf("on a full disk: banner %q, want it shown with the reason", tag)
	}
	// Other writes that fail for want of space: 503 with Retry-After too, and
	// no ERROR line per request (the fault is logged once).
	status, header, text = send("POST", "/api/v1/devices/dev1/cloud-messages", `{"body": "`+strings.Repeat("y", 60_000)+`"}`,
		map[string]string{"Authorization": "Bearer " + operator, "Content-Type": "application/json"})
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") != "10" || !strings.Contains(text, "disk full") {
		t.Errorf("a cloud-to-device message on a full disk: %d Retry-After %q %s, want 503, 10 and the disk full named", status, header.Get("Retry-After"), text)
	}
	if n := strings.Count(logBuf.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines, want 1 (the fault):\n%s", n, logBuf.String())
	}
	if _, _, html := send("GET", "/login", "", nil); banner.MatchString(html) {
		t.Error("the login page shows the storage banner to someone not signed in")
	}

	free()
	if status, _, _ := post(); status != http.StatusNoContent {
		t.Fatalf("after space returned: %d, want 204", status)
	}
	if status, _, text := send("GET", "/readyz", "", nil); status != http.StatusOK {
		t.Errorf("readyz after a commit succeeded = %d %s, want 200", status, text)
	}
	if tag, _ := page(); !strings.Contains(tag, "hidden") {
		t.Errorf("after recovery: banner %q, want hidden", tag)
	}
}

// syncBuffer is a bytes.Buffer that loggers on any goroutine may write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
