package views

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
)

var testNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

type fakeAssets struct{}

func (fakeAssets) Path(name string) string { return "/static/" + name + "?v=12345678" }

func page(user *UserInfo) Page {
	return Page{User: user, CSRF: "tok-123", Assets: fakeAssets{}, Now: testNow}
}

var (
	admin    = &UserInfo{Username: "root", Role: RoleAdmin}
	operator = &UserInfo{Username: "olga", Role: RoleOperator}
	viewer   = &UserInfo{Username: "vic", Role: RoleViewer}
)

// doc renders c and parses the result, failing on a render error.
type doc struct {
	t    *testing.T
	root *html.Node
	raw  string
}

func render(t *testing.T, c templ.Component) doc {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("render: %v", err)
	}
	root, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("parse rendered HTML: %v", err)
	}
	return doc{t: t, root: root, raw: buf.String()}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// all returns the elements matching a tiny selector: "tag", "[attr]",
// "[attr=value]" or "tag[attr=value]".
func (d doc) all(sel string) []*html.Node {
	tag, key, val, hasVal := sel, "", "", false
	if i := strings.IndexByte(sel, '['); i >= 0 {
		tag = sel[:i]
		inner := strings.TrimSuffix(sel[i+1:], "]")
		key, val, hasVal = strings.Cut(inner, "=")
	}
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (tag == "" || n.Data == tag) {
			if key == "" {
				out = append(out, n)
			} else if v, ok := attr(n, key); ok && (!hasVal || v == val) {
				out = append(out, n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

func (d doc) one(sel string) *html.Node {
	d.t.Helper()
	nodes := d.all(sel)
	if len(nodes) != 1 {
		d.t.Fatalf("found %d elements for %q, want 1", len(nodes), sel)
	}
	return nodes[0]
}

func (d doc) count(sel string, want int) {
	d.t.Helper()
	if got := len(d.all(sel)); got != want {
		d.t.Errorf("found %d elements for %q, want %d", got, sel, want)
	}
}

func (d doc) attrIs(n *html.Node, key, want string) {
	d.t.Helper()
	if got, _ := attr(n, key); got != want {
		d.t.Errorf("<%s %s=%q>, want %q", n.Data, key, got, want)
	}
}

// checkForms asserts every POST form carries the CSRF token, and every
// visible input, select and textarea has a label.
func (d doc) checkForms(token string) {
	d.t.Helper()
	for _, f := range d.all("form") {
		if m, _ := attr(f, "method"); m != "post" {
			continue
		}
		found := false
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "input" {
				if name, _ := attr(n, "name"); name == "_csrf" {
					v, _ := attr(n, "value")
					found = v == token
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(f)
		if !found {
			action, _ := attr(f, "action")
			d.t.Errorf("POST form to %q has no _csrf field with the session token", action)
		}
	}
	labels := map[string]bool{}
	for _, l := range d.all("label[for]") {
		v, _ := attr(l, "for")
		labels[v] = true
	}
	for _, tag := range []string{"input", "select", "textarea"} {
		for _, n := range d.all(tag) {
			if typ, _ := attr(n, "type"); typ == "hidden" {
				continue
			}
			id, _ := attr(n, "id")
			if _, aria := attr(n, "aria-label"); !labels[id] && !aria {
				name, _ := attr(n, "name")
				d.t.Errorf("<%s name=%q> has no label", tag, name)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	tests := []struct {
		name      string
		user      *UserInfo
		wantNav   []string
		wantAdmin bool
	}{
		{name: "admin", user: admin, wantNav: []string{"Fleet", "Jobs", "Import", "Users", "Policies", "Audit", "Storage"}},
		{name: "operator", user: operator, wantNav: []string{"Fleet", "Jobs", "Import"}},
		{name: "viewer", user: viewer, wantNav: []string{"Fleet", "Jobs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := render(t, FleetView(FleetPage{Page: page(tt.user), FleetQuery: FleetQuery{PageNum: 1}, PageCount: 1}))
			d.attrIs(d.one("meta[name=csrf-token]"), "content", "tok-123")
			d.attrIs(d.one("body"), "data-page", "fleet")
			d.attrIs(d.one("a[class=skip-link]"), "href", "#main")
			d.one("main[id=main]")
			d.one("title")
			if got := text(d.one("title")); got != "Fleet · Fieldhub" {
				t.Errorf("title = %q, want %q", got, "Fleet · Fieldhub")
			}
			d.attrIs(d.one("link[rel=stylesheet]"), "href", "/static/app.css?v=12345678")
			d.one("script[src=/static/app.js?v=12345678]")
			var nav []string
			for _, a := range d.all("a") {
				if p := a.Parent; p != nil && p.Data == "li" && p.Parent != nil && p.Parent.Parent != nil {
					if cls, _ := attr(p.Parent.Parent, "class"); cls == "main-nav" {
						nav = append(nav, text(a))
					}
				}
			}
			if fmt.Sprint(nav) != fmt.Sprint(tt.wantNav) {
				t.Errorf("nav = %v, want %v", nav, tt.wantNav)
			}
			if got := text(d.one("a[aria-current=page]")); got != "Fleet" {
				t.Errorf("current nav = %q, want Fleet", got)
			}
			if got := text(d.one("[data-testid=user-role]")); got != tt.user.Role {
				t.Errorf("role shown = %q, want %q", got, tt.user.Role)
			}
			d.one("form[action=/logout]")
			d.one("button[data-theme-toggle]")
			d.checkForms("tok-123")
		})
	}
}

func TestLayoutFlash(t *testing.T) {
	p := page(admin)
	p.Flash = "Device <b>created</b>"
	d := render(t, FleetView(FleetPage{Page: p}))
	f := d.one("[data-testid=flash]")
	if got := text(f); !strings.Contains(got, "Device <b>created</b>") {
		t.Errorf("flash text = %q, want the message escaped", got)
	}
	d.attrIs(f, "role", "status")

	p.FlashError = true
	d = render(t, FleetView(FleetPage{Page: p}))
	d.attrIs(d.one("[data-testid=flash]"), "role", "alert")
}

func TestLoginView(t *testing.T) {
	d := render(t, LoginView(LoginPage{Page: Page{CSRF: "pre-session", Assets: fakeAssets{}}, Username: "alice", Error: "Wrong username or password."}))
	d.count("nav", 0)
	d.count("[data-testid=user-menu]", 0)
	d.count("meta[name=csrf-token]", 1)
	form := d.one("form[action=/login]")
	d.attrIs(form, "method", "post")
	d.attrIs(d.one("input[name=username]"), "value", "alice")
	d.attrIs(d.one("input[name=password]"), "type", "password")
	if got := text(d.one("[data-testid=login-error]")); got != "Wrong username or password." {
		t.Errorf("error = %q", got)
	}
	d.attrIs(d.one("body"), "data-page", "login")
	d.checkForms("pre-session")
}

func TestFleetView(t *testing.T) {
	m := FleetPage{
		Page: page(admin),
		Devices: []DeviceRow{
			{ID: "dev-1", Name: "Boiler", Status: StatusOnline, LastActivity: testNow.Add(-5 * time.Minute),
				Tags: []Tag{{"site", "berlin"}, {"floor", "2"}}},
			{ID: "odd?#%id", Name: "<script>alert(1)</script>", Status: StatusDisabled},
			{ID: "dev-3", Status: StatusOffline, LastActivity: testNow.Add(-50 * time.Hour)},
		},
		FleetQuery: FleetQuery{Query: "site=berlin", Status: StatusOnline, PageNum: 3},
		PageCount:  9, Total: 420,
		Online: 7000, Offline: 2990, Disabled: 10, MessagesPerMinute: 1234.56,
		LiveURL: "/events?stream=fleet",
	}
	d := render(t, FleetView(m))
	d.checkForms("tok-123")

	rows := d.all("tr[data-testid=device-row]")
	if len(rows) != 3 {
		t.Fatalf("%d device rows, want 3", len(rows))
	}
	d.attrIs(rows[0], "data-device-id", "dev-1")
	d.attrIs(rows[1], "data-device-id", "odd?#%id")
	d.one("a[href=/devices/dev-1]")
	d.one("a[href=/devices/odd%3F%23%25id]")
	if strings.Contains(d.raw, "<script>alert") {
		t.Errorf("device name was not escaped")
	}
	badges := d.all("[data-testid=status-badge]")
	var statuses []string
	for _, b := range badges {
		s, _ := attr(b, "data-status")
		statuses = append(statuses, s+":"+text(b))
	}
	if got, want := fmt.Sprint(statuses), "[online:Online disabled:Disabled offline:Offline]"; got != want {
		t.Errorf("badges = %s, want %s", got, want)
	}
	times := d.all("time[data-relative]")
	var rel []string
	for _, tm := range times {
		rel = append(rel, text(tm))
	}
	if got, want := fmt.Sprint(rel), "[5 min ago never 2 d ago]"; got != want {
		t.Errorf("relative times = %s, want %s", got, want)
	}
	d.attrIs(times[0], "datetime", "2026-03-04T11:55:00Z")
	if got := text(rows[0]); !strings.Contains(got, "site=berlin") || !strings.Contains(got, "floor=2") {
		t.Errorf("row 0 = %q, want tags shown", got)
	}

	d.attrIs(d.one("table[data-fleet-table]"), "data-stream-url", "/events?stream=fleet")
	d.one("[data-live-status]")
	stats := map[string]string{"total": "10,000", "online": "7,000", "offline": "2,990", "disabled": "10", "rate": "1,235"}
	for kind, want := range stats {
		if got := text(d.one("[data-testid=stat-" + kind + "]")); got != want {
			t.Errorf("stat %s = %q, want %q", kind, got, want)
		}
	}

	// Filters: a GET form that shows the current values.
	filter := d.one("form[data-fleet-filter]")
	d.attrIs(filter, "method", "get")
	d.attrIs(d.one("input[name=q]"), "value", "site=berlin")
	if _, ok := attr(d.one("option[value=online]"), "selected"); !ok {
		t.Errorf("status option online not selected")
	}

	// Pagination keeps the filters.
	d.one("a[rel=prev]")
	d.attrIs(d.one("a[rel=prev]"), "href", "/devices?page=2&q=site%3Dberlin&status=online")
	d.attrIs(d.one("a[rel=next]"), "href", "/devices?page=4&q=site%3Dberlin&status=online")
	d.attrIs(d.one("a[aria-label=Page 1]"), "href", "/devices?q=site%3Dberlin&status=online")
	if got := text(d.one("span[class=current]")); got != "3" {
		t.Errorf("current page = %q, want 3", got)
	}
	if got := text(d.one("[data-testid=fleet-count]")); got != "420 devices · page 3 of 9" {
		t.Errorf("count = %q", got)
	}

	// Admins get the add form with the fields the handler reads.
	add := d.one("form[data-testid=add-device-form]")
	d.attrIs(add, "action", "/devices")
	d.attrIs(add, "method", "post")
	for _, name := range []string{"id", "name", "tags"} {
		d.one("input[name=" + name + "]")
	}
}

func TestFleetViewNonAdmin(t *testing.T) {
	for _, u := range []*UserInfo{operator, viewer} {
		d := render(t, FleetView(FleetPage{Page: page(u), Devices: []DeviceRow{{ID: "a", Status: StatusOnline}}, FleetQuery: FleetQuery{PageNum: 1}, PageCount: 1, Total: 1}))
		d.count("[data-testid=add-device]", 0)
		d.count("form[data-testid=add-device-form]", 0)
		d.count("[data-live-status]", 0)
		d.count("a[rel=next]", 0)
		if got := text(d.one("[data-testid=fleet-count]")); got != "1 device" {
			t.Errorf("%s: count = %q, want %q", u.Role, got, "1 device")
		}
	}
}

func TestFleetViewEmpty(t *testing.T) {
	d := render(t, FleetView(FleetPage{Page: page(viewer)}))
	if got := text(d.one("[data-testid=fleet-empty]")); !strings.Contains(got, "No devices yet") {
		t.Errorf("empty state = %q", got)
	}
	d.count("table", 0)
	d = render(t, FleetView(FleetPage{Page: page(viewer), FleetQuery: FleetQuery{Query: "zzz"}}))
	if got := text(d.one("[data-testid=fleet-empty]")); !strings.Contains(got, "No devices match") {
		t.Errorf("filtered empty state = %q", got)
	}
}

func TestDeviceView(t *testing.T) {
	dev := DeviceDetail{
		ID: "pump:7", Name: "Pump 7", Status: StatusOnline, Enabled: true,
		Tags:      []Tag{{"site", "oslo"}},
		CreatedAt: testNow.Add(-72 * time.Hour), LastActivity: testNow.Add(-30 * time.Second),
	}
	d := render(t, DeviceView(DevicePage{Page: page(admin), Device: dev, LiveURL: "/devices/pump:7/events"}))
	d.checkForms("tok-123")
	d.attrIs(d.one("body"), "data-page", "device")
	if got := text(d.one("[data-testid=device-title]")); got != "Pump 7" {
		t.Errorf("title = %q", got)
	}
	d.attrIs(d.one("[data-testid=device-status]"), "data-status", "online")
	d.attrIs(d.one("[data-device-stream]"), "data-stream-url", "/devices/pump:7/events")
	if got := text(d.one("time[data-last-activity]")); got != "30 s ago" {
		t.Errorf("last activity = %q, want 30 s ago", got)
	}
	if got := text(d.one("a[aria-current=page]")); got != "Fleet" {
		t.Errorf("nav = %q, want Fleet", got)
	}

	// Admin actions, each a POST to the documented address.
	for _, action := range []string{"/devices/pump:7", "/devices/pump:7/disable", "/devices/pump:7/delete"} {
		d.attrIs(d.one("form[action="+action+"]"), "method", "post")
	}
	d.count("form[action=/devices/pump:7/enable]", 0)
	rotate := d.all("form[action=/devices/pump:7/keys/rotate]")
	if len(rotate) != 2 {
		t.Fatalf("%d rotate forms, want 2", len(rotate))
	}
	d.one("input[value=primary]")
	d.one("input[value=secondary]")
	d.attrIs(d.one("input[name=tags]"), "value", "site=oslo")
	d.attrIs(d.one("input[name=name]"), "value", "Pump 7")
	show := d.one("[data-testid=show-connection-string]")
	d.attrIs(show, "hx-get", "/devices/pump:7/connection-string")
	d.attrIs(show, "hx-target", "#connection-string")
	d.one("[id=connection-string]")

	// Sections for other components are absent until given.
	d.count("[id=telemetry]", 0)
	d.count("[id=commands]", 0)
	// Tabs link to their panels; an admin has Settings, with the actions.
	var tabs []string
	for _, a := range d.all("a[role=tab]") {
		href, _ := attr(a, "href")
		tabs = append(tabs, href)
	}
	if got := strings.Join(tabs, " "); got != "#overview #telemetry #commands #twin #messages #settings" {
		t.Errorf("tabs = %s", got)
	}
	d.attrIs(d.one("section[id=overview]"), "role", "tabpanel")
	d.attrIs(d.one("section[id=settings]"), "role", "tabpanel")
	d.one("[data-testid=device-admin]")
	// Not connected: the header says what that means.
	if got := text(d.one("[data-testid=device-connection]")); !strings.Contains(got, "HTTPS only — polls for messages") {
		t.Errorf("connection = %q", got)
	}

	dev.Enabled, dev.Status = false, StatusDisabled
	d = render(t, DeviceView(DevicePage{Page: page(admin), Device: dev,
		Telemetry: templ.Raw(`<p id="tel-probe">charts here</p>`), Commands: templ.Raw(`<p id="cmd-probe">commands here</p>`)}))
	d.one("form[action=/devices/pump:7/enable]")
	d.count("form[action=/devices/pump:7/disable]", 0)
	d.attrIs(d.one("[data-testid=device-status]"), "data-status", "disabled")
	d.one("[id=tel-probe]")
	d.one("[id=cmd-probe]")
	d.count("[data-live-status]", 0)

	// Connected over MQTT: protocol, since, from where; tiles of the
	// latest values.
	d = render(t, DeviceView(DevicePage{Page: page(admin), Device: dev,
		Connection: DeviceConnection{Connected: true, Protocol: "mqtt", Remote: "10.0.0.5:51234", Since: testNow.Add(-3 * time.Minute)},
		Metrics:    []MetricSummary{{Name: "temperature", LastValue: 21.123456, LastTime: testNow}, {Name: "rpm", LastValue: 1200}}}))
	conn := text(d.one("[data-testid=device-connection]"))
	for _, want := range []string{"Connected over MQTT since 3 min ago from 10.0.0.5:51234", "Takes direct methods"} {
		if !strings.Contains(strings.Join(strings.Fields(conn), " "), want) {
			t.Errorf("connection = %q, want %q", conn, want)
		}
	}
	var tiles []string
	for _, li := range d.all("li[data-tile]") {
		tiles = append(tiles, strings.Join(strings.Fields(text(li)), " "))
	}
	if got := strings.Join(tiles, " | "); !strings.HasPrefix(got, "temperature 21.1235") || !strings.Contains(got, "| rpm 1200") {
		t.Errorf("tiles = %q", got)
	}
}

func TestDeviceViewNonAdmin(t *testing.T) {
	for _, u := range []*UserInfo{operator, viewer} {
		d := render(t, DeviceView(DevicePage{Page: page(u), Device: DeviceDetail{ID: "x", Status: StatusOffline}}))
		d.count("[data-testid=device-admin]", 0)
		d.count("[id=settings]", 0)
		d.count("a[href=#settings]", 0)
		d.count("form[method=post]", 1) // logout only
		d.count("[hx-get]", 0)
		if got := text(d.one("[data-testid=device-title]")); got != "x" {
			t.Errorf("title without name = %q, want the id", got)
		}
	}
}

func TestConnectionString(t *testing.T) {
	cs := "HostName=hub.local;DeviceId=d<1>;SharedAccessKey=abc+/="
	d := render(t, ConnectionString(cs, false))
	if got := text(d.one("[data-testid=connection-string]")); got != cs {
		t.Errorf("connection string = %q, want %q", got, cs)
	}
	d.attrIs(d.one("button[data-copy-target]"), "data-copy-target", "connection-string-value")
	if got := text(d.one("p[class=hint]")); !strings.Contains(got, "like a password") {
		t.Errorf("hint with a key = %q", got)
	}
	d = render(t, ConnectionString("HostName=hub.local;DeviceId=cam;x509=true", true))
	if got := text(d.one("p[class=hint]")); !strings.Contains(got, "no secret") {
		t.Errorf("hint of an X.509 device = %q", got)
	}
}

func TestUsersView(t *testing.T) {
	m := UsersPage{Page: page(admin), Users: []UserRow{
		{Username: "root", Role: RoleAdmin, CreatedAt: testNow.Add(-40 * 24 * time.Hour), LastLoginAt: testNow.Add(-3 * time.Minute)},
		{Username: "olga", Role: RoleOperator, CreatedAt: testNow.Add(-2 * time.Hour)},
	}, Tokens: []TokenRow{
		{ID: 3, Name: "grafana", Role: RoleViewer, Prefix: "fh_abcdefg", CreatedAt: testNow.Add(-time.Hour),
			LastUsedAt: testNow.Add(-5 * time.Minute), ExpiresAt: testNow.Add(30 * 24 * time.Hour), State: TokenActive},
		{ID: 2, Name: "old-ci", Role: RoleAdmin, Prefix: "fh_zzzzzzz", ExpiresAt: testNow.Add(-time.Hour), State: TokenExpired},
		{ID: 1, Name: "gone", Role: RoleOperator, Prefix: "fh_yyyyyyy", RevokedAt: testNow.Add(-time.Hour), State: TokenRevoked},
	}}
	d := render(t, UsersView(m))
	d.checkForms("tok-123")
	d.attrIs(d.one("body"), "data-page", "users")
	if got := text(d.one("a[aria-current=page]")); got != "Users" {
		t.Errorf("nav = %q, want Users", got)
	}
	d.count("tr[data-testid=user-row]", 2)
	add := d.one("form[action=/users]")
	d.attrIs(add, "method", "post")
	d.one("input[name=username]")
	// Role pickers: adding a user, a new token, olga's role (not one's own).
	d.count("select[name=role]", 3)
	d.count("option[selected]", 4)
	d.one("form[action=/users/olga/role]")
	d.count("form[action=/users/root/role]", 0)
	d.one("form[action=/users/root/password]")
	d.one("form[action=/users/olga/password]")
	// Nobody deletes themselves from this page.
	d.count("form[action=/users/root/delete]", 0)
	d.one("form[action=/users/olga/delete]")
	if got := text(d.all("tr[data-testid=user-row]")[1]); !strings.Contains(got, "2 h ago") {
		t.Errorf("olga row = %q, want created 2 h ago", got)
	}
	var logins []string
	for _, n := range d.all("td[data-testid=user-last-login]") {
		logins = append(logins, text(n))
	}
	if got := strings.Join(logins, "|"); got != "3 min ago|never" {
		t.Errorf("last sign-ins = %q", got)
	}

	d.one("form[action=/tokens]")
	d.count("tr[data-testid=token-row]", 3)
	var expiries, states []string
	for _, n := range d.all("td[data-testid=token-expires]") {
		expiries = append(expiries, text(n))
	}
	for _, n := range d.all("span[data-testid=token-state]") {
		states = append(states, text(n))
	}
	if got := strings.Join(expiries, "|"); got != "in 30 d|expired 1 h ago|never" {
		t.Errorf("expiries = %q", got)
	}
	if got := strings.Join(states, "|"); got != "active|expired|revoked" {
		t.Errorf("states = %q", got)
	}
	// Only the active token can be revoked.
	d.one("form[action=/tokens/3/revoke]")
	d.count("button[data-testid=confirm-revoke-token]", 1)
	d.count("div[data-testid=new-token]", 0)

	m.NewToken = &NewToken{ID: 4, Name: "ci", Role: RoleOperator, Secret: "fh_secret-value"}
	d = render(t, UsersView(m))
	if got := text(d.one("code[data-testid=new-token-secret]")); got != "fh_secret-value" {
		t.Errorf("new token secret = %q", got)
	}
	d.attrIs(d.one("button[data-copy-target=new-token-secret]"), "autofocus", "")
}

func TestErrorView(t *testing.T) {
	d := render(t, ErrorView(ErrorPage{Page: page(viewer), Status: 404, Message: "No device with id \"x\"."}))
	if got := text(d.one("[data-testid=error-status]")); got != "404" {
		t.Errorf("status = %q", got)
	}
	if got := text(d.one("h1")); got != "Not Found" {
		t.Errorf("heading = %q", got)
	}
	if got := text(d.one("[data-testid=error-message]")); got != `No device with id "x".` {
		t.Errorf("message = %q", got)
	}
	d.attrIs(d.one("a[class=btn]"), "href", "/devices")

	d = render(t, ErrorView(ErrorPage{Page: Page{}, Status: 403}))
	d.one("a[href=/login]")
	d.attrIs(d.one("link[rel=stylesheet]"), "href", "/static/app.css")
}

func TestRelativeTime(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Minute, "just now"},
		{0, "just now"},
		{9 * time.Second, "just now"},
		{10 * time.Second, "10 s ago"},
		{59 * time.Second, "59 s ago"},
		{time.Minute, "1 min ago"},
		{59*time.Minute + 59*time.Second, "59 min ago"},
		{time.Hour, "1 h ago"},
		{23 * time.Hour, "23 h ago"},
		{24 * time.Hour, "1 d ago"},
		{29 * 24 * time.Hour, "29 d ago"},
		{30 * 24 * time.Hour, "2026-02-02"},
	}
	for _, tt := range tests {
		if got := relativeTime(testNow.Add(-tt.ago), testNow); got != tt.want {
			t.Errorf("relativeTime(now-%v) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := relativeTime(time.Time{}, testNow); got != "never" {
		t.Errorf("relativeTime(zero) = %q, want never", got)
	}
}

func TestPageWindow(t *testing.T) {
	tests := []struct {
		current, count int
		want           string
	}{
		{1, 0, "[]"},
		{1, 1, "[]"},
		{1, 2, "[1 2]"},
		{1, 9, "[1 2 3 0 9]"},
		{5, 9, "[1 0 3 4 5 6 7 0 9]"},
		{4, 9, "[1 2 3 4 5 6 0 9]"},
		{9, 9, "[1 0 7 8 9]"},
		{100, 200, "[1 0 98 99 100 101 102 0 200]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(pageWindow(tt.current, tt.count)); got != tt.want {
			t.Errorf("pageWindow(%d, %d) = %s, want %s", tt.current, tt.count, got, tt.want)
		}
	}
}

func TestFormatters(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"thousands 0", thousands(0), "0"},
		{"thousands 999", thousands(999), "999"},
		{"thousands 1000", thousands(1000), "1,000"},
		{"thousands 1234567", thousands(1234567), "1,234,567"},
		{"thousands -1000", thousands(-1000), "-1,000"},
		{"rate 0", rate(0), "0"},
		{"rate 12.345", rate(12.345), "12.3"},
		{"rate 99.96", rate(99.96), "100"},
		{"rate 1234.5", rate(1234.5), "1,235"},
		{"tags", tagsText([]Tag{{"a", "1"}, {"b", "x y"}}), "a=1, b=x y"},
		{"tags empty", tagsText(nil), ""},
		{"device path", devicePath("a b/c", "/enable"), "/devices/a%20b%2Fc/enable"},
		{"fleet url plain", FleetQuery{}.URL(), "/devices"},
		{"fleet url", FleetQuery{Query: "x&y", Status: "offline", PageNum: 2}.URL(), "/devices?page=2&q=x%26y&status=offline"},
		{"fleet url defaults left out", FleetQuery{Sort: SortID, Size: DefaultFleetPageSize, PageNum: 1}.URL(), "/devices"},
		{"fleet url sorted", FleetQuery{Sort: SortName, Desc: true, Size: 200, PageNum: 3}.URL(), "/devices?order=desc&page=3&size=200&sort=name"},
		{"fleet sort by a new column", FleetQuery{Query: "a", PageNum: 4}.SortedBy(SortName).URL(), "/devices?q=a&sort=name"},
		{"fleet sort reversed", FleetQuery{Sort: SortName}.SortedBy(SortName).URL(), "/devices?order=desc&sort=name"},
		{"fleet sort by id again", FleetQuery{}.SortedBy(SortID).URL(), "/devices?order=desc"},
		{"fleet last activity starts recent", FleetQuery{}.SortedBy(SortLastActivity).URL(), "/devices?order=desc&sort=lastActivity"},
		{"fleet export", FleetQuery{Query: "site=berlin", Sort: SortStatus, Size: 25, PageNum: 2}.ExportURL(), "/api/v1/devices?format=csv&q=site%3Dberlin&sort=status"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// fleet10k is a fleet page with 10,000 rows, a worst case the handlers never
// produce (they paginate) but that proves the template is not the bottleneck.
func fleet10k() FleetPage {
	m := FleetPage{Page: page(admin), FleetQuery: FleetQuery{PageNum: 1}, PageCount: 1, Total: 10000, Online: 6000, Offline: 3900, Disabled: 100}
	statuses := []string{StatusOnline, StatusOffline, StatusDisabled}
	for i := range 10000 {
		m.Devices = append(m.Devices, DeviceRow{
			ID:           fmt.Sprintf("sensor-%05d", i),
			Name:         fmt.Sprintf("Sensor %d", i),
			Status:       statuses[i%3],
			LastActivity: testNow.Add(-time.Duration(i) * time.Second),
			Tags:         []Tag{{"site", "berlin"}, {"floor", fmt.Sprint(i % 7)}},
		})
	}
	return m
}

func TestFleetPage10kRenders(t *testing.T) {
	d := render(t, FleetView(fleet10k()))
	d.count("tr[data-testid=device-row]", 10000)
}

func BenchmarkFleetPage10k(b *testing.B) {
	m := fleet10k()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := FleetView(m).Render(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
