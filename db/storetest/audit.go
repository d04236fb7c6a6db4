package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"fieldhub/db"
)

// RunAudit tests the audit log: bounded fields, filters, paging, pruning.
func RunAudit(t *testing.T, b Backend) {
	cases(t, b,
		test{"FieldsCut", testAuditFieldsCut},
		test{"Filters", testAuditFilters},
		test{"Prune", testAuditPrune},
	)
}

// testAuditFieldsCut: every free-text field is cut to its stated length
// where entries are stored, whoever records them; control characters and
// invalid UTF-8 do not survive. (SQLite also cuts rows stored before the
// cut existed when it reads them: db.TestAuditLegacyRowsCut.)
func testAuditFieldsCut(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	huge := strings.Repeat("é", 5<<20/2) // 5 MB
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: huge, Action: huge, Target: huge, Outcome: huge, Detail: huge + "\x00\x1b[31m\xff"}); err != nil {
		t.Fatal(err)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{})
	if err != nil || len(entries) != 1 {
		t.Fatalf("entries = %d, %v; want 1", len(entries), err)
	}
	e := entries[0]
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"actor", e.Actor, db.MaxAuditActor},
		{"action", e.Action, db.MaxAuditAction},
		{"target", e.Target, db.MaxAuditTarget},
		{"outcome", e.Outcome, db.MaxAuditOutcome},
		{"detail", e.Detail, db.MaxAuditDetail},
	} {
		if n := utf8.RuneCountInString(f.value); n != f.max || !strings.HasSuffix(f.value, "…") {
			t.Errorf("%s has %d characters, want %d ending in …", f.name, n, f.max)
		}
	}
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "user:alice", Action: "user.login", Detail: "a\x00b\x1b\xffc"}); err != nil {
		t.Fatal(err)
	}
	entries, err = d.AuditEntries(ctx, db.AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := entries[0].Detail; got != "a\uFFFDb\uFFFD\uFFFDc" {
		t.Errorf("detail with control characters and invalid UTF-8 = %q, want each replaced by U+FFFD", got)
	}
	// Short values are kept as they are, with the defaults filled in.
	if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "user:alice", Action: "user.login", Target: "alice", Detail: "from 10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	entries, err = d.AuditEntries(ctx, db.AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e := entries[0]; e.Actor != "user:alice" || e.Action != "user.login" || e.Target != "alice" || e.Outcome != "ok" ||
		e.Detail != "from 10.0.0.1" || !e.At.Equal(T0) {
		t.Errorf("short entry changed: %+v", e)
	}
}

// testAuditFilters: newest first; actor, action prefix (its wildcards
// literal), target, paging before an id and a limit combine.
func testAuditFilters(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	for _, e := range []db.AuditEntry{
		{Actor: "user:alice", Action: "device.create", Target: "dev-a"},
		{Actor: "user:bob", Action: "device.delete", Target: "dev-a"},
		{Actor: "user:alice", Action: "user.login", Target: "alice"},
		{Actor: "token:ci", Action: "device_x", Target: "dev-b"},
		{Actor: "user:alice", Action: "device.update", Target: "dev-b", Outcome: "refused"},
	} {
		clk.Advance(time.Second)
		if err := d.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := d.AuditEntries(ctx, db.AuditFilter{})
	if err != nil || len(all) != 5 || all[0].Action != "device.update" || !all[0].At.Equal(T0.Add(5*time.Second)) || all[0].Outcome != "refused" {
		t.Fatalf("all = %+v, %v; want 5, newest first", all, err)
	}
	actions := func(f db.AuditFilter) string {
		t.Helper()
		es, err := d.AuditEntries(ctx, f)
		if err != nil {
			t.Fatalf("filter %+v: %v", f, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Action)
		}
		return strings.Join(out, " ")
	}
	for _, tt := range []struct {
		filter db.AuditFilter
		want   string
	}{
		{db.AuditFilter{Actor: "user:alice"}, "device.update user.login device.create"},
		{db.AuditFilter{Action: "device."}, "device.update device.delete device.create"},
		{db.AuditFilter{Action: "device_"}, "device_x"},
		{db.AuditFilter{Target: "dev-b"}, "device.update device_x"},
		{db.AuditFilter{Actor: "user:alice", Action: "device."}, "device.update device.create"},
		{db.AuditFilter{BeforeID: all[1].ID}, "user.login device.delete device.create"},
		{db.AuditFilter{Limit: 2}, "device.update device_x"},
		{db.AuditFilter{BeforeID: all[1].ID, Limit: 1}, "user.login"},
		// Part of the actor or target in any letter case; LIKE's
		// wildcards are plain characters.
		{db.AuditFilter{ActorContains: "ALICE"}, "device.update user.login device.create"},
		{db.AuditFilter{ActorContains: "i"}, "device.update device_x user.login device.create"},
		{db.AuditFilter{TargetContains: "v-B"}, "device.update device_x"},
		{db.AuditFilter{TargetContains: "%"}, ""},
		{db.AuditFilter{ActorContains: "_"}, ""},
		{db.AuditFilter{ActorContains: "user:", TargetContains: "dev-a"}, "device.delete device.create"},
	} {
		if got := actions(tt.filter); got != tt.want {
			t.Errorf("filter %+v: %q, want %q", tt.filter, got, tt.want)
		}
	}
	// ListAudit pages through a filter: a full page says where the next
	// one starts, the last says nothing is left.
	var walked []string
	f := db.AuditFilter{ActorContains: "alice", Limit: 2}
	for range 5 {
		p, err := d.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			walked = append(walked, e.Action)
		}
		if p.NextBefore == 0 {
			break
		}
		f.BeforeID = p.NextBefore
	}
	if got := strings.Join(walked, " "); got != "device.update user.login device.create" {
		t.Errorf("ListAudit pages of 2 = %q", got)
	}
}

// testAuditPrune: entries older than the cutoff go, oldest first, at most
// limit a call.
func testAuditPrune(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	for i := range 5 {
		if err := d.RecordAudit(ctx, db.AuditEntry{Actor: "cli", Action: fmt.Sprintf("a%d", i)}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}
	cutoff := T0.Add(3 * time.Hour) // a0, a1, a2 are older
	if n, err := d.PruneAudit(ctx, cutoff, 2); err != nil || n != 2 {
		t.Fatalf("first prune: %d, %v; want 2", n, err)
	}
	left, _ := d.AuditEntries(ctx, db.AuditFilter{})
	if len(left) != 3 || left[2].Action != "a2" {
		t.Errorf("after a prune of 2: %+v, want a4 a3 a2 (oldest first gone)", left)
	}
	if n, err := d.PruneAudit(ctx, cutoff, 2); err != nil || n != 1 {
		t.Fatalf("second prune: %d, %v; want 1", n, err)
	}
	if n, err := d.PruneAudit(ctx, cutoff, 2); err != nil || n != 0 {
		t.Errorf("third prune: %d, %v; want 0", n, err)
	}
}
