package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cli runs the real command line in-process with its own environment.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(string) string { return "" }, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestCLIDeviceAndToken(t *testing.T) {
	data := t.TempDir()
	out, _, err := cli(t, "", "device", "add", "--data", data, "pump-1", "--name", "Pump one", "--tags", "site=north")
	if err != nil {
		t.Fatalf("device add: %v", err)
	}
	if cs := lastLine(out); !regexp.MustCompile(`^HostName=[^;]+;DeviceId=pump-1;SharedAccessKey=[A-Za-z0-9+/]{43}=$`).MatchString(cs) {
		t.Errorf("last line %q is not a connection string", cs)
	}
	out, _, err = cli(t, "", "device", "list", "--data", data)
	if err != nil || !strings.Contains(out, "pump-1") || !strings.Contains(out, "site=north") {
		t.Errorf("device list = %q, %v", out, err)
	}
	if _, _, err := cli(t, "", "device", "disable", "--data", data, "pump-1"); err != nil {
		t.Errorf("disable: %v", err)
	}
	out, _, _ = cli(t, "", "device", "show", "--data", data, "pump-1")
	if !strings.Contains(out, "disabled") || strings.Contains(out, "SharedAccessKey") {
		t.Errorf("device show = %q; want disabled and no keys", out)
	}
	out, _, err = cli(t, "", "token", "create", "--data", data, "--role", "viewer", "--name", "ci")
	if err != nil || !strings.HasPrefix(lastLine(out), "fh_") {
		t.Errorf("token create = %q, %v", out, err)
	}
	out, _, _ = cli(t, "", "token", "list", "--data", data)
	if !strings.Contains(out, "ci") || strings.Contains(out, lastLine(out)+"x") {
		t.Errorf("token list = %q", out)
	}
	if _, _, err := cli(t, "", "device", "rm", "--data", data, "pump-1"); err != nil {
		t.Errorf("rm: %v", err)
	}
	if _, _, err := cli(t, "", "device", "rm", "--data", data, "pump-1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("rm twice: %v, want not found", err)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantMsg string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown verb", []string{"device", "explode"}, `unknown device command "explode"`},
		{"bad flag", []string{"serve", "--port", "1"}, "flag provided but not defined"},
		{"bad addr", []string{"serve", "--addr", "nonsense"}, "not host:port"},
		{"bad message rate", []string{"serve", "--device-msg-rate", "fast"}, "--device-msg-rate"},
		{"negative burst", []string{"serve", "--device-msg-burst", "-1"}, "--device-msg-burst"},
		{"bad connect rate", []string{"serve", "--device-connect-rate", "-2"}, "--device-connect-rate"},
		{"bad memory limit", []string{"serve", "--memory-limit", "1GB"}, "--memory-limit"},
		{"negative memory limit", []string{"serve", "--memory-limit", "-1"}, "--memory-limit"},
		{"missing id", []string{"device", "add", "--data", data}, "expected one device id"},
		{"bad device id", []string{"device", "add", "--data", data, "bad id"}, "position 4"},
		{"dot device id", []string{"device", "add", "--data", data, "."}, `device id "." is not allowed`},
		{"token without role", []string{"token", "create", "--data", data}, "--role is required"},
		{"token bad role", []string{"token", "create", "--data", data, "--role", "god"}, `unknown role "god"`},
		{"user bad role", []string{"user", "add", "--data", data, "--role", "god", "bob"}, `unknown role "god"`},
		{"backup without a file", []string{"backup", "--data", data}, "expected one FILE"},
		{"restore without a file", []string{"restore", "--data", data}, "expected one backup FILE"},
		{"restore of a missing file", []string{"restore", "--data", data, data + "/nope"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := cli(t, "", tt.args...)
			if err == nil {
				t.Fatal("succeeded; want an error")
			}
			if msg := err.Error() + stderr; !strings.Contains(strings.ToLower(msg), strings.ToLower(tt.wantMsg)) {
				t.Errorf("error %q (stderr %q) does not contain %q", err, stderr, tt.wantMsg)
			}
			if code := exitCode(err); code == 0 {
				t.Errorf("exit code 0")
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"simulate", "--help"}, {"device", "add", "--help"},
		{"device", "--help"}, {"user", "passwd", "--help"}, {"token", "create", "--help"}, {"backup", "--help"}, {"restore", "--help"},
		{"doctor", "--help"}, {"version", "--help"}} {
		if _, _, err := cli(t, "", args...); err != nil {
			t.Errorf("fieldhub %v: %v, want success", args, err)
		}
	}
}

// TestGroupHelpListsFlags: `fieldhub <command> --help` lists the flags of
// each of its subcommands, as the README says.
func TestGroupHelpListsFlags(t *testing.T) {
	for _, tt := range []struct {
		group string
		want  []string
	}{
		{"device", []string{"fieldhub device show [--data DIR] [--keys yes]", "-transport", "fieldhub device token", "-ttl"}},
		{"user", []string{"fieldhub user add", "-password-stdin"}},
		{"token", []string{"fieldhub token create", "-role"}},
		{"ca", []string{"fieldhub ca add", "-data"}},
	} {
		out, _, err := cli(t, "", tt.group, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", tt.group, err)
		}
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("fieldhub %s --help lacks %q:\n%s", tt.group, want, out)
			}
		}
	}
}

func TestCLIUsers(t *testing.T) {
	data := t.TempDir()
	out, _, err := cli(t, "", "user", "add", "--data", data, "--role", "operator", "alice")
	if err != nil || !strings.Contains(out, "password: ") {
		t.Fatalf("user add = %q, %v", out, err)
	}
	if _, _, err := cli(t, "s3cret-pass\n", "user", "passwd", "--data", data, "--password-stdin", "alice"); err != nil {
		t.Errorf("passwd: %v", err)
	}
	if _, _, err := cli(t, "short\n", "user", "passwd", "--data", data, "--password-stdin", "alice"); err == nil {
		t.Error("short password accepted")
	}
	out, _, _ = cli(t, "", "user", "list", "--data", data)
	if !strings.Contains(out, "alice") || !strings.Contains(out, "operator") {
		t.Errorf("user list = %q", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestServeStartsAndStops(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--device-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"},
			func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	urlRe := regexp.MustCompile(`Fieldhub dashboard: (http://\S+)`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
	}
	if url == "" {
		t.Fatalf("no URL printed:\n%s", stderr.String())
	}
	if !regexp.MustCompile(`admin password: \S+`).MatchString(stderr.String()) {
		t.Errorf("first start did not log the admin password:\n%s", stderr.String())
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancel")
	}
}
