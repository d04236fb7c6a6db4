package handlers_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/mqtt"
)

// queryFleet is a page hub with 30 devices q-00…q-29 on three sites; the
// even ones report firmware 2.0.1 or 2.2.0.
func queryFleet(t *testing.T) *pageHub {
	t.Helper()
	h := newPageHub(t)
	ctx := context.Background()
	sites := []string{"berlin", "paris", "rome"}
	for i := range 30 {
		id := fmt.Sprintf("q-%02d", i)
		if _, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: id, Tags: map[string]string{"site": sites[i%3]}}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			fw := []string{"2.0.1", "2.2.0"}[i%4/2]
			if _, err := h.db.PatchTwin(ctx, id, db.TwinReported, map[string]any{"firmware": fw}, 0, 1<<16); err != nil {
				t.Fatal(err)
			}
		}
	}
	return h
}

var (
	queryNext  = regexp.MustCompile(`<a href="([^"]+)" rel="next" data-testid="query-next">`)
	queryCells = regexp.MustCompile(`<td class="mono" data-label="[^"]*">([^<]*)</td>`)
)

// TestFleetAdvancedQuery: the fleet search takes a device query (a
// condition, or a whole SELECT) with mode=query or by its SELECT, narrows
// it by the status filter, pages through it with continuation tokens in
// the address, shows a projection's or a GROUP BY's rows, and says what is
// wrong with a bad query beside the field, pointing at the column.
func TestFleetAdvancedQuery(t *testing.T) {
	h := queryFleet(t)
	h.addUser("olga", db.RoleOperator, "password-olga")
	b := h.browser()
	b.login("olga", "password-olga")
	ids := func(p page) string {
		var out []string
		for _, m := range rowIDs.FindAllStringSubmatch(p.body, -1) {
			out = append(out, m[1])
		}
		return strings.Join(out, " ")
	}
	get := func(q string, extra ...string) page {
		t.Helper()
		v := url.Values{"q": {q}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return b.get("/devices?" + v.Encode())
	}

	p := get("tags.site = 'berlin' AND properties.reported.firmware < '2.1'", "mode", "query")
	if p.status != 200 || ids(p) != "q-00 q-12 q-24" {
		t.Errorf("condition: %d, rows %q", p.status, ids(p))
	}
	if !strings.Contains(p.body, `id="fleet-query-mode" name="mode" value="query" checked`) || !strings.Contains(p.body, "3 devices match") {
		t.Errorf("condition: the mode is not checked or the count is missing:\n%s", p.body)
	}
	// An operator may run a job on what the query selects: the jobs page
	// opens with its condition.
	job := regexp.MustCompile(`<a class="btn btn-small" href="([^"]+)" data-testid="fleet-run-job">`).FindStringSubmatch(p.body)
	if job == nil {
		t.Fatalf("no job link:\n%s", p.body)
	}
	jp := b.get(strings.ReplaceAll(job[1], "&amp;", "&"))
	if jp.status != 200 || !strings.Contains(jp.body, `>tags.site = &#39;berlin&#39; AND properties.reported.firmware &lt; &#39;2.1&#39;</textarea>`) {
		t.Errorf("jobs page from the link %s: %d\n%s", job[1], jp.status, jp.body)
	}
	// A whole query is recognized without mode=query.
	p = get("SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'")
	if p.status != 200 || ids(p) != "q-00 q-12 q-24" {
		t.Errorf("SELECT: %d, rows %q", p.status, ids(p))
	}
	// The status filter narrows the query.
	off := false
	if _, err := h.db.UpdateDevice(context.Background(), "q-12", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if p = get("tags.site = 'berlin' AND properties.reported.firmware < '2.1'", "mode", "query", "status", "disabled"); ids(p) != "q-12" {
		t.Errorf("with status=disabled: rows %q, want q-12", ids(p))
	}
	if p = get("tags.site = 'berlin'", "mode", "query", "status", "online"); ids(p) != "" || !strings.Contains(p.body, `data-testid="fleet-empty"`) {
		t.Errorf("with status=online: rows %q, want none", ids(p))
	}

	// Pages: 30 devices, 25 a page; the next page's address carries its token.
	p = get("", "mode", "query", "size", "25")
	if n := len(rowIDs.FindAllString(p.body, -1)); n != 25 || !strings.Contains(p.body, "30 devices match") {
		t.Fatalf("first page: %d rows\n%s", n, p.body)
	}
	next := queryNext.FindStringSubmatch(p.body)
	if next == nil {
		t.Fatalf("no next page link:\n%s", p.body)
	}
	p = b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	if ids(p) != "q-25 q-26 q-27 q-28 q-29" || !strings.Contains(p.body, `data-testid="query-first"`) || !strings.Contains(p.body, "30 devices match") {
		t.Errorf("second page: rows %q\n%s", ids(p), p.body)
	}

	// A projection and a GROUP BY show their rows.
	p = get("SELECT deviceId, tags.site FROM devices WHERE tags.site = 'rome' AND deviceId < 'q-06'")
	if got := fmt.Sprint(cells(p)); p.status != 200 || got != "[q-02 rome q-05 rome]" || !strings.Contains(p.body, `<th scope="col" class="mono">site</th>`) {
		t.Errorf("projection: %d cells %s\n%s", p.status, got, p.body)
	}
	p = get("SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site")
	if got := fmt.Sprint(cells(p)); got != "[berlin 10 paris 10 rome 10]" {
		t.Errorf("GROUP BY: cells %s", got)
	}

	// A mistake: the page says what and where, beside the field; the
	// results part alone (search as you type) is the message as text.
	p = get("tags.site = 'berlin' AN status = 'enabled'", "mode", "query")
	if p.status != 422 || !strings.Contains(p.body, `aria-invalid="true"`) || !regexp.MustCompile(`data-testid="fleet-search-error">[^<]*at column 22`).MatchString(p.body) {
		t.Errorf("bad query: %d\n%s", p.status, p.body)
	}
	frag := b.do("GET", "/devices?mode=query&q="+url.QueryEscape("tags.site = "), nil, map[string]string{"X-Fieldhub-Fragment": "fleet-results"})
	if frag.status != 422 || strings.Contains(frag.body, "<") || !strings.Contains(frag.body, "column") {
		t.Errorf("bad query, results only: %d %q", frag.status, frag.body)
	}
	// Without mode=query the same text is a plain search, as before.
	for _, plain := range []string{"tags.site", "select pump"} {
		if p = get(plain); p.status != 200 || ids(p) != "" || strings.Contains(p.body, `id="fleet-query-mode" name="mode" value="query" checked`) {
			t.Errorf("plain search for %q: %d rows %q", plain, p.status, ids(p))
		}
	}
}

func cells(p page) []string {
	var out []string
	for _, m := range queryCells.FindAllStringSubmatch(p.body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestFleetExportWithKeysButton: the fleet page offers the export with
// keys to admins only.
func TestFleetExportWithKeysButton(t *testing.T) {
	h := newPageHub(t)
	h.addDevice("pump-1")
	h.addUser("ada", db.RoleAdmin, "password-ada")
	h.addUser("olga", db.RoleOperator, "password-olga")
	for user, want := range map[string]bool{"ada": true, "olga": false} {
		b := h.browser()
		b.login(user, "password-"+user)
		p := b.get("/devices?q=pump")
		if got := strings.Contains(p.body, `href="/api/v1/devices?format=csv&amp;q=pump&amp;keys=true"`); got != want {
			t.Errorf("%s sees the export with keys: %v, want %v", user, got, want)
		}
	}
}

// TestDevicePageNamesTheNode: a device connected to another instance of a
// cluster shows as connected, to that node, since its connect.
func TestDevicePageNamesTheNode(t *testing.T) {
	if handlers.ActionDeviceConnected != mqtt.ActionConnected {
		t.Fatalf("handlers.ActionDeviceConnected = %q, mqtt writes %q", handlers.ActionDeviceConnected, mqtt.ActionConnected)
	}
	h := newPageHub(t)
	h.addDevice("pump-1")
	h.addUser("vic", db.RoleViewer, "password-vic")
	ctx := context.Background()
	since := time.Date(2026, 5, 1, 11, 30, 0, 0, time.UTC)
	if err := h.db.RecordAudit(ctx, db.AuditEntry{At: since, Actor: "device:pump-1", Action: mqtt.ActionConnected, Target: "pump-1",
		Detail: "MQTT from 10.0.0.7:50000 (sas)"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.SetDeviceConnection(ctx, "pump-1", "node-b", true); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("vic", "password-vic")
	p := b.get("/devices/pump-1")
	if p.status != 200 || !strings.Contains(p.body, `data-testid="device-connection-node">node-b</span>`) ||
		!strings.Contains(p.body, `data-connected="true" data-node="node-b" data-since="2026-05-01T11:30:00Z"`) {
		t.Errorf("device page: %d\n%s", p.status, p.body)
	}
	// Once it closes there, the page says so.
	if _, err := h.db.SetDeviceConnection(ctx, "pump-1", "node-b", false); err != nil {
		t.Fatal(err)
	}
	if p = b.get("/devices/pump-1"); strings.Contains(p.body, "node-b") || !strings.Contains(p.body, `data-connected="false"`) {
		t.Errorf("device page after the close still names node-b:\n%s", p.body)
	}
}

// TestExportQueried: GET /api/v1/devices?format=csv&mode=query exports the
// devices of a device query (the fleet page's export in query mode).
func TestExportQueried(t *testing.T) {
	h := queryFleet(t)
	h.addUser("vic", db.RoleViewer, "password-vic")
	b := h.browser()
	b.login("vic", "password-vic")
	export := func(q string, extra ...string) page {
		t.Helper()
		v := url.Values{"q": {q}, "format": {"csv"}, "mode": {"query"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return b.get("/api/v1/devices?" + v.Encode())
	}
	p := export("tags.site = 'berlin' AND properties.reported.firmware < '2.1'")
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(p.body), "\n")[1:] {
		ids = append(ids, strings.SplitN(line, ",", 2)[0])
	}
	if p.status != 200 || !strings.HasPrefix(p.body, "id,name,tags,enabled,status,lastActivity\n") || fmt.Sprint(ids) != "[q-00 q-12 q-24]" {
		t.Errorf("export of a query: %d\n%s", p.status, p.body)
	}
	if p = export("SELECT * FROM devices WHERE tags.site = 'rome'"); strings.Count(p.body, "\n") != 11 {
		t.Errorf("export of a SELECT: %d lines\n%s", strings.Count(p.body, "\n"), p.body)
	}
	for _, tt := range []struct {
		q      string
		extra  []string
		status int
		want   string
	}{
		{"tags.site = ", nil, 422, "column"},
		{"SELECT deviceId FROM devices", nil, 422, "an export lists devices"},
		{"tags.site = 'rome'", []string{"format", "json"}, 400, "mode=query goes with format=csv"},
		{"tags.site = 'rome'", []string{"mode", "sql"}, 400, "mode must be query"},
		{"tags.site = 'rome'", []string{"keys", "true"}, 403, "admin"},
	} {
		if p := export(tt.q, tt.extra...); p.status != tt.status || !strings.Contains(p.body, tt.want) {
			t.Errorf("%q %v: %d %s, want %d about %q", tt.q, tt.extra, p.status, p.body, tt.status, tt.want)
		}
	}
	// The page in query mode links to it.
	p = b.get("/devices?mode=query&q=" + url.QueryEscape("tags.site = 'rome'"))
	if !strings.Contains(p.body, `href="/api/v1/devices?format=csv&amp;mode=query&amp;q=tags.site+%3D+%27rome%27" data-testid="fleet-export"`) {
		t.Errorf("the query's page has no export link:\n%s", p.body)
	}
}
