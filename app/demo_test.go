package app

import (
	"context"
	"testing"

	"fieldhub/db"
	"fieldhub/registry"
)

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

// TestDemoLinkTags: the tag that tells operators how a demo device connects
// agrees with how the demo runs it.
func TestDemoLinkTags(t *testing.T) {
	for _, d := range demoDevices {
		want := "https"
		if demoMQTTDevices[d.ID] {
			want = "mqtt"
		}
		if got := d.Tags["link"]; got != want {
			t.Errorf("%s: link=%q, want %q", d.ID, got, want)
		}
	}
}
