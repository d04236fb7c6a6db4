package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// TestStoragePage: admins see each kind's disk use and retention on the
// storage page and in GET /api/v1/storage; the figure of the message log
// follows the messages stored; others are refused.
func TestStoragePage(t *testing.T) {
	r := testkit.NewRouter(t, func(c *handlers.Config) { c.AuditRetention, c.AlertRetention = 90*24*time.Hour, 30*24*time.Hour })
	h := &testHub{t: t, db: r.DB, srv: r.HTTP, tokens: r.Tokens}
	ctx := context.Background()
	if _, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	var recs []telemetry.Record
	for i := range 50 {
		recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: "dev1", EnqueuedAt: time.Now(), AuthMethod: "sas-primary",
			Body: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 500))}))
	}
	if _, err := r.Telemetry.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	status, body := h.do(req{method: "GET", path: "/api/v1/storage", bearer: h.tokens[db.RoleAdmin]})
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/storage: %d %v", status, body)
	}
	kinds, _ := body["kinds"].([]any)
	if len(kinds) != 5 {
		t.Fatalf("kinds = %v, want 5", body["kinds"])
	}
	got := map[string]map[string]any{}
	for _, k := range kinds {
		m := k.(map[string]any)
		got[m["kind"].(string)] = m
	}
	if msgs := got[storage.KindMessages]; msgs["rows"] != float64(50) || msgs["bytes"].(float64) < 50*500 || msgs["keptSeconds"] != float64(7*24*3600) {
		t.Errorf("message log = %v, want 50 rows of over 500 bytes, kept 7 days", msgs)
	}
	if audit := got[storage.KindAudit]; audit["keptSeconds"] != float64(90*24*3600) {
		t.Errorf("audit log = %v, want kept 90 days", audit)
	}
	if total := body["totalBytes"].(float64); total <= 0 {
		t.Errorf("totalBytes = %v", total)
	}

	cookie, _ := h.session(db.RoleAdmin)
	pageReq, _ := http.NewRequest("GET", h.srv.URL+"/storage", nil)
	pageReq.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
	resp, err := http.DefaultClient.Do(pageReq)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`data-kind="message log"`, `data-kind="rollups"`, "7 days (--message-retention)", "90 days (per minute, --minute-rollup-retention)", "30 days (--alert-retention)"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("storage page lacks %q", want)
		}
	}
	for _, role := range []string{db.RoleOperator, db.RoleViewer} {
		if status, _ := h.do(req{method: "GET", path: "/api/v1/storage", bearer: h.tokens[role]}); status != http.StatusForbidden {
			t.Errorf("%s: GET /api/v1/storage = %d, want 403", role, status)
		}
	}
}
