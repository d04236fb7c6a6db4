package main

import (
	"strings"
	"testing"
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
