package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/storage"
)

// RunRegistry tests the device registry: devices, their authentication and
// keys, the fleet list with its filters and counts.
func RunRegistry(t *testing.T, b Backend) {
	cases(t, b,
		test{"DeviceLifecycle", testDeviceLifecycle},
		test{"DevicesFilterAndCounts", testDevicesFilterAndCounts},
		test{"DeviceOrders", testDeviceOrders},
		test{"DeviceAuthentication", testDeviceAuthentication},
		test{"ImportDevices", testImportDevices},
		test{"CredentialsVersion", testCredentialsVersion},
		test{"ImportCredentials", testImportCredentials},
	)
}

// testCredentialsVersion: the version moves with every change of what
// authenticates a device (keys, enabled, authentication, deletion), made
// through any method, and stands still for everything else, so that the
// registry's credential cache may keep its entries while it does.
func testCredentialsVersion(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	device(t, d, "dev1")
	device(t, d, "dev2")
	version := func() int64 {
		t.Helper()
		v, err := d.CredentialsVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	name, off, on := "renamed", false, true
	tests := []struct {
		name   string
		change func() error
		moves  bool
	}{
		{"rename and tag", func() error {
			_, err := d.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Name: &name, Tags: map[string]string{"site": "north"}})
			return err
		}, false},
		{"connect", func() error { _, err := d.SetDeviceConnection(ctx, "dev1", "node-a", true); return err }, false},
		{"disconnect", func() error { _, err := d.SetDeviceConnection(ctx, "dev1", "node-a", false); return err }, false},
		{"create another", func() error { _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev3"}); return err }, false},
		{"disable", func() error { _, err := d.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Enabled: &off}); return err }, true},
		{"enable", func() error { _, err := d.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Enabled: &on}); return err }, true},
		{"rotate", func() error { _, err := d.RotateDeviceKey(ctx, "dev2", "secondary"); return err }, true},
		{"disable by import", func() error {
			_, err := d.ImportDevices(ctx, []db.ImportDevice{{DeviceID: "dev2", Enabled: false}}, false)
			return err
		}, true},
		{"delete", func() error { return d.DeleteDevice(ctx, "dev3") }, true},
	}
	for _, tt := range tests {
		before := version()
		if err := tt.change(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if moved := version() != before; moved != tt.moves {
			t.Errorf("%s: version moved %v, want %v", tt.name, moved, tt.moves)
		}
	}
}

// RunCAs tests the CA certificates X.509 devices chain to.
func RunCAs(t *testing.T, b Backend) {
	cases(t, b, test{"CertificateAuthorities", testCertificateAuthorities})
}

func testDeviceLifecycle(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	now := T0

	dev, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "pump-1", Name: "Pump", Tags: map[string]string{"site": "north"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if dev.PrimaryKey == "" || dev.PrimaryKey == dev.SecondaryKey {
		t.Errorf("keys = %q, %q; want two distinct keys", dev.PrimaryKey, dev.SecondaryKey)
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "pump-1"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate create: err = %v, want ErrConflict", err)
	}
	var inv *storage.InvalidError
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "bad id"}); !errors.As(err, &inv) {
		t.Errorf("bad id: err = %v, want InvalidError", err)
	}

	got, err := d.Device(ctx, "pump-1")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Name != "Pump" || got.Tags["site"] != "north" || !got.Enabled || !got.CreatedAt.Equal(now) {
		t.Errorf("got %+v", got)
	}
	if s := got.Status(now); s != db.StatusOffline {
		t.Errorf("status of silent device = %s, want offline", s)
	}

	off := false
	name := "Main pump"
	upd, err := d.UpdateDevice(ctx, "pump-1", db.DeviceUpdate{Name: &name, Enabled: &off, Tags: map[string]string{"site": "south"}})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if upd.Name != name || upd.Enabled || upd.Tags["site"] != "south" || upd.Status(now) != db.StatusDisabled {
		t.Errorf("updated = %+v", upd)
	}

	rot, err := d.RotateDeviceKey(ctx, "pump-1", db.SecondaryKey)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.SecondaryKey == dev.SecondaryKey || rot.PrimaryKey != dev.PrimaryKey {
		t.Errorf("rotate secondary changed the wrong key")
	}
	if _, err := d.RotateDeviceKey(ctx, "pump-1", "tertiary"); !errors.As(err, &inv) {
		t.Errorf("rotate unknown key: %v", err)
	}

	if err := d.DeleteDevice(ctx, "pump-1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := d.Device(ctx, "pump-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get deleted: err = %v, want ErrNotFound", err)
	}
	if err := d.DeleteDevice(ctx, "pump-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
}

func testDevicesFilterAndCounts(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	for _, id := range []string{"a-1", "a-2", "b-1", "b-2", "c-1"} {
		tags := map[string]string{"group": id[:1]}
		if id[2] == '1' {
			tags["site"] = "new york"
		}
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.UpdateDevice(ctx, "b-2", db.DeviceUpdate{Name: ptr("North York pump")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetDeviceConnection(ctx, "a-1", "node1", true); err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := d.UpdateDevice(ctx, "c-1", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		filter    db.DeviceFilter
		wantIDs   string
		wantTotal int
	}{
		{"all", db.DeviceFilter{}, "a-1 a-2 b-1 b-2 c-1", 5},
		{"text", db.DeviceFilter{Query: "b-"}, "b-1 b-2", 2},
		{"tag", db.DeviceFilter{Query: "group=a"}, "a-1 a-2", 2},
		{"JSON text is not a tag", db.DeviceFilter{Query: `"group":"a"`}, "", 0},
		{"online", db.DeviceFilter{Status: db.StatusOnline}, "a-1", 1},
		{"offline", db.DeviceFilter{Status: db.StatusOffline}, "a-2 b-1 b-2", 3},
		{"disabled", db.DeviceFilter{Status: db.StatusDisabled}, "c-1", 1},
		{"page", db.DeviceFilter{Limit: 2, Offset: 2}, "b-1 b-2", 5},
		{"like wildcard is literal", db.DeviceFilter{Query: "%"}, "", 0},
		{"tags are AND-ed", db.DeviceFilter{Query: `group=a site="new york"`}, "a-1", 1},
		{"a tag matches exactly", db.DeviceFilter{Query: "site=new"}, "", 0},
		{"a tag value is not a tag name", db.DeviceFilter{Query: "a=group"}, "", 0},
		{"text in a tag value or name, any case", db.DeviceFilter{Query: "YORK"}, "a-1 b-1 b-2 c-1", 4},
		{"text and tag", db.DeviceFilter{Query: "york group=b"}, "b-1 b-2", 2},
		{"quoted text keeps its space", db.DeviceFilter{Query: `"north york"`}, "b-2", 1},
		{"text in a tag name", db.DeviceFilter{Query: "grou"}, "a-1 a-2 b-1 b-2 c-1", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, total, err := d.Devices(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, dev := range devs {
				ids = append(ids, dev.DeviceID)
			}
			if got := strings.Join(ids, " "); got != tt.wantIDs || total != tt.wantTotal {
				t.Errorf("got %q (total %d), want %q (total %d)", got, total, tt.wantIDs, tt.wantTotal)
			}
		})
	}
	// A device that hangs up is offline at once, although it was just active;
	// a later message brings it back online.
	if _, err := d.SetDeviceConnection(ctx, "b-2", "node1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetDeviceConnection(ctx, "b-2", "node1", false); err != nil {
		t.Fatal(err)
	}
	if dev, _ := d.Device(ctx, "b-2"); dev.Status(clk.Now()) != db.StatusOffline {
		t.Errorf("disconnected device status = %s, want offline", dev.Status(clk.Now()))
	}
	c, err := d.FleetCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (db.FleetCounts{Online: 1, Offline: 3, Disabled: 1, Connected: 1}) {
		t.Errorf("counts = %+v", c)
	}
	if _, _, err := d.Devices(ctx, db.DeviceFilter{Status: "sleeping"}); err == nil {
		t.Error("unknown status filter accepted")
	}
}

func testDeviceAuthentication(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	tp := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("cd:", 20), ":")

	sas, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "sas"})
	if err != nil {
		t.Fatal(err)
	}
	if sas.Auth.Type != auth.AuthSAS || sas.PrimaryKey == "" || sas.SecondaryKey == "" {
		t.Errorf("default device: auth %+v, keys %q %q; want sas with keys", sas.Auth, sas.PrimaryKey, sas.SecondaryKey)
	}
	self, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "self", Auth: db.Authentication{
		Type: auth.AuthSelfSigned, PrimaryThumbprint: tp, SecondaryThumbprint: colons}})
	if err != nil {
		t.Fatal(err)
	}
	wantSelf := db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: strings.ToUpper(tp), SecondaryThumbprint: strings.Repeat("CD", 20)}
	if self.Auth != wantSelf || self.PrimaryKey != "" || self.SecondaryKey != "" {
		t.Errorf("selfSigned device: auth %+v, keys %q %q; want %+v without keys", self.Auth, self.PrimaryKey, self.SecondaryKey, wantSelf)
	}
	if got, err := d.Device(ctx, "self"); err != nil || got.Auth != wantSelf || got.PrimaryKey != "" {
		t.Errorf("stored selfSigned device: %+v, %v", got, err)
	}
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "ca", Auth: db.Authentication{Type: auth.AuthCertificateAuthority}}); err != nil {
		t.Fatal(err)
	}

	for _, a := range []db.Authentication{
		{Type: auth.AuthSelfSigned},
		{Type: auth.AuthSelfSigned, PrimaryThumbprint: "abc"},
		{Type: auth.AuthSelfSigned, PrimaryThumbprint: tp, SecondaryThumbprint: "xyz"},
		{Type: auth.AuthSAS, PrimaryThumbprint: tp},
		{Type: auth.AuthCertificateAuthority, SecondaryThumbprint: tp},
		{Type: "x509"},
	} {
		_, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "bad", Auth: a})
		var inv *storage.InvalidError
		if !errors.As(err, &inv) || inv.Field != "authentication" {
			t.Errorf("create with %+v: err = %v, want an invalid authentication", a, err)
		}
	}

	// SAS → X.509 drops the keys; back to SAS gives fresh ones.
	dev, err := d.UpdateDevice(ctx, "sas", db.DeviceUpdate{Auth: &db.Authentication{Type: auth.AuthCertificateAuthority}})
	if err != nil || dev.Auth.Type != auth.AuthCertificateAuthority || dev.PrimaryKey != "" || dev.SecondaryKey != "" {
		t.Fatalf("to certificateAuthority: %+v, %v", dev, err)
	}
	if _, err := d.RotateDeviceKey(ctx, "sas", db.PrimaryKey); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("rotate the key of an X.509 device: err = %v, want refused", err)
	}
	dev, err = d.UpdateDevice(ctx, "sas", db.DeviceUpdate{Auth: &db.Authentication{}})
	if err != nil || dev.Auth.Type != auth.AuthSAS || dev.PrimaryKey == "" || dev.PrimaryKey == sas.PrimaryKey {
		t.Fatalf("back to sas: %+v, %v; want fresh keys", dev, err)
	}
	same, err := d.UpdateDevice(ctx, "sas", db.DeviceUpdate{Auth: &db.Authentication{Type: auth.AuthSAS}})
	if err != nil || same.PrimaryKey != dev.PrimaryKey || same.SecondaryKey != dev.SecondaryKey {
		t.Errorf("sas to sas changed the keys: %+v, %v", same, err)
	}
	if _, err := d.UpdateDevice(ctx, "sas", db.DeviceUpdate{Auth: &db.Authentication{Type: auth.AuthSelfSigned}}); err == nil {
		t.Error("update to selfSigned without a thumbprint succeeded")
	}

	creds, err := d.AllDeviceCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := creds["self"]; got.Auth != wantSelf || got.Keys != [2]string{} || !got.Enabled {
		t.Errorf("credentials of self = %+v", got)
	}
}

func testCertificateAuthorities(t *testing.T, b Backend) {
	ctx := context.Background()
	// Certificates are checked against the store's clock; the test's are
	// valid around the real time.
	d := b.Open(t, time.Now)
	root := certstest.NewCA(t, "Fleet Root")
	other := certstest.NewCA(t, "Other Root")

	ca, err := d.AddCertificateAuthority(ctx, "fleet", root.PEM())
	if err != nil {
		t.Fatal(err)
	}
	if ca.Subject != "CN=Fleet Root" || ca.Thumbprint != auth.Thumbprint(root.Cert) || !ca.NotAfter.Equal(root.Cert.NotAfter.Truncate(1e6)) {
		t.Errorf("added %+v", ca)
	}
	if _, err := d.AddCertificateAuthority(ctx, "fleet", other.PEM()); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("same name again: err = %v, want ErrConflict", err)
	}
	if _, err := d.AddCertificateAuthority(ctx, "again", root.PEM()); err == nil || !strings.Contains(err.Error(), `already registered as "fleet"`) {
		t.Errorf("same certificate again: err = %v", err)
	}
	for _, name := range []string{"", "..", "a/b", "with space", strings.Repeat("n", 65)} {
		var inv *storage.InvalidError
		if _, err := d.AddCertificateAuthority(ctx, name, other.PEM()); !errors.As(err, &inv) || inv.Field != "name" {
			t.Errorf("name %q: err = %v, want an invalid name", name, err)
		}
	}
	var inv *storage.InvalidError
	if _, err := d.AddCertificateAuthority(ctx, "leaf", root.Issue(t, "dev1").PEM()); !errors.As(err, &inv) || inv.Field != "certificate" {
		t.Errorf("device certificate as CA: err = %v, want an invalid certificate", err)
	}
	if _, err := d.AddCertificateAuthority(ctx, "other", other.PEM()); err != nil {
		t.Fatal(err)
	}

	list, err := d.CertificateAuthorities(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "fleet" || list[1].Name != "other" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	certs, err := d.CACertificates(ctx)
	if err != nil || len(certs) != 2 || !certs[0].Equal(root.Cert) || !certs[1].Equal(other.Cert) {
		t.Fatalf("CACertificates = %v, %v", certs, err)
	}
	tps, err := d.CAThumbprints(ctx)
	if err != nil || len(tps) != 2 || !tps[auth.Thumbprint(root.Cert)] {
		t.Fatalf("CAThumbprints = %v, %v", tps, err)
	}

	if err := d.DeleteCertificateAuthority(ctx, "fleet"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteCertificateAuthority(ctx, "fleet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	if tps, _ := d.CAThumbprints(ctx); tps[auth.Thumbprint(root.Cert)] {
		t.Error("deleted CA still trusted")
	}

	// The number of CAs is bounded.
	for i := len(list) - 1; i < db.MaxCertificateAuthorities; i++ {
		if _, err := d.AddCertificateAuthority(ctx, fmt.Sprintf("ca-%d", i), certstest.NewCA(t, fmt.Sprint(i)).PEM()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.AddCertificateAuthority(ctx, "one-too-many", certstest.NewCA(t, "x").PEM()); err == nil || !strings.Contains(err.Error(), "the most it allows") {
		t.Errorf("CA over the limit: err = %v", err)
	}
}

// testDeviceOrders: every order of the fleet list is total (ties by id, in
// the same direction); pages of Devices and EachDevice (with an offset and
// a limit too) walk it without gap or overlap, with and without a filter.
func testDeviceOrders(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	r := rand.New(rand.NewPCG(3, 4))
	names := []string{"", "Alpha", "alpha", "Beta", "gamma"}
	const n = 90
	for _, i := range r.Perm(n) {
		id := fmt.Sprintf("dev-%03d", i)
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id, Name: names[r.IntN(len(names))],
			Tags: map[string]string{"site": fmt.Sprint("s", i%3)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Activity spread over 10 minutes (a third never heard from, some
	// still connected, some hung up), one in seven disabled; many ties.
	for i := range n {
		id := fmt.Sprintf("dev-%03d", i)
		clk.Advance(time.Duration(r.IntN(3)) * 5 * time.Second)
		if i%3 != 0 {
			if _, err := d.SetDeviceConnection(ctx, id, "node1", true); err != nil {
				t.Fatal(err)
			}
			if i%4 != 0 {
				if _, err := d.SetDeviceConnection(ctx, id, "node1", false); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i%7 == 0 {
			if _, err := d.UpdateDevice(ctx, id, db.DeviceUpdate{Enabled: ptr(false)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := clk.Now()
	all, _, err := d.Devices(ctx, db.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(f db.DeviceFilter) []string {
		t.Helper()
		var ids []string
		if err := d.EachDevice(ctx, f, now, func(dev db.Device) error {
			ids = append(ids, dev.DeviceID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, q := range []string{"", "site=s1"} {
		for _, sort := range []string{db.DeviceSortID, db.DeviceSortName, db.DeviceSortStatus, db.DeviceSortLastActivity} {
			for _, desc := range []bool{false, true} {
				f := db.DeviceFilter{Query: q, Sort: sort, Desc: desc}
				t.Run(fmt.Sprintf("%s/%s/desc=%v", q, sort, desc), func(t *testing.T) {
					matching := all
					if q != "" {
						matching = slices.DeleteFunc(slices.Clone(all), func(d db.Device) bool { return d.Tags["site"] != "s1" })
					}
					want := dbtest.FleetOrder(matching, sort, desc, now)
					var paged []string
					for off := 0; off <= n; off += 7 {
						page := f
						page.Offset, page.Limit = off, 7
						devs, total, err := d.Devices(ctx, page)
						if err != nil {
							t.Fatal(err)
						}
						if total != len(want) {
							t.Fatalf("total = %d, want %d", total, len(want))
						}
						for _, dev := range devs {
							paged = append(paged, dev.DeviceID)
						}
					}
					if !slices.Equal(paged, want) {
						t.Errorf("pages of 7 = %v\nwant %v", paged, want)
					}
					if got := walk(f); !slices.Equal(got, want) {
						t.Errorf("EachDevice = %v\nwant %v", got, want)
					}
					part := f
					part.Offset, part.Limit = 5, 20
					if got, end := walk(part), min(len(want), 25); !slices.Equal(got, want[min(5, end):end]) {
						t.Errorf("EachDevice offset 5 limit 20 = %v, want %v", got, want[min(5, end):end])
					}
				})
			}
		}
	}
	var inv *storage.InvalidError
	if _, _, err := d.Devices(ctx, db.DeviceFilter{Sort: "colour"}); !errors.As(err, &inv) {
		t.Errorf("unknown sort: err = %v, want InvalidError", err)
	}
	if err := d.EachDevice(ctx, db.DeviceFilter{Sort: "colour"}, now, func(db.Device) error { return nil }); !errors.As(err, &inv) {
		t.Errorf("EachDevice, unknown sort: err = %v, want InvalidError", err)
	}
}

func testImportDevices(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	old := device(t, d, "old-1")
	device(t, d, "same-1")
	devs := []db.ImportDevice{
		{DeviceID: "new-1", Name: "New", Tags: map[string]string{"site": "x"}, Enabled: true},
		{DeviceID: "old-1", Name: "Renamed", Enabled: false},
		{DeviceID: "same-1", Enabled: true},
	}
	dry, err := d.ImportDevices(ctx, devs, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dry.Actions) != "[create update unchanged]" || dry.Created != 1 || dry.Updated != 1 || dry.Unchanged != 1 ||
		fmt.Sprint(dry.EnabledChanged) != "[old-1]" {
		t.Errorf("dry run = %+v", dry)
	}
	if _, err := d.Device(ctx, "new-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a dry run created new-1: %v", err)
	}
	res, err := d.ImportDevices(ctx, devs, false)
	if err != nil || fmt.Sprint(res.Actions) != fmt.Sprint(dry.Actions) {
		t.Fatalf("import = %+v, %v; want what the dry run said", res, err)
	}
	n, _ := d.Device(ctx, "new-1")
	if n.Name != "New" || n.Tags["site"] != "x" || !n.Enabled || n.PrimaryKey == "" || n.PrimaryKey == n.SecondaryKey {
		t.Errorf("new-1 = %+v", n)
	}
	o, _ := d.Device(ctx, "old-1")
	if o.Name != "Renamed" || o.Enabled || o.PrimaryKey != old.PrimaryKey || len(o.Tags) != 0 {
		t.Errorf("old-1 = %+v; want renamed, disabled, its key kept", o)
	}
	// All or nothing: a bad device leaves every other unwritten.
	var inv *storage.InvalidError
	bad := []db.ImportDevice{{DeviceID: "new-2", Enabled: true}, {DeviceID: "new-2", Enabled: true}}
	if _, err := d.ImportDevices(ctx, bad, false); !errors.As(err, &inv) {
		t.Errorf("a device twice: err = %v, want InvalidError", err)
	}
	bad = []db.ImportDevice{{DeviceID: "new-3", Enabled: true}, {DeviceID: "bad id", Enabled: true}}
	if _, err := d.ImportDevices(ctx, bad, false); !errors.As(err, &inv) {
		t.Errorf("a bad id: err = %v, want InvalidError", err)
	}
	for _, id := range []string{"new-2", "new-3"} {
		if _, err := d.Device(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a refused import wrote %s: %v", id, err)
		}
	}
}

// testImportCredentials: an import that gives credentials (an admin
// export's columns) creates devices with them and replaces those of
// existing devices; the same credentials again change nothing.
func testImportCredentials(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	old := device(t, d, "old-1")
	keyA, keyB := db.NewDeviceKey(), db.NewDeviceKey()
	thumb := strings.Repeat("AB", 32)
	devs := []db.ImportDevice{
		{DeviceID: "sas-1", Enabled: true, Credentials: &db.ImportCredentials{Auth: db.Authentication{Type: auth.AuthSAS}, PrimaryKey: keyA, SecondaryKey: keyB}},
		{DeviceID: "x509-1", Enabled: true, Credentials: &db.ImportCredentials{Auth: db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: thumb}}},
		{DeviceID: "ca-1", Enabled: true, Credentials: &db.ImportCredentials{Auth: db.Authentication{Type: auth.AuthCertificateAuthority}}},
		{DeviceID: "old-1", Enabled: true, Credentials: &db.ImportCredentials{Auth: db.Authentication{Type: auth.AuthSAS}, PrimaryKey: keyB, SecondaryKey: keyA}},
		{DeviceID: "fresh-1", Enabled: true},
	}
	dry, err := d.ImportDevices(ctx, devs, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dry.Actions) != "[create create create update create]" || fmt.Sprint(dry.CredentialsChanged) != "[old-1]" {
		t.Errorf("dry run = %+v", dry)
	}
	if o, _ := d.Device(ctx, "old-1"); o.PrimaryKey != old.PrimaryKey {
		t.Errorf("a dry run replaced the keys of old-1")
	}
	if _, err := d.ImportDevices(ctx, devs, false); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		id, typ, primary, secondary, thumb string
	}{
		{"sas-1", auth.AuthSAS, keyA, keyB, ""},
		{"x509-1", auth.AuthSelfSigned, "", "", thumb},
		{"ca-1", auth.AuthCertificateAuthority, "", "", ""},
		{"old-1", auth.AuthSAS, keyB, keyA, ""},
	} {
		got, err := d.Device(ctx, w.id)
		if err != nil || got.Auth.Type != w.typ || got.PrimaryKey != w.primary || got.SecondaryKey != w.secondary || got.Auth.PrimaryThumbprint != w.thumb {
			t.Errorf("%s = %+v, %v; want %s keys %q/%q thumbprint %q", w.id, got, err, w.typ, w.primary, w.secondary, w.thumb)
		}
	}
	if f, _ := d.Device(ctx, "fresh-1"); f.Auth.Type != auth.AuthSAS || f.PrimaryKey == "" || f.PrimaryKey == f.SecondaryKey {
		t.Errorf("fresh-1 without credentials = %+v; want fresh keys", f)
	}
	again, err := d.ImportDevices(ctx, devs[:4], false)
	if err != nil || again.Unchanged != 4 || len(again.CredentialsChanged) != 0 {
		t.Errorf("the same import again = %+v, %v; want everything unchanged", again, err)
	}
	var inv *storage.InvalidError
	bad := []db.ImportDevice{{DeviceID: "bad-1", Enabled: true, Credentials: &db.ImportCredentials{Auth: db.Authentication{Type: auth.AuthSAS}, PrimaryKey: "short", SecondaryKey: keyA}}}
	if _, err := d.ImportDevices(ctx, bad, false); !errors.As(err, &inv) {
		t.Errorf("a bad key: err = %v, want InvalidError", err)
	}
}
