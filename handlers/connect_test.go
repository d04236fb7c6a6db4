package handlers_test

import (
	"context"
	"html"
	"net/http"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/registry"
)

const testCAPEM = "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n"

// TestConnectPanel: the device page shows how to connect per transport
// to everyone, keys as placeholders; an admin fills the key in (audited);
// the CA certificate downloads.
func TestConnectPanel(t *testing.T) {
	h := newPageHub(t, func(c *handlers.Config) {
		c.DeviceEndpoints = registry.Endpoints{Host: "hub.test", MQTTPort: 8883, HTTPSPort: 8443, WebSocket: true}
		c.DeviceCA = []byte(testCAPEM)
	})
	d := h.addDevice("d1")
	h.addUser("ann", db.RoleAdmin, "password-ann")
	h.addUser("vic", db.RoleViewer, "password-vic")

	viewer := h.browser()
	viewer.login("vic", "password-vic")
	p := viewer.get("/devices/d1")
	for _, want := range []string{
		`data-testid="connect-panel"`,
		`data-testid="connect-mqtt" data-works="works"`,
		`data-testid="connect-mqtt-ws" data-works="needs-change"`,
		`data-testid="connect-https" data-works="needs-change"`,
		"HostName=hub.test;DeviceId=d1;SharedAccessKey=&lt;device-key&gt;",
		`href="/device-ca.pem"`,
		"An admin can see them.",
		"serve --device-addr :443",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("viewer's device page lacks %q", want)
		}
	}
	for _, secret := range []string{d.PrimaryKey, d.SecondaryKey, `data-testid="connect-reveal"`} {
		if strings.Contains(p.body, secret) {
			t.Errorf("viewer's device page holds %q", secret)
		}
	}
	if got := viewer.get("/devices/d1/connect").status; got != http.StatusForbidden {
		t.Errorf("viewer GET /devices/d1/connect = %d, want 403", got)
	}
	ca := viewer.get("/device-ca.pem")
	if ca.status != http.StatusOK || ca.body != testCAPEM || !strings.Contains(ca.header.Get("Content-Disposition"), "fieldhub-ca.pem") {
		t.Errorf("GET /device-ca.pem = %d %q (%s)", ca.status, ca.body, ca.header.Get("Content-Disposition"))
	}
	if got := h.browser().get("/device-ca.pem").status; got != http.StatusSeeOther && got != http.StatusUnauthorized {
		t.Errorf("GET /device-ca.pem signed out = %d, want a redirect to the login or 401", got)
	}

	admin := h.browser()
	admin.login("ann", "password-ann")
	if p := admin.get("/devices/d1"); !strings.Contains(p.body, `hx-get="/devices/d1/connect"`) || strings.Contains(p.body, d.PrimaryKey) {
		t.Errorf("admin's device page: reveal button missing or key shown before it is asked for")
	}
	if n := audits(t, h, "user:ann"); n != 0 {
		t.Errorf("viewing the page made %d audit entries", n)
	}
	body := admin.get("/devices/d1/connect")
	if body.status != http.StatusOK || body.header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /devices/d1/connect = %d, Cache-Control %q", body.status, body.header.Get("Cache-Control"))
	}
	text := html.UnescapeString(body.body)
	for _, want := range []string{"HostName=hub.test;DeviceId=d1;SharedAccessKey=" + d.PrimaryKey, "SharedAccessSignature sr=hub.test%2Fdevices%2Fd1", `data-testid="connect-secret-warning"`} {
		if !strings.Contains(text, want) {
			t.Errorf("revealed panel lacks %q", want)
		}
	}
	if strings.Contains(text, registry.KeyPlaceholder) || strings.Contains(text, "connect-reveal") {
		t.Error("revealed panel still has a placeholder or the reveal button")
	}
	if n := audits(t, h, "user:ann"); n != 1 {
		t.Errorf("revealing made %d audit entries, want 1", n)
	}
}

// TestConnectPanelWithoutCA: a hub whose certificate chains to a CA devices
// already trust offers no download, and says so.
func TestConnectPanelWithoutCA(t *testing.T) {
	h := newPageHub(t, func(c *handlers.Config) {
		c.DeviceEndpoints = registry.Endpoints{Host: "hub.test", HTTPSPort: 443}
	})
	h.addDevice("d1")
	h.addUser("vic", db.RoleViewer, "password-vic")
	b := h.browser()
	b.login("vic", "password-vic")
	p := b.get("/devices/d1")
	for _, want := range []string{"a CA your devices already trust", `data-testid="connect-https" data-works="works"`, `data-testid="connect-mqtt" data-works="off"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	if got := b.get("/device-ca.pem").status; got != http.StatusNotFound {
		t.Errorf("GET /device-ca.pem without a CA = %d, want 404", got)
	}
}

func audits(t *testing.T, h *pageHub, actor string) int {
	t.Helper()
	es, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Actor: actor, Action: registry.ActionShowConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}
