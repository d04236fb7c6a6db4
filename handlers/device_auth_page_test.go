package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"fieldhub/auth"
	"fieldhub/db"
)

// TestDeviceAuthenticationForm: the device page shows how a device
// authenticates, and admins change it there.
func TestDeviceAuthenticationForm(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	h.addUser("alice", db.RoleAdmin, "correct-horse")
	h.addUser("vic", db.RoleViewer, "password-vic")
	h.addDevice("cam")
	b := h.browser()
	b.login("alice", "correct-horse")
	token := b.csrf("/devices")
	ctx := context.Background()
	post := func(kv ...string) page {
		form := url.Values{"_csrf": {token}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return b.post("/devices/cam/authentication", form)
	}
	page := b.get("/devices/cam").body
	for _, want := range []string{`data-testid="device-auth"`, "SAS keys", `data-testid="rotate-primary"`, `value="sas" selected`} {
		if !strings.Contains(page, want) {
			t.Errorf("SAS device page lacks %q", want)
		}
	}

	tp := strings.Repeat("ab", 32)
	if got := b.flashOf(post("type", "selfSigned", "primaryThumbprint", " "+tp+" ", "secondaryThumbprint", "")); !strings.Contains(got, "success: Authentication saved: the device now presents its X.509 certificate") {
		t.Errorf("flash = %q", got)
	}
	d, err := h.db.Device(ctx, "cam")
	if err != nil || d.Auth != (db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: strings.ToUpper(tp)}) || d.PrimaryKey != "" {
		t.Fatalf("after saving: %+v, %v", d, err)
	}
	page = b.get("/devices/cam").body
	for _, want := range []string{"X.509, self-signed certificate", strings.ToUpper(tp), `value="selfSigned" selected`} {
		if !strings.Contains(page, want) {
			t.Errorf("self-signed device page lacks %q", want)
		}
	}
	if strings.Contains(page, `data-testid="rotate-primary"`) {
		t.Error("an X.509 device's page offers to rotate keys")
	}
	if cs := b.get("/devices/cam/connection-string").body; !strings.Contains(cs, "HostName=hub.test:8443;DeviceId=cam;x509=true") {
		t.Errorf("connection string partial = %s", cs)
	}

	// Mistakes come back as a notice and change nothing.
	for _, tt := range []struct {
		kv   []string
		want string
	}{
		{[]string{"type", "selfSigned", "primaryThumbprint", "xyz"}, "error: primary thumbprint"},
		{[]string{"type", "selfSigned"}, "error: a selfSigned device needs the thumbprint"},
		{[]string{"type", "x509"}, "error: unknown authentication type"},
	} {
		if got := b.flashOf(post(tt.kv...)); !strings.Contains(got, tt.want) {
			t.Errorf("%v: flash = %q, want %q", tt.kv, got, tt.want)
		}
	}
	if after, _ := h.db.Device(ctx, "cam"); after.Auth != d.Auth {
		t.Errorf("a refused form changed the authentication: %+v", after.Auth)
	}

	// Thumbprints sent along with another type are ignored (the form always carries them).
	b.flashOf(post("type", "certificateAuthority", "primaryThumbprint", tp))
	if d, _ = h.db.Device(ctx, "cam"); d.Auth != (db.Authentication{Type: auth.AuthCertificateAuthority}) {
		t.Errorf("after switching to CA: %+v", d.Auth)
	}
	b.flashOf(post("type", "sas"))
	if d, _ = h.db.Device(ctx, "cam"); d.Auth.Type != auth.AuthSAS || d.PrimaryKey == "" {
		t.Errorf("back to SAS: %+v", d)
	}
	if entries, _ := h.db.AuditEntries(ctx, db.AuditFilter{Target: "cam", Action: "device.set-authentication"}); len(entries) != 3 {
		t.Errorf("audit has %d device.set-authentication entries, want 3", len(entries))
	}

	// Viewers see the type, not the form.
	v := h.browser()
	v.login("vic", "password-vic")
	page = v.get("/devices/cam").body
	if !strings.Contains(page, "SAS keys") || strings.Contains(page, `data-testid="auth-form"`) {
		t.Error("viewer: want the authentication type without the form")
	}
}
