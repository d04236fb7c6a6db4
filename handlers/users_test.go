package handlers_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
)

// TestUserRoleChange: an admin changes another user's role on the users
// page and through the API; nobody changes their own; the last admin keeps
// the role; each change is audited as user.role.
func TestUserRoleChange(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("root", db.RoleAdmin, "password-root")
	h.addUser("olga", db.RoleViewer, "password-olga")
	b := h.browser()
	b.login("root", "password-root")
	token := b.csrf("/users")
	post := func(path, role string) string {
		return b.flashOf(b.post(path, url.Values{"_csrf": {token}, "role": {role}}))
	}
	tests := []struct {
		path, role, want string
	}{
		{"/users/olga/role", "operator", "success: olga is now operator (was viewer)."},
		{"/users/OLGA/role", "operator", "success: OLGA is already operator."},
		{"/users/olga/role", "god", "error: unknown role"},
		{"/users/root/role", "viewer", "error: You cannot change your own role"},
	}
	for _, tt := range tests {
		if got := post(tt.path, tt.role); !strings.HasPrefix(got, tt.want) {
			t.Errorf("POST %s role=%s: flash %q, want %q…", tt.path, tt.role, got, tt.want)
		}
	}
	if p := b.post("/users/nobody/role", url.Values{"_csrf": {token}, "role": {"viewer"}}); p.status != http.StatusNotFound {
		t.Errorf("role of an unknown user = %d, want 404", p.status)
	}
	if u, _ := h.db.User(context.Background(), "olga"); u.Role != db.RoleOperator {
		t.Errorf("olga is %s, want operator", u.Role)
	}
	// olga is an operator now: her session sees it at once.
	olga := h.browser()
	olga.login("olga", "password-olga")
	if p := olga.get("/users"); p.status != http.StatusForbidden {
		t.Errorf("operator olga GET /users = %d, want 403", p.status)
	}

	// Through the API, with an admin token: the last admin cannot be demoted.
	secret := "fh_role-test-token-000000000000000000000"
	if _, err := h.db.CreateAPIToken(context.Background(), "ops", db.RoleAdmin, secret); err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string) (int, string) {
		r, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+secret)
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := api("PATCH", "/api/v1/users/root", `{"role":"viewer"}`); status != 422 || !strings.Contains(body, "root is the last admin") {
		t.Errorf("demote the last admin = %d %s, want 422", status, body)
	}
	if status, body := api("PATCH", "/api/v1/users/olga", `{"role":"admin"}`); status != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Errorf("promote olga = %d %s", status, body)
	}
	if status, body := api("PATCH", "/api/v1/users/root", `{"role":"viewer"}`); status != 200 {
		t.Errorf("demote root beside another admin = %d %s", status, body)
	}
	if status, body := api("PATCH", "/api/v1/users/olga", `{}`); status != 422 || !strings.Contains(body, "role is required") {
		t.Errorf("no role = %d %s", status, body)
	}
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "user.role"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Actor+" "+e.Target+" "+e.Detail)
	}
	if want := "token:ops root admin → viewer|token:ops olga operator → admin|user:root olga viewer → operator"; strings.Join(got, "|") != want {
		t.Errorf("audit = %q, want %q", strings.Join(got, "|"), want)
	}
}

// TestLastLogin: a successful sign-in is recorded and shown; a failed one is not.
func TestLastLogin(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 5, 1, 11, 57, 0, 0, time.UTC) // 3 min before the pages' clock
	h := newPageHub(t, dbClock(func() time.Time { return clock }))
	h.addUser("root", db.RoleAdmin, "password-root")
	h.addUser("olga", db.RoleViewer, "password-olga")
	b := h.browser()
	b.login("root", "password-root")
	failed := h.browser()
	p := failed.post("/login", url.Values{"username": {"olga"}, "password": {"wrong-password"}, "_csrf": {failed.csrf("/login")}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d", p.status)
	}
	page := b.get("/users").body
	cells := regexp.MustCompile(`data-testid="user-last-login">\s*<time[^>]*>([^<]*)</time>`).FindAllStringSubmatch(page, -1)
	if len(cells) != 2 || cells[0][1] != "never" || cells[1][1] != "3 min ago" { // olga, root
		t.Errorf("last sign-in cells = %q", cells)
	}
	r, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/users", nil)
	r.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Users []struct {
			Username    string
			LastLoginAt *time.Time
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Users) != 2 || out.Users[0].LastLoginAt != nil || out.Users[1].LastLoginAt == nil || !out.Users[1].LastLoginAt.Equal(clock) {
		t.Errorf("users API = %+v", out.Users)
	}
}

// TestAPITokensPage: an admin creates a token on the users page and sees its
// secret once; it works as a bearer token until it expires or is revoked;
// the list shows last use, expiry and state.
func TestAPITokensPage(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	h := newPageHub(t, func(cfg *handlers.Config) { cfg.Now = clock.Now }, dbClock(clock.Now))
	h.addUser("root", db.RoleAdmin, "password-root")
	b := h.browser()
	b.login("root", "password-root")
	token := b.csrf("/users")

	p := b.post("/tokens", url.Values{"_csrf": {token}, "name": {"grafana"}, "role": {"viewer"}, "expires": {"7d"}})
	m := regexp.MustCompile(`data-testid="new-token-secret">([^<]+)<`).FindStringSubmatch(p.body)
	if p.status != http.StatusCreated || m == nil {
		t.Fatalf("create token = %d, no secret shown:\n%s", p.status, p.body)
	}
	secret := html.UnescapeString(m[1])
	if !strings.Contains(p.body, `Token “grafana” created`) || !strings.Contains(p.body, "in 7 d") {
		t.Errorf("the new-token panel does not name the token and its expiry")
	}
	if strings.Contains(b.get("/users").body, secret) {
		t.Errorf("the users page shows the secret again")
	}
	bearer := func(path string) int {
		r, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		r.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := bearer("/api/v1/devices"); got != 200 {
		t.Errorf("new viewer token: GET devices = %d", got)
	}
	if got := bearer("/api/v1/users"); got != 403 {
		t.Errorf("viewer token: GET users = %d, want 403", got)
	}
	page := b.get("/users").body
	row := regexp.MustCompile(`(?s)<tr data-testid="token-row" data-token-id="(\d+)" data-state="active">.*?</tr>`).FindStringSubmatch(page)
	if row == nil || !strings.Contains(row[0], "grafana") || !strings.Contains(row[0], "just now") || !strings.Contains(row[0], "in 7 d") {
		t.Fatalf("token row = %q", row)
	}

	// Past its expiry the token is refused and listed as expired.
	clock.Advance(7*24*time.Hour + time.Second)
	if got := bearer("/api/v1/devices"); got != 401 {
		t.Errorf("expired token: GET devices = %d, want 401", got)
	}
	b.login("root", "password-root") // the session expired too
	token = b.csrf("/users")
	if !strings.Contains(b.get("/users").body, `data-state="expired"`) {
		t.Errorf("the expired token is not listed as expired")
	}

	// A second token, revoked after the confirmation.
	p = b.post("/tokens", url.Values{"_csrf": {token}, "name": {"ci"}, "role": {"operator"}, "expires": {"never"}})
	secret = html.UnescapeString(regexp.MustCompile(`data-testid="new-token-secret">([^<]+)<`).FindStringSubmatch(p.body)[1])
	id := regexp.MustCompile(`data-token-id="(\d+)" data-state="active"`).FindStringSubmatch(p.body)[1]
	if got := b.flashOf(b.post("/tokens/"+id+"/revoke", url.Values{"_csrf": {token}})); !strings.HasPrefix(got, "success: Token "+id+" revoked") {
		t.Errorf("revoke flash = %q", got)
	}
	if got := bearer("/api/v1/devices"); got != 401 {
		t.Errorf("revoked token: GET devices = %d, want 401", got)
	}
	if got := b.flashOf(b.post("/tokens/"+id+"/revoke", url.Values{"_csrf": {token}})); !strings.HasPrefix(got, "error: Token "+id+" is unknown or already revoked") {
		t.Errorf("second revoke flash = %q", got)
	}

	for _, bad := range []struct{ name, role, expires, want string }{
		{"", "viewer", "7d", "error: Give the token a name"},
		{"x", "god", "7d", "error: unknown role"},
		{"x", "viewer", "soon", "error: \"soon\" is not an expiry"},
		{"x", "viewer", "2020-01-01", "error: expiry 2020-01-01T00:00:00Z is not in the future"},
	} {
		p := b.post("/tokens", url.Values{"_csrf": {token}, "name": {bad.name}, "role": {bad.role}, "expires": {bad.expires}})
		if got := b.flashOf(p); !strings.HasPrefix(got, html.EscapeString(bad.want)) {
			t.Errorf("create %+v: flash %q, want %q…", bad, got, bad.want)
		}
	}
	entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "token."})
	if len(entries) != 3 || entries[2].Detail != "name grafana, role viewer, expires 2026-05-08T12:00:00Z" {
		t.Errorf("token audit = %+v", entries)
	}
}

// TestAPITokensAPI: the same through /api/v1/tokens, admins only.
func TestAPITokensAPI(t *testing.T) {
	h := newTestHub(t)
	admin := h.tokens[db.RoleAdmin]
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	status, body := h.do(req{method: "POST", path: "/api/v1/tokens", bearer: admin,
		body: `{"name":"robot","role":"operator","expiresAt":"` + exp.Format(time.RFC3339) + `"}`})
	secret, _ := body["secret"].(string)
	tok, _ := body["token"].(map[string]any)
	if status != 201 || !strings.HasPrefix(secret, "fh_") || tok["state"] != "active" || tok["expiresAt"] != exp.Format(time.RFC3339) {
		t.Fatalf("create = %d %v", status, body)
	}
	if status, _ := h.do(req{method: "GET", path: "/api/v1/devices", bearer: secret}); status != 200 {
		t.Errorf("new token works: %d", status)
	}
	status, body = h.do(req{method: "GET", path: "/api/v1/tokens", bearer: admin})
	list, _ := body["tokens"].([]any)
	if status != 200 || len(list) != 4 || strings.Contains(toJSON(t, body), secret) {
		t.Errorf("list = %d with %d tokens (the secret must not be in it)", status, len(list))
	}
	id := toJSON(t, tok["id"])
	if status, _ := h.do(req{method: "DELETE", path: "/api/v1/tokens/" + id, bearer: admin}); status != 204 {
		t.Errorf("revoke = %d", status)
	}
	if status, body := h.do(req{method: "GET", path: "/api/v1/devices", bearer: secret}); status != 401 || body["error"] != "unknown, revoked or expired API token" {
		t.Errorf("revoked token = %d %v", status, body)
	}
	if status, _ := h.do(req{method: "DELETE", path: "/api/v1/tokens/" + id, bearer: admin}); status != 404 {
		t.Errorf("revoke twice = %d, want 404", status)
	}
	for _, bad := range []string{`{"name":"","role":"viewer"}`, `{"name":"x","role":"root"}`, `{"name":"x","role":"viewer","expiresAt":"2001-01-01T00:00:00Z"}`} {
		if status, body := h.do(req{method: "POST", path: "/api/v1/tokens", bearer: admin, body: bad}); status != 422 {
			t.Errorf("create %s = %d %v, want 422", bad, status, body)
		}
	}
	for _, role := range []string{db.RoleViewer, db.RoleOperator} {
		if status, _ := h.do(req{method: "GET", path: "/api/v1/tokens", bearer: h.tokens[role]}); status != 403 {
			t.Errorf("%s lists tokens: %d, want 403", role, status)
		}
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
