package handlers_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// apiDeviceIDs lists the ids of GET path's devices, in order.
func (h *testHub) apiDeviceIDs(path string) (string, int) {
	h.t.Helper()
	status, body := h.do(req{method: "GET", path: path, bearer: h.tokens[db.RoleViewer]})
	if status != 200 {
		h.t.Fatalf("GET %s = %d %v", path, status, body)
	}
	list, _ := body["devices"].([]any)
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i], _ = d.(map[string]any)["id"].(string)
	}
	total, _ := body["total"].(float64)
	return strings.Join(ids, " "), int(total)
}

// The search box's own example, site=berlin, found nothing: tags were
// matched as JSON text. key=value terms match a tag exactly; plain text
// matches id, name, tag keys and values.
func TestFleetSearch(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	for _, d := range []db.NewDevice{
		{DeviceID: "boiler-1", Name: "Boiler room", Tags: map[string]string{"site": "berlin", "kind": "climate"}},
		{DeviceID: "boiler-2", Name: "Cellar", Tags: map[string]string{"site": "berlin-east", "kind": "climate"}},
		{DeviceID: "pump-1", Name: "Pump", Tags: map[string]string{"site": "berlin", "kind": "water"}},
		{DeviceID: "pump-2", Name: "Berliner pump", Tags: map[string]string{"site": "oslo", "note": "a;b=c \"q\""}},
		{DeviceID: "a=b", Name: "odd id"},
		{DeviceID: "gate", Tags: map[string]string{"site": "new york", "empty": ""}},
	} {
		if _, err := h.db.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, q, want string
	}{
		{"tag term", "site=berlin", "boiler-1 pump-1"},
		{"tag terms are AND-ed", "site=berlin kind=climate", "boiler-1"},
		{"tag value is exact", "site=berl", ""},
		{"tag key is exact", "sit=berlin", ""},
		{"tag and text", "site=berlin pump", "pump-1"},
		{"plain text in a tag value", "berlin", "boiler-1 boiler-2 pump-1 pump-2"},
		{"plain text in a tag key", "kind", "boiler-1 boiler-2 pump-1"},
		{"plain text is case-insensitive", "BOILER", "boiler-1 boiler-2"},
		{"plain text in the name", "cellar", "boiler-2"},
		{"plain terms are AND-ed", "boiler climate", "boiler-1 boiler-2"},
		{"quoted text is one term", `"a=b"`, "a=b"},
		{"quoted tag value", `site="new york"`, "gate"},
		{"empty tag value", "empty=", "gate"},
		{"tag value with punctuation", `note="a;b=c \"q\""`, "pump-2"},
		{"JSON punctuation is not a match", `":"`, ""},
		{"like wildcards are literal", "%", ""},
		{"spaces only", "   ", "a=b boiler-1 boiler-2 gate pump-1 pump-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total := h.apiDeviceIDs("/api/v1/devices?q=" + url.QueryEscape(tt.q))
			if got != tt.want || total != len(strings.Fields(tt.want)) {
				t.Errorf("q=%s: got %q (total %d), want %q", tt.q, got, total, tt.want)
			}
		})
	}
	t.Run("a term without a key", func(t *testing.T) {
		status, body := h.do(req{method: "GET", path: "/api/v1/devices?q=" + url.QueryEscape("=berlin"), bearer: h.tokens[db.RoleViewer]})
		if msg, _ := body["error"].(string); status != 422 || !strings.Contains(msg, "=berlin") {
			t.Errorf("got %d %v, want 422 naming the term", status, body)
		}
	})
}

var rowIDs = regexp.MustCompile(`<tr data-device-id="([^"]+)" data-testid="device-row">`)

// TestFleetSortAndPage10k: at 10,000 devices, every order walks the whole
// fleet without gap or overlap in pages of the page, of the API and in the
// CSV export, and the page links carry the order along.
func TestFleetSortAndPage10k(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) // newPageHub's clock
	h := newPageHub(t, dbClock(func() time.Time { return now }))
	h.addUser("vic", db.RoleViewer, "password-vic")
	dbtest.FillFleet(t, h.db, 10_000, now)
	all, _, err := h.db.Devices(context.Background(), db.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("vic", "password-vic")

	for _, sort := range []string{db.DeviceSortID, db.DeviceSortName, db.DeviceSortStatus, db.DeviceSortLastActivity} {
		for _, desc := range []bool{false, true} {
			order := "asc"
			if desc {
				order = "desc"
			}
			want := dbtest.FleetOrder(all, sort, desc, now)
			t.Run(sort+"/"+order+"/api", func(t *testing.T) {
				var got []string
				for off := 0; off < 10_000; off += 1000 {
					p := b.get(fmt.Sprintf("/api/v1/devices?sort=%s&order=%s&limit=1000&offset=%d", sort, order, off))
					var body struct {
						Devices []struct{ ID string }
						Total   int
					}
					if err := json.Unmarshal([]byte(p.body), &body); err != nil || p.status != 200 || body.Total != 10_000 {
						t.Fatalf("offset %d: %d, total %d, %v", off, p.status, body.Total, err)
					}
					for _, d := range body.Devices {
						got = append(got, d.ID)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("API pages of 1,000 are not the fleet in order (%d devices)", len(got))
				}
			})
			t.Run(sort+"/"+order+"/csv", func(t *testing.T) {
				p := b.get(fmt.Sprintf("/api/v1/devices?format=csv&sort=%s&order=%s", sort, order))
				recs, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
				if err != nil || p.status != 200 || len(recs) != 10_001 {
					t.Fatalf("CSV: %d with %d records, %v", p.status, len(recs), err)
				}
				got := make([]string, 0, len(recs)-1)
				for _, r := range recs[1:] {
					got = append(got, r[0])
				}
				if !slices.Equal(got, want) {
					t.Errorf("CSV export is not the fleet in order")
				}
			})
		}
	}

	// The page: follow its own "Next" links, 200 devices at a time.
	want := dbtest.FleetOrder(all, db.DeviceSortLastActivity, true, now)
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	path := "/devices?sort=lastActivity&order=desc&size=200"
	var got []string
	for pages := 0; path != "" && pages < 60; pages++ {
		p := b.get(path)
		if p.status != 200 {
			t.Fatalf("GET %s = %d", path, p.status)
		}
		if pages == 0 && !strings.Contains(p.body, "10,000 devices · page 1 of 50") {
			t.Errorf("first page does not say 10,000 devices · page 1 of 50")
		}
		for _, m := range rowIDs.FindAllStringSubmatch(p.body, -1) {
			got = append(got, m[1])
		}
		path = ""
		if m := next.FindStringSubmatch(p.body); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the page's Next links walked %d devices, not the fleet by last activity, newest first", len(got))
	}
	if p := b.get("/devices?sort=name&order=desc&size=100&page=999"); p.status != http.StatusSeeOther ||
		p.location != "/devices?order=desc&page=100&size=100&sort=name" {
		t.Errorf("a page past the end = %d to %q, want the last page in the same order", p.status, p.location)
	}
	for _, bad := range []string{"/devices?sort=colour", "/devices?order=up", "/devices?size=30", "/api/v1/devices?sort=colour", "/api/v1/devices?format=xml"} {
		if p := b.get(bad); p.status < 400 || p.status >= 500 {
			t.Errorf("GET %s = %d, want a 4xx", bad, p.status)
		}
	}
}

// TestFleetCSVExport: the export is the filtered, ordered list; fields with
// commas, quotes and newlines are quoted as RFC 4180 says, tags with ';',
// '=' and backslashes are escaped so that they read back; no keys.
func TestFleetCSVExport(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	devs := []db.NewDevice{
		{DeviceID: "a-1", Name: `Hall "north", 2nd floor`, Tags: map[string]string{"site": "berlin", "note": `x;y=z \ "q"`, "k;\\": "v"}},
		{DeviceID: "b-2", Name: "line one\nline two", Tags: map[string]string{"site": "berlin"}},
		{DeviceID: "c-3", Name: "elsewhere", Tags: map[string]string{"site": "oslo"}},
	}
	for _, d := range devs {
		if _, err := h.db.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	if _, err := h.db.UpdateDevice(ctx, "b-2", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.SetDeviceConnection(ctx, "a-1", "node1", true); err != nil {
		t.Fatal(err)
	}
	get := func(path string) *http.Response {
		t.Helper()
		r, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		r.Header.Set("Authorization", "Bearer "+h.tokens[db.RoleAdmin]) // admins see keys in JSON; never in the export
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("/api/v1/devices?format=csv&q=" + url.QueryEscape("site=berlin") + "&sort=name&order=desc")
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!regexp.MustCompile(`^attachment; filename="fieldhub-devices-\d{8}-\d{6}\.csv"$`).MatchString(resp.Header.Get("Content-Disposition")) {
		t.Fatalf("export = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	a1, _ := h.db.Device(ctx, "a-1")
	if strings.Contains(string(raw), a1.PrimaryKey) || strings.Contains(string(raw), "SharedAccessKey") {
		t.Errorf("the export holds a device key")
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("export is not valid CSV: %v\n%s", err, raw)
	}
	wantHead := []string{"id", "name", "tags", "enabled", "status", "lastActivity"}
	if len(recs) != 3 || !slices.Equal(recs[0], wantHead) {
		t.Fatalf("records = %q", recs)
	}
	// Names descending: "line one…" before `Hall "north"…`.
	if recs[1][0] != "b-2" || recs[1][1] != "line one\nline two" || recs[1][3] != "false" || recs[1][4] != "disabled" || recs[1][5] != "" {
		t.Errorf("row 1 = %q", recs[1])
	}
	if recs[2][0] != "a-1" || recs[2][1] != devs[0].Name || recs[2][3] != "true" || recs[2][4] != "online" {
		t.Errorf("row 2 = %q", recs[2])
	}
	if _, err := time.Parse(time.RFC3339Nano, recs[2][5]); err != nil {
		t.Errorf("lastActivity %q: %v", recs[2][5], err)
	}
	if want := `k\;\\=v;note=x\;y\=z \\ "q";site=berlin`; recs[2][2] != want {
		t.Errorf("tags field = %q, want %q", recs[2][2], want)
	}
	if tags, err := db.ParseTagList(recs[2][2]); err != nil || !maps.Equal(tags, devs[0].Tags) {
		t.Errorf("tags read back = %q, %v; want %q", tags, err, devs[0].Tags)
	}
	// The quoting on the wire, as a spreadsheet reads it.
	if !strings.Contains(string(raw), `a-1,"Hall ""north"", 2nd floor","k\;\\=v;note=x\;y\=z \\ ""q"";site=berlin",true,online,`) {
		t.Errorf("row a-1 on the wire:\n%s", raw)
	}

	resp = get("/api/v1/devices?format=csv&q=nothing-matches")
	raw, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(raw) != "id,name,tags,enabled,status,lastActivity\n" {
		t.Errorf("empty export = %d %q, want the header alone", resp.StatusCode, raw)
	}
	resp = get("/api/v1/devices?format=csv&q=%3Dberlin")
	if raw, _ := io.ReadAll(resp.Body); resp.StatusCode != 422 || !strings.Contains(string(raw), "no tag name") {
		t.Errorf("bad search = %d %s, want 422 before any CSV", resp.StatusCode, raw)
	}
	// Viewers may export too (they see the list).
	if status, _ := h.do(req{method: "GET", path: "/api/v1/devices?format=csv", bearer: h.tokens[db.RoleViewer]}); status != 200 {
		t.Errorf("viewer export = %d", status)
	}
}

// TestFleetResultsFragment: with X-Fieldhub-Fragment the fleet page answers
// its results part only (search as you type swaps it in), and a refused
// search as bare text.
func TestFleetResultsFragment(t *testing.T) {
	h := newPageHub(t)
	h.addUser("vic", db.RoleViewer, "password-vic")
	h.addDevice("pump-1")
	h.addDevice("boiler-1")
	b := h.browser()
	b.login("vic", "password-vic")
	fragment := map[string]string{"X-Fieldhub-Fragment": "fleet-results"}
	p := b.do("GET", "/devices?q=pump", nil, fragment)
	if p.status != 200 || !strings.HasPrefix(p.body, `<div id="fleet-results" data-fleet-results data-total="1">`) ||
		strings.Contains(p.body, "<html") || len(rowIDs.FindAllString(p.body, -1)) != 1 {
		t.Errorf("fragment = %d:\n%s", p.status, p.body)
	}
	p = b.do("GET", "/devices?q=%3Dpump", nil, fragment)
	if p.status != 422 || strings.Contains(p.body, "<") || !strings.Contains(p.body, `search term "=pump" has no tag name`) {
		t.Errorf("refused search = %d %q, want 422 as text", p.status, p.body)
	}
}
