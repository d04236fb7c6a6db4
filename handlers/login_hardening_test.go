package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"fieldhub/db"
)

// TestLoginNextNeverCarriesControlBytes: /login?next=/%00/x once put a raw NUL
// into Location, which browsers refuse as an invalid response.
func TestLoginNextNeverCarriesControlBytes(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	b := h.browser()
	token := b.csrf("/login?next=/%00/x")
	p := b.post("/login", url.Values{"username": {"alice"}, "password": {"correct-horse"}, "_csrf": {token}, "next": {"/\x00/x"}})
	if p.status != http.StatusSeeOther || p.location != "/devices" {
		t.Errorf("login with next=/%%00/x = %d to %q, want 303 to /devices", p.status, p.location)
	}
	// Signed in, GET /login goes straight to next.
	if p := b.get("/login?next=/%00/x"); p.status != http.StatusSeeOther || p.location != "/devices" {
		t.Errorf("GET /login?next=/%%00/x signed in = %d to %q, want 303 to /devices", p.status, p.location)
	}
}

// TestLoginInputBounds: POST /login with 5 MB usernames once answered 401
// after bcrypt, wrote each name whole into the audit log and keyed the
// throttle on it. Oversized fields now get 400 before any of that.
func TestLoginInputBounds(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleViewer, "correct-horse")
	tests := []struct {
		name     string
		form     url.Values
		wantText string
	}{
		{"form over 8 KB", url.Values{"username": {"alice"}, "password": {"wrong-horse"}, "pad": {strings.Repeat("x", 64<<10)}},
			"larger than 8 KB"},
		{"username over 64 characters", url.Values{"username": {strings.Repeat("a", 65)}, "password": {"wrong-horse"}},
			"at most 64 characters"},
		{"username of 5,000 characters", url.Values{"username": {strings.Repeat("é", 2500)}, "password": {"wrong-horse"}},
			""},
		{"password over 1,024 bytes", url.Values{"username": {"alice"}, "password": {strings.Repeat("p", 1025)}},
			"at most 1,024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := h.browser()
			// Each case ten times: a throttle keyed on these would lock alice out.
			for range 10 {
				tt.form.Set("_csrf", b.csrf("/login"))
				p := b.post("/login", tt.form)
				if p.status != http.StatusBadRequest {
					t.Fatalf("status = %d, want 400", p.status)
				}
				if !strings.Contains(p.body, tt.wantText) {
					t.Fatalf("page does not say %q:\n%s", tt.wantText, p.body)
				}
			}
		})
	}
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("refused forms wrote %d audit rows, want none (first: %+v)", len(entries), entries[0])
	}
	// Nothing was counted against alice or this address.
	h.browser().login("alice", "correct-horse")
}

// TestAuditPagesStayBounded: after the 5 MB-username attack /audit was a
// 157 MB page. Rows of any size (these predate the cut at insert) come
// back cut, one page at a time, on the page and in the API.
func TestAuditPagesStayBounded(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("root", db.RoleAdmin, "password-root")
	huge := strings.Repeat("A", 1<<20)
	for range 20 {
		if _, err := h.db.Writer().ExecContext(context.Background(), `INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (1, 'anonymous', 'user.login', ?, 'failed', ?)`,
			huge, huge); err != nil {
			t.Fatal(err)
		}
	}
	b := h.browser()
	b.login("root", "password-root")
	p := b.get("/audit")
	if p.status != http.StatusOK || strings.Count(p.body, `data-testid="audit-row"`) != 21 {
		t.Fatalf("GET /audit = %d with %d rows, want 200 with 21", p.status, strings.Count(p.body, `data-testid="audit-row"`))
	}
	if len(p.body) > 256<<10 {
		t.Errorf("audit page is %d KB, want at most 256 KB", len(p.body)>>10)
	}
	p = b.get("/api/v1/audit?limit=1000")
	if p.status != http.StatusOK || len(p.body) > 256<<10 {
		t.Errorf("GET /api/v1/audit = %d, %d KB; want 200, at most 256 KB", p.status, len(p.body)>>10)
	}
	if p := b.get("/api/v1/audit?limit=1001"); p.status != http.StatusBadRequest {
		t.Errorf("limit=1001 = %d, want 400", p.status)
	}
	if p := b.get("/audit?target=" + strings.Repeat("a", db.MaxAuditTarget+1)); p.status != http.StatusBadRequest {
		t.Errorf("a target filter longer than any stored target = %d, want 400", p.status)
	}
}
