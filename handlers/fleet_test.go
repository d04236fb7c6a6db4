package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"fieldhub/db"
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
