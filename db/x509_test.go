package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/storage"
)

func TestDeviceAuthentication(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
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

func TestCertificateAuthorities(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
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
