package main

import (
	"strings"
	"testing"
	"time"
)

// TestCLITokenExpires: `token create --expires` sets when a token stops
// working; without it the token never expires; `token list` shows both.
func TestCLITokenExpires(t *testing.T) {
	data := t.TempDir()
	for _, bad := range []string{"0d", "yesterday", "-1h", "1999-01-01"} {
		if _, _, err := cli(t, "", "token", "create", "--data", data, "--role", "viewer", "--expires", bad); err == nil ||
			!strings.Contains(err.Error(), "expires") {
			t.Errorf("--expires %s: %v, want an error about expires", bad, err)
		}
	}
	out, stderr, err := cli(t, "", "token", "create", "--data", data, "--role", "viewer", "--name", "month", "--expires", "30d")
	want := time.Now().AddDate(0, 0, 30).Local().Format(time.DateOnly)
	if err != nil || !strings.HasPrefix(out, "fh_") || !strings.Contains(stderr, "expires "+want) {
		t.Fatalf("create --expires 30d: %q %q %v; want the secret and an expiry on %s", out, stderr, err, want)
	}
	if _, stderr, err = cli(t, "", "token", "create", "--data", data, "--role", "operator", "--name", "forever"); err != nil ||
		!strings.Contains(stderr, "expires never") {
		t.Fatalf("create without --expires: %q %v", stderr, err)
	}
	list, _, err := cli(t, "", "token", "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "EXPIRES") ||
		!strings.Contains(lines[1], "month") || !strings.Contains(lines[1], want) || !strings.Contains(lines[1], "active") ||
		!strings.Contains(lines[2], "forever") || !strings.Contains(lines[2], "never") {
		t.Errorf("token list:\n%s", list)
	}
}
