package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunMQTTSessions tests what the MQTT broker keeps: the subscriptions of
// persistent sessions, devices' connection state, and the credentials its
// recheck compares connections with.
func RunMQTTSessions(t *testing.T, b Backend) {
	cases(t, b,
		test{"Subscriptions", testSubscriptions},
		test{"ConnectionState", testConnectionState},
		test{"ConnectionNode", testConnectionNode},
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
	if _, err := d.SetDeviceConnection(ctx, "dev1", "node1", true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // long past the online window: the connection counts
	if dev := status("dev1"); !dev.Connected || !dev.LastActivity.Equal(T0) || dev.Status(clk.Now()) != db.StatusOnline {
		t.Errorf("connected device = %+v (%s), want connected, active at T0, online", dev, dev.Status(clk.Now()))
	}
	if c, err := d.FleetCounts(ctx); err != nil || c != (db.FleetCounts{Online: 1, Offline: 1, Connected: 1}) {
		t.Errorf("counts = %+v, %v; want 1 online, 1 offline", c, err)
	}
	if _, err := d.SetDeviceConnection(ctx, "dev1", "node1", false); err != nil {
		t.Fatal(err)
	}
	hungUp := clk.Now()
	if dev := status("dev1"); dev.Connected || !dev.DisconnectedAt.Equal(hungUp) || !dev.LastActivity.Equal(hungUp) || dev.Status(hungUp) != db.StatusOffline {
		t.Errorf("disconnected device = %+v, want offline at once, disconnected and active at %v", dev, hungUp)
	}
	if _, err := d.SetDeviceConnection(ctx, "dev2", "node1", true); err != nil {
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

// testConnectionNode: instances sharing the store record which of them
// holds a device's connection; a device that moves to another instance
// names the one it left, that one's late close does not mark it offline,
// and an instance's restart resets only its own connections.
func testConnectionNode(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	device(t, d, "dev1")
	device(t, d, "dev2")
	set := func(id, node string, connected bool, wantPrevious string) {
		t.Helper()
		prev, err := d.SetDeviceConnection(ctx, id, node, connected)
		if err != nil || prev != wantPrevious {
			t.Fatalf("SetDeviceConnection(%s, %s, %v) = %q, %v; want %q", id, node, connected, prev, err, wantPrevious)
		}
	}
	node := func(id, want string) {
		t.Helper()
		if got, err := d.DeviceConnectionNode(ctx, id); err != nil || got != want {
			t.Errorf("DeviceConnectionNode(%s) = %q, %v; want %q", id, got, err, want)
		}
	}
	node("dev1", "")
	set("dev1", "a", true, "")
	node("dev1", "a")
	set("dev1", "a", true, "a") // a reconnect to the same instance
	clk.Advance(time.Second)
	set("dev1", "b", true, "a") // moved: a's session is to be taken over
	node("dev1", "b")
	set("dev1", "a", false, "b") // a's old connection closes late
	node("dev1", "b")
	if dev, err := d.Device(ctx, "dev1"); err != nil || !dev.Connected || dev.Status(clk.Now().Add(time.Hour)) != db.StatusOnline {
		t.Errorf("dev1 after a's late close = %+v, %v; want connected and online", dev, err)
	}
	set("dev1", "b", false, "b")
	node("dev1", "")
	if dev, err := d.Device(ctx, "dev1"); err != nil || dev.Connected || !dev.DisconnectedAt.Equal(clk.Now()) {
		t.Errorf("dev1 after b's close = %+v, %v; want disconnected at %v", dev, err, clk.Now())
	}
	set("dev1", "a", true, "") // the old holder is forgotten once the device left

	set("dev2", "b", true, "")
	if err := d.ResetNodeConnections(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	node("dev1", "")
	node("dev2", "b")
	if c, err := d.FleetCounts(ctx); err != nil || c != (db.FleetCounts{Online: 1, Offline: 1, Connected: 1}) {
		t.Errorf("counts after a's restart = %+v, %v; want b's device online, a's offline", c, err)
	}
	if _, err := d.DeviceConnectionNode(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeviceConnectionNode(unknown) = %v, want storage.ErrNotFound", err)
	}
	if _, err := d.SetDeviceConnection(ctx, "nope", "a", true); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetDeviceConnection(unknown) = %v, want storage.ErrNotFound", err)
	}
}
