package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"fieldhub/app"
	"fieldhub/db"
	"fieldhub/registry"
)

// TestCLIPolicies: policy add prints the service connection string alone on
// its last line (host and port of the HTTPS device listener as the hub last
// ran), list shows rights and no keys, rotate-key prints the new string, rm
// removes, every change is audited as the CLI, and mistakes are usage errors.
func TestCLIPolicies(t *testing.T) {
	data := t.TempDir()
	csRe := regexp.MustCompile(`^HostName=localhost:8443;SharedAccessKeyName=backend;SharedAccessKey=([A-Za-z0-9+/]{43}=)$`)
	out, stderr, err := cli(t, "", "policy", "add", "--data", data, "backend", "--rights", "registryRead,registryWrite,serviceConnect")
	if err != nil {
		t.Fatalf("policy add: %v\n%s", err, stderr)
	}
	m := csRe.FindStringSubmatch(lastLine(out))
	if m == nil {
		t.Fatalf("last line %q is not a service connection string", lastLine(out))
	}
	key := m[1]

	out, _, err = cli(t, "", "policy", "list", "--data", data)
	if err != nil || !strings.Contains(out, "backend") || !strings.Contains(out, "registryRead,registryWrite,serviceConnect") {
		t.Errorf("policy list = %q, %v", out, err)
	}
	if strings.Contains(out, key) {
		t.Errorf("policy list shows the key:\n%s", out)
	}

	out, _, err = cli(t, "", "policy", "rotate-key", "--data", data, "--key", "primary", "backend")
	if err != nil {
		t.Fatalf("rotate-key: %v", err)
	}
	if m := csRe.FindStringSubmatch(lastLine(out)); m == nil || m[1] == key {
		t.Errorf("rotate-key printed %q; want a connection string with a new key", lastLine(out))
	}

	// A hub that ran with the device listener on 443 hands out the bare host.
	d, err := app.OpenStoreAt(context.Background(), data, "")
	if err != nil {
		t.Fatal(err)
	}
	ep := registry.Endpoints{Host: "hub.example", HTTPSPort: 443, MQTTPort: 8883}
	if err := d.SetSetting(context.Background(), db.SettingDeviceEndpoints, ep.String()); err != nil {
		t.Fatal(err)
	}
	d.Close()
	out, _, err = cli(t, "", "policy", "add", "--data", data, "devices", "--rights", "DeviceConnect")
	if err != nil || !strings.HasPrefix(lastLine(out), "HostName=hub.example;SharedAccessKeyName=devices;SharedAccessKey=") {
		t.Errorf("policy add on 443: %q, %v", lastLine(out), err)
	}

	for _, tt := range []struct {
		args      []string
		wantErr   string
		wantUsage bool
	}{
		{[]string{"policy", "add", "p1"}, "--rights is required", true},
		{[]string{"policy", "add", "p1", "--rights", "registryRead,superuser"}, "unknown right", true},
		{[]string{"policy", "add", "bad name", "--rights", "registryRead"}, "policy name contains", false},
		{[]string{"policy", "add", "backend", "--rights", "registryRead"}, "already exists", false},
		{[]string{"policy", "rotate-key", "--key", "tertiary", "backend"}, "unknown key", false},
		{[]string{"policy", "rm", "nobody"}, "not found", false},
		{[]string{"policy", "rm"}, "expected one policy name", true},
	} {
		_, _, err := cli(t, "", append(tt.args, "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (exitCode(err) == 2) != tt.wantUsage {
			t.Errorf("%v: err = %v (exit %d), want %q (usage %v)", tt.args, err, exitCode(err), tt.wantErr, tt.wantUsage)
		}
	}

	out, _, err = cli(t, "", "policy", "rm", "--data", data, "backend")
	if err != nil || !strings.Contains(out, "backend removed") {
		t.Fatalf("policy rm = %q, %v", out, err)
	}
	d, err = app.OpenStoreAt(context.Background(), data, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Policy(context.Background(), "backend"); err == nil {
		t.Error("the removed policy is still stored")
	}
	entries, err := d.AuditEntries(context.Background(), db.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		if e.Actor == "cli" && strings.HasPrefix(e.Action, "policy.") {
			actions = append(actions, e.Action+" "+e.Target)
		}
	}
	want := []string{"policy.delete policy:backend", "policy.create policy:devices", "policy.rotate-key policy:backend", "policy.create policy:backend"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Errorf("audit = %q, want %q (newest first)", actions, want)
	}
}
