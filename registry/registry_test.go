package registry_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/registry"
)

type fixture struct {
	db       *db.DB
	reg      *registry.Registry
	live     *testkit.Publisher
	sessions *testkit.Sessions
	clock    *testkit.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: dbtest.MustOpen(t), live: testkit.NewPublisher(), sessions: &testkit.Sessions{},
		clock: testkit.NewClock(time.Now().UTC())}
	f.reg = registry.New(registry.Config{Store: f.db, Audit: f.db, Live: f.live, Sessions: f.sessions, Now: f.clock.Now})
	return f
}

// TestChangesHaveTheirSideEffects: every change, whoever makes it, leaves
// its audit row, its live announcement and its connection re-check — and
// nothing more.
func TestChangesHaveTheirSideEffects(t *testing.T) {
	ca := certstest.NewCA(t, "Fleet Root")
	tests := []struct {
		name      string
		change    func(ctx context.Context, r *registry.Registry) error
		action    string
		target    string
		detail    string
		announced string // status on the device's live stream; "" for none
		rechecked bool   // the device's connection (every connection: TestRemovingACARechecksEveryConnection)
	}{
		{"create", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Create(ctx, "user:alice", db.NewDevice{DeviceID: "dev2"})
			return err
		}, registry.ActionCreate, "dev2", "authentication: sas", "", false},
		{"rename", func(ctx context.Context, r *registry.Registry) error {
			name := "Pump"
			_, err := r.Update(ctx, "user:alice", "dev1", db.DeviceUpdate{Name: &name})
			return err
		}, registry.ActionUpdate, "dev1", "", "", true},
		{"disable", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.SetEnabled(ctx, "token:ops", "dev1", false)
			return err
		}, registry.ActionDisable, "dev1", "", db.StatusDisabled, true},
		{"enable", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.SetEnabled(ctx, "cli", "dev1", true)
			return err
		}, registry.ActionEnable, "dev1", "", db.StatusOffline, true},
		{"disable together with a rename", func(ctx context.Context, r *registry.Registry) error {
			name, off := "Pump", false
			_, err := r.Update(ctx, "user:alice", "dev1", db.DeviceUpdate{Name: &name, Enabled: &off})
			return err
		}, registry.ActionUpdate, "dev1", "", db.StatusDisabled, true},
		{"rotate the secondary key", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.RotateKey(ctx, "user:alice", "dev1", db.SecondaryKey)
			return err
		}, registry.ActionRotateKey, "dev1", "secondary", "", true},
		{"switch to a CA-issued certificate", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.SetAuthentication(ctx, "user:alice", "dev1", db.Authentication{Type: auth.AuthCertificateAuthority})
			return err
		}, registry.ActionSetAuthentication, "dev1", "authentication: certificateAuthority", "", true},
		{"delete", func(ctx context.Context, r *registry.Registry) error {
			return r.Delete(ctx, "user:alice", "dev1")
		}, registry.ActionDelete, "dev1", "", live.StatusDeleted, true},
		{"show the connection string", func(ctx context.Context, r *registry.Registry) error {
			cs, _, err := r.RevealConnectionString(ctx, "user:alice", "dev1", "hub.test:8443")
			if err == nil && !strings.HasPrefix(cs, "HostName=hub.test:8443;DeviceId=dev1;SharedAccessKey=") {
				t.Errorf("connection string %q", cs)
			}
			return err
		}, registry.ActionShowConnectionString, "dev1", "", "", false},
		{"add a CA", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.AddCA(ctx, "user:alice", "fleet", ca.PEM())
			return err
		}, registry.ActionAddCA, "fleet", "CN=Fleet Root, thumbprint " + auth.Thumbprint(ca.Cert), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			if _, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
				t.Fatal(err)
			}
			if err := tt.change(ctx, f.reg); err != nil {
				t.Fatal(err)
			}
			f.checkSideEffects(t, tt.action, tt.target, tt.detail, tt.announced, tt.rechecked)
		})
	}
}

// checkSideEffects: one audit entry (action on target with detail), the
// announced status ("" for none), and a re-check of the target's connection
// or none; never one of every connection.
func (f *fixture) checkSideEffects(t *testing.T, action, target, detail, announced string, rechecked bool) {
	t.Helper()
	entries, err := f.db.AuditEntries(context.Background(), db.AuditFilter{})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %+v, %v; want one entry", entries, err)
	}
	e := entries[0]
	if e.Action != action || e.Target != target || e.Detail != detail || e.Outcome != "ok" || e.Actor == "" {
		t.Errorf("audit %s %s %q by %s (%s); want %s %s %q", e.Action, e.Target, e.Detail, e.Actor, e.Outcome, action, target, detail)
	}
	var statuses []string
	for _, ev := range f.live.Events() {
		statuses = append(statuses, ev.Data.(live.DeviceStatus).Status)
	}
	if (announced == "" && len(statuses) != 0) || (announced != "" && !slices.Equal(statuses, []string{announced})) {
		t.Errorf("announced %v, want %q", statuses, announced)
	}
	devices, all := f.sessions.Checked()
	if got := slices.Equal(devices, []string{target}); got != rechecked || len(devices) > 1 || all != 0 {
		t.Errorf("re-checked connections %v and every connection %d times; want %s: %v, and never all", devices, all, target, rechecked)
	}
}

// TestRemovingACARechecksEveryConnection: a CA may have admitted any
// number of devices.
func TestRemovingACARechecksEveryConnection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.reg.AddCA(ctx, "cli", "fleet", certstest.NewCA(t, "Fleet Root").PEM()); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.RemoveCA(ctx, "token:ops", "fleet"); err != nil {
		t.Fatal(err)
	}
	entries, _ := f.db.AuditEntries(ctx, db.AuditFilter{Action: registry.ActionRemoveCA})
	if len(entries) != 1 || entries[0].Actor != "token:ops" || entries[0].Target != "fleet" {
		t.Errorf("audit %+v, want ca.remove of fleet by token:ops", entries)
	}
	if devices, all := f.sessions.Checked(); all != 1 || len(devices) != 0 {
		t.Errorf("re-checked every connection %d times and devices %v, want once and none", all, devices)
	}
}

// TestFailedChangesLeaveNoTrace: a change the store refuses is not audited,
// announced or re-checked.
func TestFailedChangesLeaveNoTrace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	off := false
	errs := []error{
		func() error { _, err := f.reg.Create(ctx, "cli", db.NewDevice{DeviceID: "bad/id"}); return err }(),
		func() error { _, err := f.reg.SetEnabled(ctx, "cli", "nope", off); return err }(),
		func() error { _, err := f.reg.RotateKey(ctx, "cli", "nope", db.PrimaryKey); return err }(),
		f.reg.Delete(ctx, "cli", "nope"),
		f.reg.RemoveCA(ctx, "cli", "nope"),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("change %d succeeded, want refused", i)
		}
	}
	devices, all := f.sessions.Checked()
	if entries, _ := f.db.AuditEntries(ctx, db.AuditFilter{}); len(entries) != 0 || len(f.live.Events()) != 0 || len(devices) != 0 || all != 0 {
		t.Errorf("refused changes left audit %v, events %v, re-checks %v/%d", entries, f.live.Events(), devices, all)
	}
}

// TestConnectionStrings: SAS devices carry their key, X.509 devices say x509=true.
func TestConnectionStrings(t *testing.T) {
	sas := db.Device{DeviceID: "dev1", PrimaryKey: "a2V5", Auth: db.Authentication{Type: auth.AuthSAS}}
	x509 := db.Device{DeviceID: "cam", Auth: db.Authentication{Type: auth.AuthSelfSigned}}
	for _, tt := range []struct{ got, want string }{
		{registry.ConnectionString("hub:8443", sas), "HostName=hub:8443;DeviceId=dev1;SharedAccessKey=a2V5"},
		{registry.ConnectionString("hub:8443", x509), "HostName=hub:8443;DeviceId=cam;x509=true"},
		{registry.KeyConnectionString("hub", "dev1", "b3Rocg=="), "HostName=hub;DeviceId=dev1;SharedAccessKey=b3Rocg=="},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
