package db

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestAuditFilterContains: actor and target match part of the field in any
// letter case; a filtered page reads at most the scan window and says where
// to go on, so that paging through a rare match visits every entry once.
func TestAuditFilterContains(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "fieldhub.db"), Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer func(w int64) { auditScanWindow = w }(auditScanWindow)
	auditScanWindow = 10

	for i := 1; i <= 45; i++ {
		e := AuditEntry{Actor: "user:admin", Action: "device.update", Target: fmt.Sprintf("pump-%d", i)}
		switch {
		case i%7 == 0:
			e.Actor = "token:Admin-CI"
		case i%5 == 0:
			e.Actor = "user:olga"
		}
		if err := d.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Every entry is id i (the table was empty).
	walk := func(f AuditFilter) (ids []int64, pages int) {
		for {
			p, err := d.ListAudit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range p.Entries {
				ids = append(ids, e.ID)
			}
			if p.NextBefore == 0 || pages > 50 {
				return ids, pages
			}
			f.BeforeID = p.NextBefore
		}
	}
	want := func(keep func(i int64) bool) []int64 {
		var out []int64
		for i := int64(45); i >= 1; i-- {
			if keep(i) {
				out = append(out, i)
			}
		}
		return out
	}
	tests := []struct {
		name      string
		f         AuditFilter
		want      []int64
		wantPages int
	}{
		{"actor, any case", AuditFilter{ActorContains: "ADMIN", Limit: 100}, want(func(i int64) bool { return i%5 != 0 || i%7 == 0 }), 5},
		{"actor part", AuditFilter{ActorContains: "olg", Limit: 100}, want(func(i int64) bool { return i%5 == 0 && i%7 != 0 }), 5},
		{"token actor", AuditFilter{ActorContains: "admin-ci", Limit: 100}, want(func(i int64) bool { return i%7 == 0 }), 5},
		{"target part", AuditFilter{TargetContains: "-4", Limit: 100}, want(func(i int64) bool { return i == 4 || i >= 40 }), 5},
		{"full pages continue by id", AuditFilter{ActorContains: "user:", Limit: 3}, want(func(i int64) bool { return i%7 != 0 }), 14},
		{"exact actor", AuditFilter{Actor: "user:olga", Limit: 100}, want(func(i int64) bool { return i%5 == 0 && i%7 != 0 }), 5},
		{"exact actor is exact", AuditFilter{Actor: "olga", Limit: 100}, nil, 5},
		{"like wildcards are literal", AuditFilter{ActorContains: "%", Limit: 100}, nil, 5},
		{"no filter reads past the window", AuditFilter{Limit: 100}, want(func(int64) bool { return true }), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := walk(tt.f)
			if !slices.Equal(got, tt.want) || pages != tt.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tt.want, tt.wantPages)
			}
		})
	}
	p, err := d.ListAudit(ctx, AuditFilter{ActorContains: "nobody"})
	if err != nil || len(p.Entries) != 0 || !p.WindowEnd || p.NextBefore != 36 {
		t.Errorf("first page of a filter matching nothing = %+v, %v; want none, WindowEnd, NextBefore 36", p, err)
	}
}
