package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/handlers"
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
	// Long details are shown cut, whole once opened.
	if n := strings.Count(p.body, `<details><summary><span class="when-closed">`+strings.Repeat("A", 159)+`…</span>`); n != 20 {
		t.Errorf("%d long details shown cut to 160 characters, want 20", n)
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

// TestLoginParallelGuesses: 200 parallel wrong guesses for one user from one
// address once got 182 bcrypt checks (the throttle checked, hashed, then
// recorded). Only a password check answers 401, so exactly 5 may.
func TestLoginParallelGuesses(t *testing.T) {
	t.Parallel()
	// Every check waits its turn however slow bcrypt runs here (-race, a
	// busy machine), so none is refused with 503 instead.
	h := newPageHub(t, func(cfg *handlers.Config) { cfg.PasswordCheckWait = time.Hour })
	h.addUser("alice", db.RoleViewer, "correct-horse")
	b := h.browser()
	token := b.csrf("/login") // double-submit: one cookie and token serve every request
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", h.srv.URL+"/login", strings.NewReader(url.Values{
				"username": {"alice"}, "password": {"wrong-" + strconv.Itoa(i)}, "_csrf": {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "fieldhub_login_csrf", Value: token})
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 195 {
		t.Errorf("statuses = %v, want 5 × 401 (checked) and 195 × 429", statuses)
	}
	failed, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "user.login"})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 5 {
		t.Errorf("%d login audit rows, want 5", len(failed))
	}
	// The username's budget is spent from every address, in any letter case.
	b = h.browser()
	p := b.post("/login", url.Values{"username": {"ALICE"}, "password": {"correct-horse"}, "_csrf": {b.csrf("/login")}})
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") != "900" {
		t.Errorf("right password after 5 wrong = %d, Retry-After %q; want 429, 900", p.status, p.header.Get("Retry-After"))
	}
}

// TestLoginManyUsernamesOneAddress: guessing many usernames from one address
// is cut by the address's budget (20 wrong guesses per 15 minutes).
func TestLoginManyUsernamesOneAddress(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	b := h.browser()
	var got []int
	for i := range 25 {
		p := b.post("/login", url.Values{"username": {"user" + strconv.Itoa(i)}, "password": {"guess-guess"}, "_csrf": {b.csrf("/login")}})
		got = append(got, p.status)
	}
	for i, status := range got {
		if want := map[bool]int{true: 401, false: 429}[i < 20]; status != want {
			t.Errorf("guess %d = %d, want %d (statuses %v)", i+1, status, want, got)
			break
		}
	}
}

// TestUsersPagePasswordRulesAndCase: the users page accepted "password" and
// "12345678", and "Admin" beside "admin". New passwords need 10 characters
// and must not be common; names are unique and matched regardless of case.
func TestUsersPagePasswordRulesAndCase(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("root", db.RoleAdmin, "password-root")
	b := h.browser()
	b.login("ROOT", "password-root") // any letter case signs in
	token := b.csrf("/users")
	post := func(path string, kv ...string) string {
		form := url.Values{"_csrf": {token}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return b.flashOf(b.post(path, form))
	}
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"8 characters", []string{"/users", "username", "olga", "password", "12345678", "role", "viewer"}, "error: Password must be at least 10 characters."},
		{"common", []string{"/users", "username", "olga", "password", "1234567890", "role", "viewer"}, "error: Password is one of the 10,000 most common passwords; choose another."},
		{"common in capitals", []string{"/users", "username", "olga", "password", "PASSWORD123", "role", "viewer"}, "error: Password is one of the 10,000 most common passwords"},
		{"good", []string{"/users", "username", "olga", "password", "olga-wears-hats", "role", "viewer"}, "success: User olga created as viewer."},
		{"same name, other case", []string{"/users", "username", "Olga", "password", "olga-wears-hats", "role", "viewer"}, "error: create user &#34;Olga&#34;: already exists (usernames are unique regardless of letter case)"},
		{"root in capitals", []string{"/users", "username", "Root", "password", "root-wears-hats", "role", "admin"}, "error: "},
		{"common new password", []string{"/users/olga/password", "password", "qwertyuiop"}, "error: Password is one of the 10,000 most common"},
		{"new password by another case", []string{"/users/OLGA/password", "password", "olga-wears-caps"}, "success: Password of OLGA changed"},
		{"self delete in another case", []string{"/users/Root/delete"}, "error: You cannot delete yourself"},
	}
	for _, tt := range tests {
		if got := post(tt.kv[0], tt.kv[1:]...); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: flash = %q, want %q…", tt.name, got, tt.want)
		}
	}
	h.browser().login("olga", "olga-wears-caps")
}
