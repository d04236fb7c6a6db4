package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
)

// testHub is the real router over a real database file.
type testHub struct {
	t      *testing.T
	db     *db.DB
	srv    *httptest.Server
	tokens map[string]string // role -> bearer token
}

func newTestHub(t *testing.T, configure ...func(*handlers.Config)) *testHub {
	t.Helper()
	r := testkit.NewRouter(t, configure...)
	return &testHub{t: t, db: r.DB, srv: r.HTTP, tokens: r.Tokens}
}

// session logs a user of role in directly through the database and returns its cookie and CSRF token.
func (h *testHub) session(role string) (cookie, csrf string) {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.db.CreateUser(ctx, role+"-user", "x", role)
	if err != nil {
		h.t.Fatal(err)
	}
	cookie, csrf = auth.RandomToken(32), auth.RandomToken(16)
	if err := h.db.CreateSession(ctx, cookie, u.ID, csrf, 3600e9); err != nil {
		h.t.Fatal(err)
	}
	return cookie, csrf
}

type req struct {
	method, path, body string
	bearer             string
	cookie, csrf       string
}

func (h *testHub) do(r req) (int, map[string]any) {
	h.t.Helper()
	hr, err := http.NewRequest(r.method, h.srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: r.cookie})
	}
	if r.csrf != "" {
		hr.Header.Set("X-CSRF-Token", r.csrf)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(hr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestAPIRoles(t *testing.T) {
	h := newTestHub(t)
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantByRole map[string]int // "" is no credentials
	}{
		{"list devices", "GET", "/api/v1/devices", "",
			map[string]int{"": 401, "viewer": 200, "operator": 200, "admin": 200}},
		{"show device", "GET", "/api/v1/devices/dev1", "",
			map[string]int{"": 401, "viewer": 200, "operator": 200, "admin": 200}},
		{"create device", "POST", "/api/v1/devices", `{"id":"new-%s"}`,
			map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 201}},
		{"update device", "PATCH", "/api/v1/devices/dev1", `{"name":"x"}`,
			map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 200}},
		{"rotate key", "POST", "/api/v1/devices/dev1/keys/rotate", `{"key":"secondary"}`,
			map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 200}},
	}
	for _, tt := range tests {
		for _, role := range []string{"", "viewer", "operator", "admin"} {
			t.Run(tt.name+"/"+role, func(t *testing.T) {
				body := tt.body
				if strings.Contains(body, "%s") {
					body = strings.Replace(body, "%s", role+"x", 1)
				}
				got, resp := h.do(req{method: tt.method, path: tt.path, body: body, bearer: h.tokens[role]})
				if want := tt.wantByRole[role]; got != want {
					t.Errorf("status = %d, want %d (body %v)", got, want, resp)
				}
				if got >= 400 && resp["error"] == "" {
					t.Errorf("error response without an error message: %v", resp)
				}
			})
		}
	}
}

func TestSecretsOnlyForAdmins(t *testing.T) {
	h := newTestHub(t)
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{db.RoleViewer, db.RoleOperator, db.RoleAdmin} {
		_, body := h.do(req{method: "GET", path: "/api/v1/devices/dev1", bearer: h.tokens[role]})
		_, hasKey := body["primaryKey"]
		cs, _ := body["connectionString"].(string)
		if want := role == db.RoleAdmin; hasKey != want || (cs != "") != want {
			t.Errorf("%s sees keys=%v connectionString=%q; want keys only for admins", role, hasKey, cs)
		}
		if role == db.RoleAdmin && !strings.HasPrefix(cs, "HostName=hub.test:8443;DeviceId=dev1;SharedAccessKey=") {
			t.Errorf("connection string = %q", cs)
		}
	}
}

func TestCSRF(t *testing.T) {
	h := newTestHub(t)
	cookie, csrf := h.session(db.RoleAdmin)
	tests := []struct {
		name string
		csrf string
		want int
	}{
		{"no token", "", 403},
		{"wrong token", "nope", 403},
		{"right token", csrf, 201},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body := h.do(req{method: "POST", path: "/api/v1/devices", body: `{"id":"csrf-` + string(rune('a'+i)) + `"}`, cookie: cookie, csrf: tt.csrf})
			if got != tt.want {
				t.Errorf("status = %d, want %d (%v)", got, tt.want, body)
			}
		})
	}
	// Reads need no CSRF token.
	if got, _ := h.do(req{method: "GET", path: "/api/v1/devices", cookie: cookie}); got != 200 {
		t.Errorf("GET with session = %d, want 200", got)
	}
}

func TestCreateDeviceErrors(t *testing.T) {
	h := newTestHub(t)
	admin := h.tokens[db.RoleAdmin]
	tests := []struct {
		name, body string
		want       int
		wantMsg    string
	}{
		{"bad id", `{"id":"bad id"}`, 422, "position 4"},
		{"empty id", `{"id":""}`, 422, "empty"},
		{"too long", `{"id":"` + strings.Repeat("a", 129) + `"}`, 422, "129 characters"},
		{"dot", `{"id":"."}`, 422, `device id "." is not allowed`},
		{"dot dot", `{"id":".."}`, 422, `device id ".." is not allowed`},
		{"bad json", `{"id":`, 400, "invalid JSON"},
		{"unknown field", `{"id":"x","colour":"red"}`, 400, "colour"},
		{"too large", `{"id":"x","name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger"},
		{"ok", `{"id":"dup"}`, 201, ""},
		{"duplicate", `{"id":"dup"}`, 409, "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body := h.do(req{method: "POST", path: "/api/v1/devices", body: tt.body, bearer: admin})
			msg, _ := body["error"].(string)
			if got != tt.want || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", got, msg, tt.want, tt.wantMsg)
			}
		})
	}
	if got, body := h.do(req{method: "GET", path: "/api/v1/devices/nope", bearer: admin}); got != 404 {
		t.Errorf("unknown device = %d %v, want 404", got, body)
	}
	if got, _ := h.do(req{method: "GET", path: "/api/v1/devices", bearer: "fh_wrong"}); got != 401 {
		t.Errorf("bad token = %d, want 401", got)
	}
}

func TestHealth(t *testing.T) {
	h := newTestHub(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if got, _ := h.do(req{method: "GET", path: p}); got != 200 {
			t.Errorf("%s = %d, want 200", p, got)
		}
	}
}

// Device ids may hold characters clients percent-encode; every route must see
// the decoded id, decoded exactly once (a literal '%' stays a '%').
func TestEncodedDeviceIDs(t *testing.T) {
	h := newTestHub(t)
	for _, id := range []string{"a:b", "x$y", "p%41"} {
		if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path   string
		wantID string
	}{
		{"/api/v1/devices/a%3Ab", "a:b"},
		{"/api/v1/devices/x%24y", "x$y"},
		{"/api/v1/devices/p%2541", "p%41"},
	}
	for _, tt := range tests {
		got, body := h.do(req{method: "GET", path: tt.path, bearer: h.tokens[db.RoleViewer]})
		if got != 200 || body["id"] != tt.wantID {
			t.Errorf("GET %s = %d %v, want 200 with id %q", tt.path, got, body, tt.wantID)
		}
	}
	if got, _ := h.do(req{method: "GET", path: "/api/v1/devices/a%3Ab/twin", bearer: h.tokens[db.RoleViewer]}); got != 200 {
		t.Errorf("twin of encoded id = %d, want 200", got)
	}
}
