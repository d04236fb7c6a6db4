package main

import (
	"context"
	"fieldhub/app"
	"net/url"
	"testing"
	"time"

	"fieldhub/auth"
)

func TestDeviceToken(t *testing.T) {
	data := t.TempDir()
	if _, _, err := cli(t, "", "device", "add", "--data", data, "pump-1"); err != nil {
		t.Fatal(err)
	}
	d, err := app.OpenStore(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := d.Device(context.Background(), "pump-1")
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		wantKey int // index of the key that must verify
	}{
		{[]string{"pump-1"}, 0},
		{[]string{"pump-1", "--key", "secondary", "--ttl", "5m"}, 1},
	}
	for _, tt := range tests {
		out, _, err := cli(t, "", append([]string{"device", "token", "--data", data}, tt.args...)...)
		if err != nil {
			t.Fatalf("device token %v: %v", tt.args, err)
		}
		line := lastLine(out)
		tok, err := auth.ParseSAS(line)
		if err != nil {
			t.Fatalf("last line %q: %v", line, err)
		}
		// Before serve has run, the resource is the default device host's.
		if sr, _ := url.PathUnescape(tok.Resource); sr != defaultDeviceHost+"/devices/pump-1" {
			t.Errorf("token resource %q, want %s/devices/pump-1", sr, defaultDeviceHost)
		}
		key, err := tok.Verify("pump-1", dev.Keys(), time.Now(), nil)
		if err != nil || key != tt.wantKey {
			t.Errorf("token %v verifies with key %d (%v), want key %d", tt.args, key, err, tt.wantKey)
		}
	}
	for _, bad := range [][]string{{"nope"}, {"pump-1", "--key", "tertiary"}, {"pump-1", "--ttl", "-1h"}, {}} {
		if _, _, err := cli(t, "", append([]string{"device", "token", "--data", data}, bad...)...); err == nil {
			t.Errorf("device token %v succeeded, want an error", bad)
		}
	}
}
