package handlers_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"fieldhub/db"
)

// Actor and target needed the stored value exactly: "admin" found nothing,
// since the actor is "user:admin". They now match any part, in any case.
func TestAuditFilterByPart(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	for _, e := range []db.AuditEntry{
		{Actor: "user:admin", Action: "device.create", Target: "Boiler-1"},
		{Actor: "token:Admin-CI", Action: "device.update", Target: "boiler-2"},
		{Actor: "user:olga", Action: "method.invoke", Target: "pump-1/reboot", Outcome: "not connected"},
		{Actor: "user:olga", Action: "c2d.send", Target: "pump-10"},
	} {
		if err := h.db.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query string
		want  []string // targets, newest first
	}{
		{"actor=admin", []string{"boiler-2", "Boiler-1"}},
		{"actor=ADMIN-ci", []string{"boiler-2"}},
		{"actor=user%3Aadmin", []string{"Boiler-1"}},
		{"target=boiler", []string{"boiler-2", "Boiler-1"}},
		{"target=pump-1", []string{"pump-10", "pump-1/reboot"}},
		{"actor=olga&target=reboot", []string{"pump-1/reboot"}},
		{"actor=olga&action=c2d.", []string{"pump-10"}},
		{"actor=" + url.QueryEscape("%"), nil},
		{"actor=nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, raw := h.do(req{method: "GET", path: "/api/v1/audit?" + tt.query, bearer: h.tokens[db.RoleAdmin]})
			var got []string
			b, _ := json.Marshal(raw["entries"])
			var entries []struct{ Target string }
			_ = json.Unmarshal(b, &entries)
			for _, e := range entries {
				got = append(got, e.Target)
			}
			if status != 200 || !slices.Equal(got, tt.want) {
				t.Errorf("GET /api/v1/audit?%s = %d %v, want %v", tt.query, status, got, tt.want)
			}
		})
	}
}
