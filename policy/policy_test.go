package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/policy"
)

// TestAuthenticate: service tokens of a stored policy verify with either
// key until it is rotated or removed; device tokens need deviceConnect;
// a verified token is remembered until it expires.
func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := policy.New(policy.Config{Store: d, Hostnames: []string{"hub.example"}, Now: func() time.Time { return now }})
	p, err := s.Create(ctx, "user:root", "backend", db.RightServiceConnect)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(resource, name, key string) string {
		tok, err := auth.SignServiceSAS(resource, name, key, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	primary, secondary := sign("hub.example", "backend", p.PrimaryKey), sign("hub.example", "backend", p.SecondaryKey)
	for _, tok := range []string{primary, secondary} {
		if got, err := s.Authenticate(ctx, tok, "/devices", now); err != nil || got.Name != "backend" {
			t.Errorf("Authenticate = %+v, %v", got, err)
		}
	}
	if !s.Verified(primary, now) || s.Verified(primary, now.Add(time.Hour)) {
		t.Error("a verified token is not remembered until it expires")
	}
	if _, err := s.Authenticate(ctx, sign("hub.example", "nobody", p.PrimaryKey), "/devices", now); !errors.Is(err, policy.ErrUnknownPolicy) {
		t.Errorf("unknown policy: %v", err)
	}
	if _, err := s.Authenticate(ctx, sign("hub.example", "bad name!", p.PrimaryKey), "/devices", now); !errors.Is(err, policy.ErrUnknownPolicy) {
		t.Errorf("a name no policy can have: %v", err)
	}
	if _, err := s.Authenticate(ctx, strings.Repeat("x", policy.MaxToken+1), "/devices", now); !errors.Is(err, auth.ErrMalformedToken) {
		t.Errorf("huge token: %v", err)
	}
	if _, _, err := s.AuthenticateDevice(ctx, sign("hub.example/devices/d1", "backend", p.PrimaryKey), "d1", now); !errors.Is(err, policy.ErrNoRight) {
		t.Errorf("device token without deviceConnect: %v", err)
	}

	if _, err := s.RotateKey(ctx, "user:root", "backend", db.SecondaryKey); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secondary, "/devices", now); !errors.Is(err, auth.ErrBadSignature) {
		t.Errorf("token of the rotated key: %v", err)
	}
	dev, err := s.Create(ctx, "user:root", "devices", db.RightDeviceConnect)
	if err != nil {
		t.Fatal(err)
	}
	got, exp, err := s.AuthenticateDevice(ctx, sign("hub.example/devices/d1", "devices", dev.PrimaryKey), "d1", now)
	if err != nil || got.Name != "devices" || !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("device token with deviceConnect = %+v %v %v", got, exp, err)
	}
	if _, _, err := s.AuthenticateDevice(ctx, sign("hub.example/devices/d1", "devices", dev.PrimaryKey), "d2", now); !errors.Is(err, auth.ErrWrongDevice) {
		t.Errorf("device token for another device: %v", err)
	}
	if err := s.Remove(ctx, "user:root", "backend"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, primary, "/devices", now); !errors.Is(err, policy.ErrUnknownPolicy) {
		t.Errorf("token of a removed policy: %v", err)
	}
	if got := policy.ConnectionString(policy.ServiceHost("hub.example", 443), dev); got != "HostName=hub.example;SharedAccessKeyName=devices;SharedAccessKey="+dev.PrimaryKey {
		t.Errorf("connection string = %q", got)
	}
	if got := policy.ServiceHost("hub.example", 8443); got != "hub.example:8443" {
		t.Errorf("ServiceHost = %q", got)
	}
	entries, err := d.AuditEntries(ctx, db.AuditFilter{Action: "policy.", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Target)
	}
	if strings.Join(actions, "|") != "policy.delete policy:backend|policy.create policy:devices|policy.rotate-key policy:backend|policy.create policy:backend" {
		t.Errorf("audit = %q", actions)
	}
}
