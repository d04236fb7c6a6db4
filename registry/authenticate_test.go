package registry_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/registry"
	"fieldhub/storage"
)

// TestAuthenticate is the one device authentication of HTTPS and MQTT:
// what each credential proves, and what each refusal wraps.
func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	now := f.clock.Now()
	sasDev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "off"})
	if err != nil {
		t.Fatal(err)
	}
	disabled := false
	if _, err := f.db.UpdateDevice(ctx, "off", db.DeviceUpdate{Enabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	own, other := certstest.SelfSigned(t, "cam"), certstest.SelfSigned(t, "cam")
	if _, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "cam", Auth: db.Authentication{Type: auth.AuthSelfSigned,
		PrimaryThumbprint: auth.Thumbprint(other.Cert), SecondaryThumbprint: auth.Thumbprint(own.Cert)}}); err != nil {
		t.Fatal(err)
	}
	root := certstest.NewCA(t, "Fleet Root")
	if _, err := f.db.AddCertificateAuthority(ctx, "fleet", root.PEM()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "ca-dev", Auth: db.Authentication{Type: auth.AuthCertificateAuthority}}); err != nil {
		t.Fatal(err)
	}
	issued := root.Issue(t, "ca-dev")
	sign := func(id, key string, ttl time.Duration) string {
		tok, err := auth.SignSAS("hub.test:8443/devices/"+id, key, now.Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name       string
		cred       registry.Credential
		wantMethod string
		wantCred   string
		wantErr    error
	}{
		{"primary key", registry.Credential{DeviceID: "dev1", SAS: sign("dev1", sasDev.PrimaryKey, time.Hour)}, auth.AuthSASPrimary, sasDev.PrimaryKey, nil},
		{"secondary key", registry.Credential{DeviceID: "dev1", SAS: sign("dev1", sasDev.SecondaryKey, time.Hour)}, auth.AuthSASSecondary, sasDev.SecondaryKey, nil},
		{"expired token", registry.Credential{DeviceID: "dev1", SAS: sign("dev1", sasDev.PrimaryKey, -time.Second)}, "", "", auth.ErrTokenExpired},
		{"another device's key", registry.Credential{DeviceID: "dev1", SAS: sign("dev1", off.PrimaryKey, time.Hour)}, "", "", auth.ErrBadSignature},
		{"token for another device", registry.Credential{DeviceID: "dev1", SAS: sign("off", sasDev.PrimaryKey, time.Hour)}, "", "", auth.ErrWrongDevice},
		{"malformed token", registry.Credential{DeviceID: "dev1", SAS: "SharedAccessSignature sr=x"}, "", "", auth.ErrMalformedToken},
		{"unknown device, SAS", registry.Credential{DeviceID: "ghost", SAS: sign("ghost", sasDev.PrimaryKey, time.Hour)}, "", "", storage.ErrNotFound},
		{"disabled device, valid token", registry.Credential{DeviceID: "off", SAS: sign("off", off.PrimaryKey, time.Hour)}, "", "", registry.ErrDisabled},
		{"disabled device, wrong key: not told", registry.Credential{DeviceID: "off", SAS: sign("off", sasDev.PrimaryKey, time.Hour)}, "", "", auth.ErrBadSignature},
		{"secondary thumbprint", registry.Credential{DeviceID: "cam", Chain: own.Chain()}, auth.AuthX509Secondary, auth.Thumbprint(own.Cert), nil},
		{"CA-issued certificate", registry.Credential{DeviceID: "ca-dev", Chain: issued.Chain()}, auth.AuthX509CA, auth.Thumbprint(root.Cert), nil},
		{"unregistered certificate", registry.Credential{DeviceID: "cam", Chain: certstest.SelfSigned(t, "cam").Chain()}, "", "", auth.ErrCertificateRefused},
		{"certificate of a SAS device", registry.Credential{DeviceID: "dev1", Chain: own.Chain()}, "", "", auth.ErrCertificateRefused},
		{"unknown device, certificate", registry.Credential{DeviceID: "ghost", Chain: own.Chain()}, "", "", auth.ErrCertificateRefused},
		{"no credential at all", registry.Credential{DeviceID: "cam", Chain: []*x509.Certificate{}}, "", "", auth.ErrCertificateRefused},
		{"SAS token of an X.509 device", registry.Credential{DeviceID: "cam", SAS: sign("cam", sasDev.PrimaryKey, time.Hour)}, "", "", auth.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.reg.Authenticate(ctx, tt.cred, now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Device.DeviceID != tt.cred.DeviceID || got.Method != tt.wantMethod || got.Credential != tt.wantCred || got.Expires.IsZero() {
				t.Errorf("identity %s %s %s expires %s; want %s %s %s", got.Device.DeviceID, got.Method, got.Credential, got.Expires, tt.cred.DeviceID, tt.wantMethod, tt.wantCred)
			}
		})
	}
}

// TestAuthenticateHostnames: with host names configured, a token must name one.
func TestAuthenticateHostnames(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	reg := registry.New(registry.Config{Store: f.db, Audit: f.db, Hostnames: []string{"hub.example"}})
	dev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]error{"hub.example:8443": nil, "evil.example": auth.ErrWrongHost} {
		tok, err := auth.SignSAS(host+"/devices/dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Authenticate(ctx, registry.Credential{DeviceID: "dev1", SAS: tok}, time.Now()); !errors.Is(err, want) {
			t.Errorf("token for %s: %v, want %v", host, err, want)
		}
	}
}

// TestCredentialCache: a device's credentials are read at most once a
// second, but a change made through the registry takes effect at once;
// one made elsewhere (the CLI, another process) once the entry is a second
// old.
func TestCredentialCache(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.SignSAS("hub/devices/dev1", dev.PrimaryKey, f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	try := func() error {
		_, err := f.reg.Authenticate(ctx, registry.Credential{DeviceID: "dev1", SAS: tok}, f.clock.Now())
		return err
	}
	if err := try(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.SetEnabled(ctx, "cli", "dev1", false); err != nil {
		t.Fatal(err)
	}
	if err := try(); !errors.Is(err, registry.ErrDisabled) {
		t.Fatalf("after disabling through the registry: %v, want ErrDisabled at once", err)
	}
	on := true
	if _, err := f.db.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Enabled: &on}); err != nil { // behind the registry's back
		t.Fatal(err)
	}
	if err := try(); !errors.Is(err, registry.ErrDisabled) {
		t.Errorf("within a second of a change elsewhere: %v, want the cached ErrDisabled", err)
	}
	f.clock.Advance(time.Second)
	if err := try(); err != nil {
		t.Errorf("a second later: %v, want the device enabled again", err)
	}
}

// TestCredentialCacheRemembersVerifiedToken: the token that verified is
// admitted again without HMAC only while it is the same token, unexpired,
// for the same keys; anything else is verified in full.
func TestCredentialCacheRemembersVerifiedToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	expiry := f.clock.Now().Truncate(time.Second).Add(time.Hour)
	sign := func(key string) string {
		tok, err := auth.SignSAS("hub/devices/dev1", key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(dev.PrimaryKey)
	try := func(tok string) (registry.Identity, error) {
		return f.reg.Authenticate(ctx, registry.Credential{DeviceID: "dev1", SAS: tok}, f.clock.Now())
	}
	for range 2 { // verified, then remembered
		who, err := try(good)
		if err != nil || who.Method != auth.AuthSASPrimary || !who.Expires.Equal(expiry) || who.Device.DeviceID != "dev1" {
			t.Fatalf("valid token: %+v, %v", who, err)
		}
	}
	// Same length, one character of the signature changed.
	forged := []byte(good)
	i := strings.Index(good, "sig=") + 4
	forged[i] = map[bool]byte{true: 'A', false: 'B'}[forged[i] != 'A']
	if _, err := try(string(forged)); !errors.Is(err, auth.ErrBadSignature) {
		t.Errorf("forged token while a valid one is remembered: %v, want ErrBadSignature", err)
	}
	if _, err := try(sign(dev.SecondaryKey)); err != nil {
		t.Errorf("a new token beside the remembered one: %v", err)
	}

	// Keys rotated behind the registry's back: the remembered token is
	// admitted for the entry's second (as any cached credential), not after.
	if _, err := f.db.RotateDeviceKey(ctx, "dev1", "primary"); err != nil {
		t.Fatal(err)
	}
	if _, err := try(good); err != nil {
		t.Errorf("within a second of a rotation elsewhere: %v, want the cached admission", err)
	}
	f.clock.Advance(time.Second)
	if _, err := try(good); !errors.Is(err, auth.ErrBadSignature) {
		t.Errorf("a second after a rotation elsewhere: %v, want ErrBadSignature", err)
	}
}

// TestRememberedTokenExpires: a remembered token is refused once it
// expires, even while its device's entry is fresh.
func TestRememberedTokenExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	// The clock half a second before a whole second: the entry read now is
	// still fresh when the token expires.
	f.clock.Advance(f.clock.Now().Truncate(time.Second).Add(1500 * time.Millisecond).Sub(f.clock.Now()))
	expiry := f.clock.Now().Add(500 * time.Millisecond)
	tok, err := auth.SignSAS("hub/devices/dev1", dev.PrimaryKey, expiry)
	if err != nil {
		t.Fatal(err)
	}
	try := func() error {
		_, err := f.reg.Authenticate(ctx, registry.Credential{DeviceID: "dev1", SAS: tok}, f.clock.Now())
		return err
	}
	if err := try(); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(500 * time.Millisecond)
	if err := try(); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("at expiry, entry fresh: %v, want ErrTokenExpired", err)
	}
}

// countingStore is the real store, counting the device rows read.
type countingStore struct {
	*db.DB
	reads atomic.Int64
}

func (s *countingStore) Device(ctx context.Context, deviceID string) (db.Device, error) {
	s.reads.Add(1)
	return s.DB.Device(ctx, deviceID)
}

// TestCredentialCacheKeepsEntriesWhileCredentialsStandStill: past its
// second, an entry is used without reading its row again while the store's
// credentials version has not moved; a change made behind the registry's
// back moves it, and the entry is read again within the second as before.
func TestCredentialCacheKeepsEntriesWhileCredentialsStandStill(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	store := &countingStore{DB: f.db}
	reg := registry.New(registry.Config{Store: store, Audit: f.db, Now: f.clock.Now})
	dev, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev2"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.SignSAS("hub/devices/dev1", dev.PrimaryKey, f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	try := func() error {
		_, err := reg.Authenticate(ctx, registry.Credential{DeviceID: "dev1", SAS: tok}, f.clock.Now())
		return err
	}
	if err := try(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.clock.Advance(1500 * time.Millisecond)
		// What does not authenticate a device moves nothing.
		if _, err := f.db.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Name: ptr("renamed")}); err != nil {
			t.Fatal(err)
		}
		if err := try(); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.reads.Load(); n != 1 {
		t.Errorf("device row read %d times in 4.5 s without a credential change, want once", n)
	}
	// Another device's change behind the registry's back: every entry is
	// read again once, after the second.
	if _, err := f.db.RotateDeviceKey(ctx, other.DeviceID, "primary"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := try(); err != nil || store.reads.Load() != 2 {
		t.Errorf("after a change elsewhere: %v, %d row reads; want admitted after a second read", err, store.reads.Load())
	}
	// This device disabled behind the registry's back: refused after the second.
	off := false
	if _, err := f.db.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := try(); !errors.Is(err, registry.ErrDisabled) {
		t.Errorf("a second after disabling elsewhere: %v, want ErrDisabled", err)
	}
	// Deleted behind the registry's back: unknown after the second.
	if err := f.db.DeleteDevice(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := try(); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a second after deleting elsewhere: %v, want ErrNotFound", err)
	}
}

func ptr[T any](v T) *T { return &v }
