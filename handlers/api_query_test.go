package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/query"
	"fieldhub/registry"
)

// queryHub is a router over a fleet of 25 devices: sites by i%3, firmware
// reported by every other device.
func queryHub(t *testing.T, configure ...func(*handlers.Config)) *commandsHub {
	t.Helper()
	r := testkit.NewRouter(t, configure...)
	ctx := context.Background()
	sites := []string{"berlin", "paris", "rome"}
	for i := range 25 {
		id := fmt.Sprintf("q-%02d", i)
		if _, err := r.DB.CreateDevice(ctx, db.NewDevice{DeviceID: id, Name: fmt.Sprintf("Pump %d", i),
			Tags: map[string]string{"site": sites[i%3]}}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			fw := []string{"2.0.1", "2.2.0"}[i%4/2]
			if _, err := r.DB.PatchTwin(ctx, id, db.TwinReported, map[string]any{"firmware": fw}, 0, 1<<16); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &commandsHub{t: t, db: r.DB, srv: r.HTTP, tokens: r.Tokens}
}

type queryPage struct {
	Items        []map[string]any `json:"items"`
	Continuation string           `json:"continuation"`
	Aggregate    bool             `json:"aggregate"`
}

func (h *commandsHub) query(role string, body any) (response, queryPage) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	resp := h.call(role, http.MethodPost, "/api/v1/devices/query", string(b))
	var p queryPage
	if resp.status == http.StatusOK {
		if err := json.Unmarshal(resp.body, &p); err != nil {
			h.t.Fatalf("query answer: %v: %s", err, resp.body)
		}
	}
	return resp, p
}

func itemIDs(items []map[string]any) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, fmt.Sprint(it["id"]))
	}
	return ids
}

func TestQueryTagAndTwin(t *testing.T) {
	h := queryHub(t)
	resp, page := h.query(db.RoleViewer, map[string]any{
		"query": "SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'"})
	if resp.status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	// berlin: i%3 == 0; firmware 2.0.1: i%4 == 0.
	want := []string{"q-00", "q-12", "q-24"}
	if got := itemIDs(page.Items); !slices.Equal(got, want) {
		t.Fatalf("ids = %v, want %v", got, want)
	}
	it := page.Items[0]
	twin, _ := it["twin"].(map[string]any)
	props, _ := twin["properties"].(map[string]any)
	reported, _ := props["reported"].(map[string]any)
	if reported["firmware"] != "2.0.1" || it["connectionState"] != "Disconnected" || it["status"] != db.StatusOffline ||
		it["name"] != "Pump 0" || page.Continuation != "" || page.Aggregate {
		t.Errorf("item = %v, page = %+v", it, page)
	}
	if _, ok := it["primaryKey"]; ok {
		t.Errorf("a viewer's query shows keys: %v", it)
	}
}

func TestQueryPagesWithContinuation(t *testing.T) {
	h := queryHub(t)
	text := "SELECT * FROM devices WHERE tags.site != 'rome'"
	var ids []string
	cont := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("more pages than devices")
		}
		resp, page := h.query(db.RoleViewer, map[string]any{"query": text, "pageSize": 4, "continuation": cont})
		if resp.status != http.StatusOK {
			t.Fatalf("status %d: %s", resp.status, resp.body)
		}
		ids = append(ids, itemIDs(page.Items)...)
		if page.Continuation == "" {
			break
		}
		if len(page.Items) != 4 {
			t.Errorf("a page with a continuation has %d items, want 4", len(page.Items))
		}
		cont = page.Continuation
	}
	var want []string
	for i := range 25 {
		if i%3 != 2 {
			want = append(want, fmt.Sprintf("q-%02d", i))
		}
	}
	if !slices.Equal(ids, want) {
		t.Errorf("pages gave %v, want %v", ids, want)
	}

	// The token is the hub's, for this query only.
	_, first := h.query(db.RoleViewer, map[string]any{"query": text, "pageSize": 4})
	payload, sig, _ := strings.Cut(first.Continuation, ".")
	for name, token := range map[string]string{
		"altered":       payload + "x." + sig,
		"unsigned":      payload,
		"re-signed":     payload + ".AAAAAAAAAAAAAAAAAAAAAA",
		"too long":      strings.Repeat("a", registry.MaxContinuation+1),
		"another query": first.Continuation,
	} {
		q := text
		if name == "another query" {
			q = "SELECT * FROM devices"
		}
		resp, _ := h.query(db.RoleViewer, map[string]any{"query": q, "pageSize": 4, "continuation": token})
		if resp.status != http.StatusUnprocessableEntity || !strings.Contains(string(resp.body), "continuation") {
			t.Errorf("%s token: status %d %s, want 422 about the continuation", name, resp.status, resp.body)
		}
	}
}

func TestQueryProjectionTopAndGroups(t *testing.T) {
	h := queryHub(t)
	resp, page := h.query(db.RoleViewer, map[string]any{"query": "SELECT TOP 3 deviceId, tags.site AS site FROM devices", "pageSize": 2})
	if resp.status != http.StatusOK || len(page.Items) != 2 || page.Continuation == "" {
		t.Fatalf("TOP 3 first page: %d %s", resp.status, resp.body)
	}
	if page.Items[0]["deviceId"] != "q-00" || page.Items[0]["site"] != "berlin" || len(page.Items[0]) != 2 {
		t.Errorf("projected row = %v", page.Items[0])
	}
	_, next := h.query(db.RoleViewer, map[string]any{"query": "SELECT TOP 3 deviceId, tags.site AS site FROM devices",
		"pageSize": 2, "continuation": page.Continuation})
	if len(next.Items) != 1 || next.Items[0]["deviceId"] != "q-02" || next.Continuation != "" {
		t.Errorf("TOP 3 second page = %+v, want q-02 alone and no continuation", next)
	}

	resp, page = h.query(db.RoleViewer, map[string]any{"query": "SELECT tags.site, COUNT() AS n FROM devices GROUP BY tags.site"})
	if resp.status != http.StatusOK || !page.Aggregate {
		t.Fatalf("group by: %d %s", resp.status, resp.body)
	}
	got := map[string]float64{}
	for _, row := range page.Items {
		got[fmt.Sprint(row["site"])] = row["n"].(float64)
	}
	if want := map[string]float64{"berlin": 9, "paris": 8, "rome": 8}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
	// Groups page too.
	resp, page = h.query(db.RoleViewer, map[string]any{"query": "SELECT deviceId, COUNT() FROM devices GROUP BY deviceId", "pageSize": 20})
	if resp.status != http.StatusOK || len(page.Items) != 20 || page.Continuation == "" {
		t.Fatalf("25 groups, page of 20: %d, %d rows, continuation %q", resp.status, len(page.Items), page.Continuation)
	}
	_, next = h.query(db.RoleViewer, map[string]any{"query": "SELECT deviceId, COUNT() FROM devices GROUP BY deviceId",
		"pageSize": 20, "continuation": page.Continuation})
	if len(next.Items) != 5 || next.Continuation != "" {
		t.Errorf("second page of groups: %d rows, continuation %q", len(next.Items), next.Continuation)
	}
}

func TestQueryErrorsPointAtTheMistake(t *testing.T) {
	h := queryHub(t)
	long := "SELECT * FROM devices WHERE " + strings.Repeat("tags.a = 1 OR ", query.MaxLength/14) + "tags.a = 1"
	terms := "SELECT * FROM devices WHERE " + strings.TrimSuffix(strings.Repeat("tags.a = 1 OR ", registry.MaxQueryTerms+1), " OR ")
	tests := []struct {
		name, body string
		status     int
		column     int
		contains   string
	}{
		{"typo", `{"query": "SELECT * FROM devices WHERE tags.site = 'x' AN tags.y = 1"}`, 422, 45, "AN"},
		{"second line", `{"query": "SELECT *\nFROM device"}`, 422, 6, "devices"},
		{"unclosed string", `{"query": "SELECT * FROM devices WHERE name = 'x"}`, 422, 36, "string"},
		{"empty", `{"query": ""}`, 422, 1, ""},
		{"too many terms", `{"query": "` + terms + `"}`, 422, 0, "terms"},
		{"page too large", `{"query": "SELECT * FROM devices", "pageSize": 1001}`, 422, 0, "pageSize"},
		{"negative page", `{"query": "SELECT * FROM devices", "pageSize": -1}`, 422, 0, "pageSize"},
		{"query too long", `{"query": "` + long + `"}`, 413, 0, "bytes"},
		{"unknown field", `{"query": "SELECT * FROM devices", "top": 3}`, 400, 0, "top"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.call(db.RoleViewer, http.MethodPost, "/api/v1/devices/query", tt.body)
			if resp.status != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.status, resp.body, tt.status)
			}
			m := resp.json(t)
			if !strings.Contains(fmt.Sprint(m["error"]), tt.contains) {
				t.Errorf("error %q does not mention %q", m["error"], tt.contains)
			}
			if tt.column > 0 && m["column"] != float64(tt.column) {
				t.Errorf("column = %v, want %d (%s)", m["column"], tt.column, resp.body)
			}
		})
	}
	if resp := h.call("", http.MethodPost, "/api/v1/devices/query", `{"query": "SELECT * FROM devices"}`); resp.status != http.StatusUnauthorized {
		t.Errorf("anonymous query: status %d, want 401", resp.status)
	}
}

// TestQueryScanIsBounded is the attack of a query that would scan for ever:
// the heaviest condition the bounds allow, over a fleet, stops at the
// query timeout with a 422 that says so.
func TestQueryScanIsBounded(t *testing.T) {
	h := queryHub(t, func(cfg *handlers.Config) {
		cfg.Devices = registry.New(registry.Config{Store: cfg.Store.(*db.DB), Audit: cfg.Store.(*db.DB), QueryTimeout: time.Nanosecond})
	})
	var terms []string
	for i := range registry.MaxQueryTerms {
		terms = append(terms, fmt.Sprintf("CONTAINS(properties.reported.firmware, '%d')", i))
	}
	resp := h.call(db.RoleViewer, http.MethodPost, "/api/v1/devices/query",
		fmt.Sprintf(`{"query": "SELECT COUNT() FROM devices WHERE %s"}`, strings.Join(terms, " OR ")))
	if resp.status != http.StatusUnprocessableEntity || !strings.Contains(string(resp.body), "longer than allowed") {
		t.Errorf("status %d %s, want 422 saying the query took too long", resp.status, resp.body)
	}
}
