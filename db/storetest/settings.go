package storetest

import (
	"context"
	"testing"
)

// RunSettings tests the hub's settings and that the store answers.
func RunSettings(t *testing.T, b Backend) {
	cases(t, b, test{"Settings", testSettings})
}

func testSettings(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if v, err := d.Setting(ctx, "device_host", "default"); err != nil || v != "default" {
		t.Errorf("unset = %q, %v; want the default", v, err)
	}
	for _, v := range []string{"hub.example:8883", "hub.example", ""} {
		if err := d.SetSetting(ctx, "device_host", v); err != nil {
			t.Fatal(err)
		}
		if got, err := d.Setting(ctx, "device_host", "default"); err != nil || got != v {
			t.Errorf("after setting %q: %q, %v", v, got, err)
		}
	}
	if err := d.SetSetting(ctx, "demo_devices_created", "2026-01-02T03:04:05Z"); err != nil {
		t.Fatal(err)
	}
	d = b.Reopen(t, d, clk.Now)
	if got, err := d.Setting(ctx, "demo_devices_created", ""); err != nil || got != "2026-01-02T03:04:05Z" {
		t.Errorf("after a restart: %q, %v", got, err)
	}
}
