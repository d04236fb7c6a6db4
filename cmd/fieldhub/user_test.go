package main

import (
	"strings"
	"testing"
)

// TestCLIPasswordRulesAndCase: `user add` and `user passwd` accepted
// "password" and "12345678", and "Admin" beside "admin".
func TestCLIPasswordRulesAndCase(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string // "" = success
		wantOut string
	}{
		{"8 characters", "12345678\n", []string{"user", "add", "--password-stdin", "alice"}, "at least 10 characters", ""},
		{"common", "password123\n", []string{"user", "add", "--password-stdin", "alice"}, "10,000 most common", ""},
		{"common, capitals", "", []string{"user", "add", "--password", "QWERTYUIOP", "alice"}, "10,000 most common", ""},
		{"good", "alice-likes-tea\n", []string{"user", "add", "--password-stdin", "alice"}, "", "user alice added"},
		{"same name, other case", "alice-likes-tea\n", []string{"user", "add", "--password-stdin", "ALICE"}, "already exists", ""},
		{"passwd common", "Manchester\n", []string{"user", "passwd", "--password-stdin", "alice"}, "10,000 most common", ""},
		{"passwd in another case", "alice-likes-coffee\n", []string{"user", "passwd", "--password-stdin", "Alice"}, "", "password of Alice changed"},
		{"generated", "", []string{"user", "add", "bob"}, "", "password: "},
	}
	for _, tt := range tests {
		args := append(tt.args[:2:2], append([]string{"--data", data}, tt.args[2:]...)...)
		out, _, err := cli(t, tt.stdin, args...)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want success", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.wantErr)
		case !strings.Contains(out, tt.wantOut):
			t.Errorf("%s: output %q, want it to contain %q", tt.name, out, tt.wantOut)
		}
	}
	out, _, _ := cli(t, "", "user", "list", "--data", data)
	if strings.Count(out, "alice") != 1 || strings.Contains(out, "ALICE") {
		t.Errorf("user list = %q, want one alice", out)
	}
}
