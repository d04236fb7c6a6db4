package main

import (
	"context"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/registry"
)

func TestSimulateFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"from the database", []string{"--url", "https://127.0.0.1:1", "--data", "TMP"}, ""},
		{"from the API", []string{"--url", "https://127.0.0.1:1", "--api", "http://127.0.0.1:1", "--token", "t"}, ""},
		{"no key source", []string{"--url", "https://localhost:8443"}, "either --data"},
		{"both key sources", []string{"--data", "d", "--api", "http://x", "--token", "t"}, "either --data"},
		{"API without token", []string{"--api", "http://x"}, "--api needs --token"},
		{"plain http", []string{"--url", "http://localhost:8443", "--data", "d"}, "https://host:port"},
		{"no devices", []string{"--data", "d", "--devices", "0"}, "--devices"},
		{"too fast", []string{"--data", "d", "--interval", "1ms"}, "--interval"},
		{"stray argument", []string{"--data", "d", "extra"}, "no arguments"},
		{"prefix makes bad ids", []string{"--data", "d", "--prefix", "a/"}, `--prefix "a/" makes device ids like "a/005"`},
		{"JSON logs", []string{"--url", "https://127.0.0.1:1", "--data", "TMP", "--log-format", "json"}, ""},
		{"unknown log format", []string{"--url", "https://127.0.0.1:1", "--data", "TMP", "--log-format", "xml"}, "use text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"simulate", "--duration", "1ns"}, tt.args...)
			for i, a := range args {
				if a == "TMP" {
					args[i] = t.TempDir()
				}
			}
			_, _, err := cli(t, "", args...)
			if tt.want == "" {
				// Valid flags get as far as provisioning or sending; that
				// nothing listens there is fine.
				if err != nil && strings.Contains(err.Error(), "simulate:") && exitCode(err) == 2 {
					t.Fatalf("valid flags refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
				t.Fatalf("err = %v, want a usage error about %q", err, tt.want)
			}
		})
	}
}

func TestDemoFleetCreatedOnce(t *testing.T) {
	ctx := context.Background()
	store, err := db.Open(ctx, t.TempDir()+"/fieldhub.db", db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := registry.New(registry.Config{Store: store, Audit: store})
	first, err := demoFleet(ctx, store, reg)
	if err != nil || len(first) != len(demoDevices) {
		t.Fatalf("first start: %d devices, %v; want %d", len(first), err, len(demoDevices))
	}
	if err := store.DeleteDevice(ctx, demoDevices[0].ID); err != nil {
		t.Fatal(err)
	}
	again, err := demoFleet(ctx, store, reg)
	if err != nil || len(again) != len(demoDevices)-1 {
		t.Fatalf("second start: %d devices, %v; want the %d left (a deleted demo device stays deleted)", len(again), err, len(demoDevices)-1)
	}
	if again[0] != first[1] {
		t.Errorf("second start runs %v, want the same keys as before %v", again[0], first[1])
	}
}
