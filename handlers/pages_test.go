package handlers_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/static"
	"fieldhub/telemetry"
)

// pageHub is the real router over a real database, with a fixed clock so
// throttling never expires during a test.
type pageHub struct {
	t   *testing.T
	db  *db.DB
	tel *telemetry.Store
	srv *httptest.Server
}

func newPageHub(t *testing.T, configure ...func(*handlers.Config)) *pageHub {
	t.Helper()
	assets, err := static.New()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := testkit.NewRouter(t, append([]func(*handlers.Config){func(c *handlers.Config) {
		c.Assets, c.Now = assets, func() time.Time { return now }
	}}, configure...)...)
	return &pageHub{t: t, db: r.DB, tel: r.Telemetry, srv: r.HTTP}
}

// dbClock sets the database's clock before the router's services start
// reading it (the alerting service prunes on its own goroutine).
func dbClock(now func() time.Time) func(*handlers.Config) {
	return func(c *handlers.Config) { c.Store.(*db.DB).Now = now }
}

// addUser creates a user who can log in with password.
func (h *pageHub) addUser(name, role, password string) {
	h.t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.db.CreateUser(context.Background(), name, hash, role); err != nil {
		h.t.Fatal(err)
	}
}

func (h *pageHub) addDevice(id string) db.Device {
	h.t.Helper()
	d, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id, Name: "Device " + id})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// browser keeps cookies like a browser and does not follow redirects, so
// tests see each one.
type browser struct {
	h      *pageHub
	client *http.Client
}

func (h *pageHub) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{h: h, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) page {
	b.h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.h.srv.URL+path, body)
	if err != nil {
		b.h.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(raw), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil, nil) }

func (b *browser) post(path string, form url.Values) page { return b.do("POST", path, form, nil) }

var (
	csrfMeta  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)
	csrfInput = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
)

// csrf is the token the page at path hands out.
func (b *browser) csrf(path string) string {
	b.h.t.Helper()
	p := b.get(path)
	m := csrfInput.FindStringSubmatch(p.body)
	if m == nil {
		m = csrfMeta.FindStringSubmatch(p.body)
	}
	if m == nil {
		b.h.t.Fatalf("GET %s (%d) has no CSRF token:\n%s", path, p.status, p.body)
	}
	return m[1]
}

// login signs in through the form and fails the test if that does not work.
func (b *browser) login(user, password string) {
	b.h.t.Helper()
	token := b.csrf("/login")
	p := b.post("/login", url.Values{"username": {user}, "password": {password}, "_csrf": {token}})
	if p.status != http.StatusSeeOther || p.location != "/devices" {
		b.h.t.Fatalf("login as %s: %d to %q, want 303 to /devices:\n%s", user, p.status, p.location, p.body)
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	b := h.browser()

	if p := b.get("/devices"); p.status != http.StatusSeeOther || p.location != "/login?next=%2Fdevices" {
		t.Fatalf("logged out GET /devices = %d to %q, want 303 to the login page", p.status, p.location)
	}
	if p := b.get("/"); p.status != http.StatusFound || p.location != "/devices" {
		t.Errorf("GET / = %d to %q, want 302 to /devices", p.status, p.location)
	}
	p := b.get("/login")
	if p.status != 200 || !strings.Contains(p.body, `data-testid="login-form"`) {
		t.Fatalf("GET /login = %d, want the login form", p.status)
	}
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("login page Cache-Control = %q, want no-store", got)
	}
	b.login("alice", "correct-horse")

	p = b.get("/devices")
	if p.status != 200 || !strings.Contains(p.body, `data-testid="username">alice<`) {
		t.Fatalf("fleet after login = %d, want 200 showing alice", p.status)
	}
	if b.get("/login").location != "/devices" {
		t.Errorf("GET /login while logged in does not go to the fleet")
	}
	token := csrfMeta.FindStringSubmatch(p.body)[1]

	if p := b.post("/logout", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("logout without CSRF = %d, want 403", p.status)
	}
	if p := b.post("/logout", url.Values{"_csrf": {token}}); p.status != http.StatusSeeOther || p.location != "/login" {
		t.Errorf("logout = %d to %q, want 303 to /login", p.status, p.location)
	}
	if p := b.get("/devices"); p.status != http.StatusSeeOther {
		t.Errorf("fleet after logout = %d, want a redirect to login", p.status)
	}
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+":"+e.Outcome)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "user.login:ok") || !strings.Contains(got, "user.logout:ok") {
		t.Errorf("audit = %q, want a login and a logout", got)
	}
}

func TestLoginRedirectsToNext(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	h.addDevice("d1")
	b := h.browser()
	p := b.get("/login?next=%2Fdevices%2Fd1")
	if !strings.Contains(p.body, `name="next" value="/devices/d1"`) {
		t.Fatalf("login form does not carry next")
	}
	token := csrfInput.FindStringSubmatch(p.body)[1]
	p = b.post("/login", url.Values{"username": {"alice"}, "password": {"correct-horse"}, "_csrf": {token}, "next": {"/devices/d1"}})
	if p.location != "/devices/d1" {
		t.Errorf("login with next went to %q, want /devices/d1", p.location)
	}

	b = h.browser()
	token = b.csrf("/login")
	p = b.post("/login", url.Values{"username": {"alice"}, "password": {"correct-horse"}, "_csrf": {token}, "next": {"//evil.example/x"}})
	if p.location != "/devices" {
		t.Errorf("login with an off-site next went to %q, want /devices", p.location)
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleViewer, "correct-horse")
	tests := []struct {
		name       string
		user, pass string
		csrf       string // "form" = the token the page handed out
		wantStatus int
		wantText   string
	}{
		{"wrong password", "alice", "wrong-horse", "form", 401, "Wrong username or password."},
		{"unknown user", "mallory", "whatever1", "form", 401, "Wrong username or password."},
		{"empty fields", "", "", "form", 422, "Enter your username and password."},
		{"no csrf", "alice", "correct-horse", "", 403, "The sign-in form expired."},
		{"wrong csrf", "alice", "correct-horse", "forged", 403, "The sign-in form expired."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := h.browser()
			token := b.csrf("/login")
			if tt.csrf != "form" {
				token = tt.csrf
			}
			p := b.post("/login", url.Values{"username": {tt.user}, "password": {tt.pass}, "_csrf": {token}})
			if p.status != tt.wantStatus {
				t.Errorf("status = %d, want %d", p.status, tt.wantStatus)
			}
			if !strings.Contains(p.body, tt.wantText) {
				t.Errorf("page does not say %q", tt.wantText)
			}
			if strings.Contains(p.header.Get("Set-Cookie"), "fieldhub_session=") {
				t.Errorf("a refused login set a session cookie")
			}
		})
	}
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleViewer, "correct-horse")
	b := h.browser()
	// Five failures are free; the sixth starts the delay.
	var last page
	for i := range 7 {
		token := b.csrf("/login")
		last = b.post("/login", url.Values{"username": {"alice"}, "password": {"wrong-" + string(rune('a'+i)) + "xxxxx"}, "_csrf": {token}})
	}
	if last.status != http.StatusTooManyRequests {
		t.Fatalf("7th failed login = %d, want 429", last.status)
	}
	if last.header.Get("Retry-After") == "" || !strings.Contains(last.body, "Too many failed attempts") {
		t.Errorf("throttled login lacks Retry-After or an explanation")
	}
	// Even the right password waits now: the clock is frozen.
	token := b.csrf("/login")
	if p := b.post("/login", url.Values{"username": {"alice"}, "password": {"correct-horse"}, "_csrf": {token}}); p.status != http.StatusTooManyRequests {
		t.Errorf("right password while throttled = %d, want 429", p.status)
	}
}

func TestPagesByRole(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addDevice("d1")
	for _, role := range []string{db.RoleAdmin, db.RoleOperator, db.RoleViewer} {
		h.addUser(role+"-user", role, "password-"+role)
	}
	paths := []string{"/devices", "/devices/d1", "/users", "/devices/d1/connection-string", "/devices/nope"}
	want := map[string][]int{
		db.RoleAdmin:    {200, 200, 200, 200, 404},
		db.RoleOperator: {200, 200, 403, 403, 404},
		db.RoleViewer:   {200, 200, 403, 403, 404},
	}
	for role, statuses := range want {
		t.Run(role, func(t *testing.T) {
			b := h.browser()
			b.login(role+"-user", "password-"+role)
			for i, path := range paths {
				p := b.get(path)
				if p.status != statuses[i] {
					t.Errorf("GET %s = %d, want %d", path, p.status, statuses[i])
				}
				if p.status >= 400 && !strings.Contains(p.body, `data-testid="error-status"`) {
					t.Errorf("GET %s: error without the error page", path)
				}
			}
			fleet := b.get("/devices").body
			device := b.get("/devices/d1").body
			isAdmin := role == db.RoleAdmin
			checks := map[string]bool{
				"fleet has add form":       strings.Contains(fleet, `data-testid="add-device-form"`),
				"fleet has Users nav":      strings.Contains(fleet, `href="/users"`),
				"device has admin actions": strings.Contains(device, `data-testid="device-admin"`),
			}
			for what, got := range checks {
				if got != isAdmin {
					t.Errorf("%s = %v, want %v", what, got, isAdmin)
				}
			}
			if !strings.Contains(fleet, `data-device-id="d1"`) {
				t.Errorf("fleet does not list d1")
			}
		})
	}
}

func TestAdminFormsRefusedForOthers(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addDevice("d1")
	h.addUser("olga", db.RoleOperator, "password-olga")
	h.addUser("vic", db.RoleViewer, "password-vic")
	forms := []struct {
		path string
		form url.Values
	}{
		{"/devices", url.Values{"id": {"new"}}},
		{"/devices/d1", url.Values{"name": {"hacked"}}},
		{"/devices/d1/disable", nil},
		{"/devices/d1/keys/rotate", url.Values{"which": {"primary"}}},
		{"/devices/d1/authentication", url.Values{"type": {"certificateAuthority"}}},
		{"/devices/d1/delete", nil},
		{"/users", url.Values{"username": {"eve"}, "password": {"password-eve"}, "role": {"admin"}}},
		{"/users/vic/password", url.Values{"password": {"new-password"}}},
		{"/users/vic/delete", nil},
		{"/users/vic/role", url.Values{"role": {"admin"}}},
		{"/tokens", url.Values{"name": {"mine"}, "role": {"admin"}, "expires": {"never"}}},
		{"/tokens/1/revoke", nil},
	}
	if _, err := h.db.CreateAPIToken(context.Background(), "keep", db.RoleViewer, "fh_keep-0000000000000000000000000000000"); err != nil {
		t.Fatal(err)
	}
	tokensBefore, _ := h.db.APITokens(context.Background())
	before, _ := h.db.Device(context.Background(), "d1")
	for _, user := range []string{"olga", "vic"} {
		b := h.browser()
		b.login(user, "password-"+user)
		token := b.csrf("/devices")
		for _, f := range forms {
			form := url.Values{"_csrf": {token}}
			for k, v := range f.form {
				form[k] = v
			}
			if p := b.post(f.path, form); p.status != http.StatusForbidden {
				t.Errorf("%s POST %s = %d, want 403", user, f.path, p.status)
			}
		}
	}
	after, err := h.db.Device(context.Background(), "d1")
	if err != nil || after.Name != before.Name || after.PrimaryKey != before.PrimaryKey || !after.Enabled {
		t.Errorf("device changed by refused forms: %+v (err %v)", after, err)
	}
	if _, err := h.db.User(context.Background(), "eve"); err == nil {
		t.Errorf("a refused form created user eve")
	}
	if vic, _ := h.db.User(context.Background(), "vic"); vic.Role != db.RoleViewer {
		t.Errorf("a refused form made vic %s", vic.Role)
	}
	if toks, _ := h.db.APITokens(context.Background()); !reflect.DeepEqual(toks, tokensBefore) {
		t.Errorf("refused forms changed the API tokens: %+v, were %+v", toks, tokensBefore)
	}
}

func TestFormsNeedCSRF(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	b := h.browser()
	b.login("alice", "correct-horse")
	token := b.csrf("/devices")
	tests := []struct {
		name, csrf string
		want       int
	}{
		{"no token", "", 403},
		{"wrong token", "nope", 403},
		{"right token", token, 303},
	}
	for i, tt := range tests {
		id := "csrf-" + string(rune('a'+i))
		p := b.post("/devices", url.Values{"id": {id}, "_csrf": {tt.csrf}})
		if p.status != tt.want {
			t.Errorf("%s: status = %d, want %d", tt.name, p.status, tt.want)
		}
		_, err := h.db.Device(context.Background(), id)
		if created := err == nil; created != (tt.want == 303) {
			t.Errorf("%s: device created = %v", tt.name, created)
		}
	}
	// The header works as well as the form field (htmx and fetch use it).
	p := b.do("POST", "/devices", url.Values{"id": {"via-header"}}, map[string]string{"X-CSRF-Token": token})
	if p.status != http.StatusSeeOther {
		t.Errorf("CSRF in header = %d, want 303", p.status)
	}
}

// flashOf follows a redirect and returns the flash the next page shows.
func (b *browser) flashOf(p page) string {
	b.h.t.Helper()
	if p.status != http.StatusSeeOther {
		b.h.t.Fatalf("status = %d, want 303:\n%s", p.status, p.body)
	}
	next := b.get(p.location)
	m := regexp.MustCompile(`data-testid="flash" data-kind="(\w+)"><span>([^<]*)</span>`).FindStringSubmatch(next.body)
	if m == nil {
		return ""
	}
	return m[1] + ": " + m[2]
}

// TestAddDeviceFormKeepsInput: a refused add sends the fleet page back
// with the form open, what was typed in it and the error inside, the input
// to fix marked (before, the page redirected with a toast and the form
// closed empty).
func TestAddDeviceFormKeepsInput(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "pump:7"}); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alice", "correct-horse")
	token := b.csrf("/devices")
	for _, tt := range []struct {
		name, id, tags string
		status         int
		field, err     string
	}{
		{"duplicate", "pump:7", "site=oslo", http.StatusConflict, "new-device-id", "A device with id &#34;pump:7&#34; already exists. Choose another id."},
		{"bad id", "bad id", "site=oslo", http.StatusUnprocessableEntity, "new-device-id", "device id contains"},
		{"dot dot id", "..", "", http.StatusUnprocessableEntity, "new-device-id", "device id &#34;..&#34; is not allowed"},
		{"bad tags", "x1", "novalue", http.StatusUnprocessableEntity, "new-device-tags", "&#34;novalue&#34; is not key=value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := b.post("/devices", url.Values{"_csrf": {token}, "id": {tt.id}, "name": {"Pump <7>"}, "tags": {tt.tags}})
			if p.status != tt.status {
				t.Fatalf("status = %d, want %d", p.status, tt.status)
			}
			form := p.body[strings.Index(p.body, `data-testid="add-device"`):]
			form = form[:strings.Index(form, "</details>")]
			for _, want := range []string{
				`data-testid="add-device" open`,
				`role="alert" id="new-device-error" data-testid="add-device-error">` + tt.err,
				`value="` + html.EscapeString(tt.id) + `"`,
				`value="Pump &lt;7&gt;"`,
				`value="` + html.EscapeString(tt.tags) + `"`,
			} {
				if !strings.Contains(form, want) {
					t.Errorf("form lacks %s:\n%s", want, form)
				}
			}
			input := form[strings.Index(form, `id="`+tt.field+`"`):]
			input = input[:strings.Index(input, ">")]
			if !strings.Contains(input, "new-device-error") || !strings.Contains(input, `aria-invalid`) {
				t.Errorf("input %s is not marked invalid and tied to the error: %s", tt.field, input)
			}
		})
	}
	if _, err := h.db.Device(context.Background(), "x1"); err == nil {
		t.Error("device x1 created with bad tags")
	}
}

func TestDeviceForms(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	b := h.browser()
	b.login("alice", "correct-horse")
	token := b.csrf("/devices")
	ctx := context.Background()
	post := func(path string, kv ...string) page {
		form := url.Values{"_csrf": {token}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return b.post(path, form)
	}

	p := post("/devices", "id", "pump:7", "name", "Pump 7", "tags", "site=oslo, floor=2")
	if p.location != "/devices/pump:7" {
		t.Fatalf("create redirected to %q, want the device page", p.location)
	}
	if got := b.flashOf(p); !strings.Contains(got, "success: Device pump:7 created") {
		t.Errorf("flash after create = %q", got)
	}
	d, err := h.db.Device(ctx, "pump:7")
	if err != nil || d.Name != "Pump 7" || d.Tags["site"] != "oslo" || d.Tags["floor"] != "2" {
		t.Fatalf("created device = %+v, %v", d, err)
	}
	// A second visit shows no flash: it was shown once.
	if strings.Contains(b.get("/devices/pump:7").body, `data-testid="flash"`) {
		t.Errorf("flash shown twice")
	}

	errorsWant := []struct {
		name string
		kv   []string
		want string
	}{
		{"bad key", []string{"/devices/pump:7/keys/rotate", "which", "tertiary"}, "error: unknown key"},
	}
	for _, tt := range errorsWant {
		if got := b.flashOf(post(tt.kv[0], tt.kv[1:]...)); !strings.Contains(got, tt.want) {
			t.Errorf("%s: flash = %q, want %q", tt.name, got, tt.want)
		}
	}

	if got := b.flashOf(post("/devices/pump:7", "name", "Pump Seven", "tags", "site=bergen")); got != "success: Changes saved." {
		t.Errorf("update flash = %q", got)
	}
	d, _ = h.db.Device(ctx, "pump:7")
	if d.Name != "Pump Seven" || len(d.Tags) != 1 || d.Tags["site"] != "bergen" {
		t.Errorf("after update: %+v", d)
	}

	oldKey := d.PrimaryKey
	b.flashOf(post("/devices/pump:7/keys/rotate", "which", "primary"))
	d, _ = h.db.Device(ctx, "pump:7")
	if d.PrimaryKey == oldKey {
		t.Errorf("primary key not rotated")
	}
	cs := b.get("/devices/pump:7/connection-string")
	if !strings.Contains(cs.body, "HostName=hub.test:8443;DeviceId=pump:7;SharedAccessKey="+d.PrimaryKey) {
		t.Errorf("connection string partial = %s", cs.body)
	}
	if cs.header.Get("Cache-Control") != "no-store" || strings.Contains(cs.body, "<html") {
		t.Errorf("connection string must be an uncached partial")
	}

	b.flashOf(post("/devices/pump:7/disable"))
	if d, _ = h.db.Device(ctx, "pump:7"); d.Enabled {
		t.Errorf("device still enabled")
	}
	if !strings.Contains(b.get("/devices/pump:7").body, `data-status="disabled"`) {
		t.Errorf("device page does not show disabled")
	}
	b.flashOf(post("/devices/pump:7/enable"))
	if d, _ = h.db.Device(ctx, "pump:7"); !d.Enabled {
		t.Errorf("device still disabled")
	}

	p = post("/devices/pump:7/delete")
	if p.location != "/devices" {
		t.Errorf("delete redirected to %q", p.location)
	}
	if _, err := h.db.Device(ctx, "pump:7"); err == nil {
		t.Errorf("device not deleted")
	}
	if p := post("/devices/pump:7/delete"); p.status != http.StatusNotFound {
		t.Errorf("deleting again = %d, want 404", p.status)
	}
}

func TestFleetPaging(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("vic", db.RoleViewer, "password-vic")
	for i := range 120 {
		h.addDevice(fmt.Sprintf("%03d", i))
	}
	b := h.browser()
	b.login("vic", "password-vic")
	rows := regexp.MustCompile(`data-testid="device-row"`)
	tests := []struct {
		path     string
		wantRows int
		wantText string
	}{
		{"/devices", 50, "120 devices · page 1 of 3"},
		{"/devices?page=3", 20, "page 3 of 3"},
		{"/devices?q=11", 11, "11 devices"},
		{"/devices?status=disabled", 0, "No devices match"},
	}
	for _, tt := range tests {
		p := b.get(tt.path)
		if got := len(rows.FindAllString(p.body, -1)); p.status != 200 || got != tt.wantRows {
			t.Errorf("GET %s = %d with %d rows, want 200 with %d", tt.path, p.status, got, tt.wantRows)
		}
		if !strings.Contains(p.body, tt.wantText) {
			t.Errorf("GET %s does not say %q", tt.path, tt.wantText)
		}
	}
	if p := b.get("/devices?page=9"); p.status != http.StatusSeeOther || p.location != "/devices?page=3" {
		t.Errorf("page past the end = %d to %q, want 303 to the last page", p.status, p.location)
	}
	for _, bad := range []string{"/devices?status=sleepy", "/devices?page=0", "/devices?page=x"} {
		if p := b.get(bad); p.status < 400 || p.status >= 500 {
			t.Errorf("GET %s = %d, want a 4xx", bad, p.status)
		}
	}
}

func TestUserForms(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("root", db.RoleAdmin, "password-root")
	b := h.browser()
	b.login("root", "password-root")
	token := b.csrf("/users")
	post := func(path string, kv ...string) page {
		form := url.Values{"_csrf": {token}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return b.post(path, form)
	}
	if got := b.flashOf(post("/users", "username", "olga", "password", "password-olga", "role", "operator")); got != "success: User olga created as operator." {
		t.Errorf("create flash = %q", got)
	}
	if !strings.Contains(b.get("/users").body, `data-username="olga"`) {
		t.Errorf("users page does not list olga")
	}
	olga := h.browser()
	olga.login("olga", "password-olga")

	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"short password", []string{"/users", "username", "x", "password", "short", "role", "viewer"}, "error: Password must be at least 10 characters."},
		{"bad role", []string{"/users", "username", "x", "password", "password-x", "role", "god"}, "error: unknown role"},
		{"bad name", []string{"/users", "username", "a b", "password", "password-x", "role", "viewer"}, "error: username contains"},
		{"duplicate", []string{"/users", "username", "olga", "password", "password-x", "role", "viewer"}, "error: "},
		{"self delete", []string{"/users/root/delete"}, "error: You cannot delete yourself"},
		{"new password", []string{"/users/olga/password", "password", "new-password-olga"}, "success: Password of olga changed"},
	}
	for _, tt := range tests {
		if got := b.flashOf(post(tt.kv[0], tt.kv[1:]...)); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: flash = %q, want %q…", tt.name, got, tt.want)
		}
	}
	// Olga's session ended with the password change.
	if p := olga.get("/devices"); p.status != http.StatusSeeOther {
		t.Errorf("olga's old session still works after a password change: %d", p.status)
	}
	olga.login("olga", "new-password-olga")

	if got := b.flashOf(post("/users/olga/delete")); got != "success: User olga deleted." {
		t.Errorf("delete flash = %q", got)
	}
	if p := olga.get("/devices"); p.status != http.StatusSeeOther {
		t.Errorf("deleted user's session still works: %d", p.status)
	}
}

func TestErrorPages(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("vic", db.RoleViewer, "password-vic")
	b := h.browser()
	b.login("vic", "password-vic")
	p := b.get("/devices/nope")
	if p.status != 404 || !strings.Contains(p.body, `data-testid="error-message">device &#34;nope&#34;: not found<`) {
		t.Errorf("unknown device page = %d:\n%s", p.status, p.body)
	}
	if !strings.Contains(p.body, `data-testid="user-role"`) {
		t.Errorf("error page lost the layout's user menu")
	}
	// htmx requests get the bare message for a toast.
	p = b.do("GET", "/devices/nope", nil, map[string]string{"HX-Request": "true"})
	if p.status != 404 || strings.Contains(p.body, "<") || !strings.Contains(p.body, "not found") {
		t.Errorf("htmx error = %d %q, want a plain message", p.status, p.body)
	}
}
