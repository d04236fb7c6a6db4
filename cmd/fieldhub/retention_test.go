package main

import (
	"bytes"
	"context"
	"errors"
	"fieldhub/app"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
)

// TestServePrunesAuditAndSessions: nothing pruned audit rows and expired
// sessions were never deleted. serve runs a pruner with --audit-retention
// (or FIELDHUB_AUDIT_RETENTION).
func TestServePrunesAuditAndSessions(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	d, err := app.OpenStore(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, e := range []db.AuditEntry{
		{At: now.Add(-49 * time.Hour), Actor: "cli", Action: "device.create", Target: "old"},
		{At: now.Add(-47 * time.Hour), Actor: "cli", Action: "device.create", Target: "recent"},
	} {
		if err := d.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	u, err := d.CreateUser(ctx, "admin", "x", db.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSession(ctx, "expired", u.ID, "c", -time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSession(ctx, "live", u.ID, "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	d.Close()

	runCtx, cancel := context.WithCancel(ctx)
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--device-addr", "127.0.0.1:0", "--mqtt-addr", ""},
			func(k string) string { return map[string]string{"FIELDHUB_AUDIT_RETENTION": "48h"}[k] },
			strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	}()

	d, err = app.OpenStore(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var targets []string
	var sessions int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, err := d.AuditEntries(ctx, db.AuditFilter{Action: "device."})
		if err != nil {
			t.Fatal(err)
		}
		targets = targets[:0]
		for _, e := range entries {
			targets = append(targets, e.Target)
		}
		if err := d.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&sessions); err != nil {
			t.Fatal(err)
		}
		if len(targets) == 1 && sessions == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: audit targets %q, %d sessions; want [recent] and 1\n%s", targets, sessions, stderr.String())
		}
	}
	if targets[0] != "recent" {
		t.Errorf("kept audit entry %q, want recent", targets[0])
	}
	if _, err := d.Session(ctx, "live"); err != nil {
		t.Errorf("live session: %v", err)
	}
}

func TestParseAuditRetention(t *testing.T) {
	tests := []struct {
		env, flag string
		want      time.Duration
		wantErr   string
	}{
		{"", "", 90 * 24 * time.Hour, ""},
		{"720h", "", 720 * time.Hour, ""},
		{"720h", "1h", time.Hour, ""},
		{"90d", "", 0, "FIELDHUB_AUDIT_RETENTION"},
		{"", "0s", 0, "must be positive"},
	}
	for _, tt := range tests {
		args := []string{}
		if tt.flag != "" {
			args = append(args, "--audit-retention", tt.flag)
		}
		e := env{getenv: func(k string) string { return map[string]string{"FIELDHUB_AUDIT_RETENTION": tt.env}[k] }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		cfg, err := parseServe(e, args)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("env %q flag %q: %v, want an error with %q", tt.env, tt.flag, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || cfg.AuditRetention != tt.want):
			t.Errorf("env %q flag %q: %s, %v; want %s", tt.env, tt.flag, cfg.AuditRetention, err, tt.want)
		}
	}
}
