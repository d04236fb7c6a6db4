package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
)

// RunMQTTSessions tests what the MQTT broker keeps: the subscriptions of
// persistent sessions, devices' connection state, and the credentials its
// recheck compares connections with.
func RunMQTTSessions(t *testing.T, b Backend) {
	cases(t, b,
		test{"Subscriptions", testSubscriptions},
		test{"ConnectionState", testConnectionState},
		test{"Credentials", testCredentials},
	)
}

// subscriptions lists a device's subscriptions by filter.
func subscriptions(t *testing.T, d Store, deviceID string) []db.Subscription {
	t.Helper()
	subs, err := d.Subscriptions(context.Background(), deviceID)
	if err != nil {
		t.Fatalf("subscriptions of %s: %v", deviceID, err)
	}
	slices.SortFunc(subs, func(a, b db.Subscription) int {
		switch {
		case a.Filter < b.Filter:
			return -1
		case a.Filter > b.Filter:
			return 1
		}
		return 0
	})
	return subs
}

// testSubscriptions: stored per device, a filter stored again takes its
// new QoS, forgotten one by one or all at once, kept across a restart,
// gone with their device.
func testSubscriptions(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	device(t, d, "dev1")
	device(t, d, "dev2")
	c2d, methods, twin := "devices/dev1/messages/devicebound/#", "$iothub/methods/POST/#", "$iothub/twin/res/#"
	if err := d.StoreSubscriptions(ctx, "dev1", []db.Subscription{{Filter: c2d, QoS: 1}, {Filter: methods, QoS: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := d.StoreSubscriptions(ctx, "dev2", []db.Subscription{{Filter: twin, QoS: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := d.StoreSubscriptions(ctx, "dev1", []db.Subscription{{Filter: methods, QoS: 1}, {Filter: twin, QoS: 0}}); err != nil {
		t.Fatal(err)
	}
	want := []db.Subscription{{Filter: methods, QoS: 1}, {Filter: twin, QoS: 0}, {Filter: c2d, QoS: 1}}
	if got := subscriptions(t, d, "dev1"); !slices.Equal(got, want) {
		t.Errorf("dev1 = %+v, want %+v", got, want)
	}
	if err := d.ForgetSubscriptions(ctx, "dev1", []string{twin, "never/subscribed"}); err != nil {
		t.Fatal(err)
	}
	d = b.Reopen(t, d, clk.Now)
	want = []db.Subscription{{Filter: methods, QoS: 1}, {Filter: c2d, QoS: 1}}
	if got := subscriptions(t, d, "dev1"); !slices.Equal(got, want) {
		t.Errorf("dev1 after forgetting one and a restart = %+v, want %+v", got, want)
	}
	if got := subscriptions(t, d, "dev2"); len(got) != 1 || got[0].Filter != twin {
		t.Errorf("dev2 = %+v, want its own subscription only", got)
	}
	if err := d.ForgetSubscriptions(ctx, "dev1", nil); err != nil {
		t.Fatal(err)
	}
	if got := subscriptions(t, d, "dev1"); len(got) != 0 {
		t.Errorf("dev1 after forgetting all = %+v, want none", got)
	}
	if err := d.DeleteDevice(ctx, "dev2"); err != nil {
		t.Fatal(err)
	}
	device(t, d, "dev2")
	if got := subscriptions(t, d, "dev2"); len(got) != 0 {
		t.Errorf("dev2 deleted and created again = %+v, want none", got)
	}
}

// testConnectionState: a live connection makes a device online and counts
// as activity; hanging up makes it offline at once; a restart resets every
// connection.
func testConnectionState(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	device(t, d, "dev1")
	device(t, d, "dev2")
	status := func(id string) db.Device {
		t.Helper()
		dev, err := d.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return dev
	}
	if err := d.SetDeviceConnected(ctx, "dev1", true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // long past the online window: the connection counts
	if dev := status("dev1"); !dev.Connected || !dev.LastActivity.Equal(T0) || dev.Status(clk.Now()) != db.StatusOnline {
		t.Errorf("connected device = %+v (%s), want connected, active at T0, online", dev, dev.Status(clk.Now()))
	}
	if c, err := d.FleetCounts(ctx); err != nil || c != (db.FleetCounts{Online: 1, Offline: 1}) {
		t.Errorf("counts = %+v, %v; want 1 online, 1 offline", c, err)
	}
	if err := d.SetDeviceConnected(ctx, "dev1", false); err != nil {
		t.Fatal(err)
	}
	hungUp := clk.Now()
	if dev := status("dev1"); dev.Connected || !dev.DisconnectedAt.Equal(hungUp) || !dev.LastActivity.Equal(hungUp) || dev.Status(hungUp) != db.StatusOffline {
		t.Errorf("disconnected device = %+v, want offline at once, disconnected and active at %v", dev, hungUp)
	}
	if err := d.SetDeviceConnected(ctx, "dev2", true); err != nil {
		t.Fatal(err)
	}
	d = b.Reopen(t, d, clk.Now)
	if err := d.ResetConnections(ctx); err != nil {
		t.Fatal(err)
	}
	if dev := status("dev2"); dev.Connected || dev.Status(clk.Now()) != db.StatusOffline {
		t.Errorf("after a restart dev2 = %+v, want disconnected and offline", dev)
	}
	if c, err := d.FleetCounts(ctx); err != nil || c != (db.FleetCounts{Offline: 2}) {
		t.Errorf("counts after a restart = %+v, %v; want 2 offline", c, err)
	}
}

// testCredentials: every device's enabled flag, keys and authentication in
// one read, as the broker's recheck needs them.
func testCredentials(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	sas := device(t, d, "sas")
	off := false
	if _, err := d.UpdateDevice(ctx, "sas", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "ca", Auth: db.Authentication{Type: "certificateAuthority"}}); err != nil {
		t.Fatal(err)
	}
	creds, err := d.AllDeviceCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 {
		t.Fatalf("credentials of %d devices, want 2", len(creds))
	}
	if got := creds["sas"]; got.Enabled || got.Keys != [2]string{sas.PrimaryKey, sas.SecondaryKey} || got.Auth.Type != "sas" {
		t.Errorf("sas = %+v, want disabled with its keys", got)
	}
	if got := creds["ca"]; !got.Enabled || got.Keys != [2]string{} || got.Auth.Type != "certificateAuthority" {
		t.Errorf("ca = %+v, want enabled, no keys, certificateAuthority", got)
	}
}
