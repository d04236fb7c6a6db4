package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
)

func TestCLIX509Devices(t *testing.T) {
	data := t.TempDir()
	cert := certstest.SelfSigned(t, "cam-1")
	tp := auth.Thumbprint(cert.Cert)
	var colons []string
	for i := 0; i < len(tp); i += 2 {
		colons = append(colons, strings.ToLower(tp[i:i+2]))
	}
	sha1 := strings.Repeat("ab", 20)

	out, _, err := cli(t, "", "device", "add", "--data", data, "cam-1", "--x509-thumbprint", strings.Join(colons, ":"), "--x509-thumbprint", sha1)
	if err != nil {
		t.Fatalf("device add --x509-thumbprint: %v", err)
	}
	if got, want := lastLine(out), "HostName="+defaultDeviceHost+";DeviceId=cam-1;x509=true"; got != want {
		t.Errorf("connection string %q, want %q", got, want)
	}
	out, _, err = cli(t, "", "device", "show", "--data", data, "--keys", "yes", "cam-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"selfSigned", tp, strings.ToUpper(sha1), "x509=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("device show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "primary key") {
		t.Errorf("device show prints keys of an X.509 device:\n%s", out)
	}
	if _, _, err := cli(t, "", "device", "add", "--data", data, "cam-2", "--x509-ca"); err != nil {
		t.Fatalf("device add --x509-ca: %v", err)
	}
	if out, _, _ := cli(t, "", "device", "show", "--data", data, "cam-2"); !strings.Contains(out, "certificateAuthority") {
		t.Errorf("device show of a CA device:\n%s", out)
	}

	for _, tt := range []struct {
		args      []string
		wantErr   string
		wantUsage bool
	}{
		{[]string{"device", "add", "x1", "--x509-ca", "--x509-thumbprint", tp}, "exclude each other", true},
		{[]string{"device", "add", "x2", "--x509-thumbprint", tp, "--x509-thumbprint", tp, "--x509-thumbprint", tp}, "at most two", true},
		{[]string{"device", "add", "x3", "--x509-thumbprint", "abc"}, "40 hex digits", false},
		{[]string{"device", "token", "cam-1"}, "X.509", false},
		{[]string{"device", "rotate-key", "cam-1"}, "no keys", false},
	} {
		_, _, err := cli(t, "", append(tt.args, "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (exitCode(err) == 2) != tt.wantUsage {
			t.Errorf("%v: err = %v (exit %d), want one mentioning %q", tt.args, err, exitCode(err), tt.wantErr)
		}
	}
}

func TestCLICA(t *testing.T) {
	data := t.TempDir()
	root := certstest.NewCA(t, "Fleet Root")
	file := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(file, root.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := cli(t, "", "ca", "add", "--data", data, "fleet", file)
	if err != nil || !strings.Contains(out, auth.Thumbprint(root.Cert)) {
		t.Fatalf("ca add = %q, %v", out, err)
	}
	other := certstest.NewCA(t, "Other Root")
	if _, _, err := cli(t, string(other.PEM()), "ca", "add", "--data", data, "other", "-"); err != nil {
		t.Fatalf("ca add from standard input: %v", err)
	}
	out, _, err = cli(t, "", "ca", "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "fleet") || !strings.Contains(lines[1], "CN=Fleet Root") ||
		!strings.Contains(lines[1], auth.Thumbprint(root.Cert)) || !strings.Contains(lines[1], root.Cert.NotAfter.Local().Format("2006-01-02")) {
		t.Errorf("ca list:\n%s", out)
	}

	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leaf, root.Issue(t, "dev1").PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"ca", "add", "leaf", leaf}, "not a CA certificate"},
		{[]string{"ca", "add", "again", file}, `already registered as "fleet"`},
		{[]string{"ca", "add", "missing", filepath.Join(data, "nope.pem")}, "no such file"},
		{[]string{"ca", "add", "fleet"}, "expected a name and a PEM file"},
		{[]string{"ca", "rm", "ghost"}, "not found"},
	} {
		if _, _, err := cli(t, "", append(tt.args, "--data", data)...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want one mentioning %q", tt.args, err, tt.wantErr)
		}
	}
	if _, _, err := cli(t, "", "ca", "rm", "--data", data, "fleet"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := cli(t, "", "ca", "list", "--data", data); strings.Contains(out, "fleet") {
		t.Errorf("removed CA still listed:\n%s", out)
	}
}
