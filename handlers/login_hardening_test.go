package handlers_test

import (
	"net/http"
	"net/url"
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
