package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/registry"
)

func TestAPIDeviceAuthentication(t *testing.T) {
	h := newTestHub(t)
	admin, viewer := h.tokens[db.RoleAdmin], h.tokens[db.RoleViewer]
	cert := certstest.SelfSigned(t, "self")
	tp := auth.Thumbprint(cert.Cert)
	colons := strings.ToLower(strings.Join(splitPairs(tp), ":"))
	sha1 := strings.Repeat("0a", 20)

	// Created with Azure's registry JSON; thumbprints as people paste them.
	got, body := h.do(req{method: "POST", path: "/api/v1/devices", bearer: admin,
		body: `{"id":"self","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + colons + `","secondaryThumbprint":"` + sha1 + `"}}}`})
	if got != 201 {
		t.Fatalf("create selfSigned = %d %v", got, body)
	}
	wantAuth := map[string]any{"type": "selfSigned", "x509Thumbprint": map[string]any{"primaryThumbprint": tp, "secondaryThumbprint": strings.ToUpper(sha1)}}
	if !jsonEqual(body["authentication"], wantAuth) {
		t.Errorf("authentication = %v, want %v", body["authentication"], wantAuth)
	}
	if _, ok := body["primaryKey"]; ok || body["connectionString"] != "HostName=hub.test:8443;DeviceId=self;x509=true" {
		t.Errorf("X.509 device: keys %v, connection string %v; want no keys and the x509=true string", body["primaryKey"], body["connectionString"])
	}

	got, body = h.do(req{method: "POST", path: "/api/v1/devices", bearer: admin, body: `{"id":"ca-dev","authentication":{"type":"certificateAuthority"}}`})
	if got != 201 || !jsonEqual(body["authentication"], map[string]any{"type": "certificateAuthority"}) {
		t.Fatalf("create certificateAuthority = %d %v", got, body)
	}
	got, body = h.do(req{method: "POST", path: "/api/v1/devices", bearer: admin, body: `{"id":"sas-dev"}`})
	if got != 201 || !jsonEqual(body["authentication"], map[string]any{"type": "sas"}) || body["primaryKey"] == "" {
		t.Fatalf("create with keys = %d %v", got, body)
	}

	for _, tt := range []struct {
		name, body string
		want       int
		wantMsg    string
	}{
		{"bad thumbprint", `{"id":"x","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abc"}}}`, 422, "SHA-256 (64 hex digits)"},
		{"no thumbprint", `{"id":"x","authentication":{"type":"selfSigned"}}`, 422, "primaryThumbprint"},
		{"unknown type", `{"id":"x","authentication":{"type":"x509"}}`, 422, "use sas, selfSigned or certificateAuthority"},
		{"thumbprint for sas", `{"id":"x","authentication":{"type":"sas","x509Thumbprint":{"primaryThumbprint":"` + tp + `"}}}`, 422, "selfSigned"},
		{"flat thumbprint", `{"id":"x","authentication":{"type":"selfSigned","primaryThumbprint":"` + tp + `"}}`, 400, "primaryThumbprint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, body := h.do(req{method: "POST", path: "/api/v1/devices", bearer: admin, body: tt.body})
			if msg, _ := body["error"].(string); got != tt.want || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got %d %q, want %d mentioning %q", got, msg, tt.want, tt.wantMsg)
			}
		})
	}

	// Viewers see how a device authenticates, never keys.
	got, body = h.do(req{method: "GET", path: "/api/v1/devices/self", bearer: viewer})
	if got != 200 || !jsonEqual(body["authentication"], wantAuth) || body["connectionString"] != nil {
		t.Errorf("viewer GET = %d %v", got, body)
	}

	// Switching to X.509 drops the keys; back to SAS gives fresh ones.
	got, body = h.do(req{method: "PATCH", path: "/api/v1/devices/sas-dev", bearer: admin, body: `{"authentication":{"type":"certificateAuthority"}}`})
	if _, hasKey := body["primaryKey"]; got != 200 || hasKey {
		t.Fatalf("PATCH to certificateAuthority = %d %v", got, body)
	}
	if got, body := h.do(req{method: "POST", path: "/api/v1/devices/sas-dev/keys/rotate", bearer: admin}); got != 422 {
		t.Errorf("rotate the key of an X.509 device = %d %v, want 422", got, body)
	}
	got, body = h.do(req{method: "PATCH", path: "/api/v1/devices/sas-dev", bearer: admin, body: `{"authentication":{"type":"sas"}}`})
	if cs, _ := body["connectionString"].(string); got != 200 || !strings.Contains(cs, "SharedAccessKey=") {
		t.Fatalf("PATCH back to sas = %d %v", got, body)
	}
	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "sas-dev", Action: "device.set-authentication"})
	if err != nil || len(entries) != 2 || entries[0].Detail != "authentication: sas" {
		t.Errorf("audit = %+v, %v; want two device.set-authentication entries", entries, err)
	}
}

// splitPairs cuts hex into two-digit groups, as openssl prints fingerprints.
func splitPairs(s string) []string {
	var out []string
	for i := 0; i+2 <= len(s); i += 2 {
		out = append(out, s[i:i+2])
	}
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestAuthenticationChangeTakesEffectAtOnce: a thumbprint replaced or a CA
// removed through the API refuses the old certificate on the very next
// request (no cache delay), and the MQTT connections are re-checked.
func TestAuthenticationChangeTakesEffectAtOnce(t *testing.T) {
	conns := &testkit.Sessions{}
	h := newX509HubWith(t, func(c *handlers.Config) {
		c.Devices = registry.New(registry.Config{Store: c.Store.(*db.DB), Audit: c.Store, Sessions: conns})
	})
	admin := auth.NewAPIToken()
	if _, err := h.db.CreateAPIToken(context.Background(), "admin", db.RoleAdmin, admin); err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string) int {
		t.Helper()
		r, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+admin)
		r.Header.Set("Content-Type", "application/json")
		return h.send(r).status
	}
	old, replacement := certstest.SelfSigned(t, "self"), certstest.SelfSigned(t, "self")
	root := certstest.NewCA(t, "Fleet Root")
	h.addX509Device("self", db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: auth.Thumbprint(old.Cert)})
	h.addX509Device("ca-dev", db.Authentication{Type: auth.AuthCertificateAuthority})
	caBody, _ := json.Marshal(map[string]string{"name": "fleet", "certificate": string(root.PEM())})
	if got := api("POST", "/api/v1/cas", string(caBody)); got != 201 {
		t.Fatalf("add CA = %d", got)
	}
	caCert := root.Issue(t, "ca-dev")
	if r := h.postAs("self", old, ""); r.status != 204 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	if r := h.postAs("ca-dev", caCert, ""); r.status != 204 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}

	if got := api("PATCH", "/api/v1/devices/self", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+auth.Thumbprint(replacement.Cert)+`"}}}`); got != 200 {
		t.Fatalf("replace thumbprint = %d", got)
	}
	if r := h.postAs("self", old, ""); r.status != 401 {
		t.Errorf("old certificate right after the change: %d, want 401", r.status)
	}
	if r := h.postAs("self", replacement, ""); r.status != 204 {
		t.Errorf("new certificate: %d, want 204", r.status)
	}
	if got := api("DELETE", "/api/v1/cas/fleet", ""); got != 204 {
		t.Fatalf("remove CA = %d", got)
	}
	if r := h.postAs("ca-dev", caCert, ""); r.status != 401 {
		t.Errorf("CA-issued certificate right after removing the CA: %d, want 401", r.status)
	}
	if devices, all := conns.Checked(); !contains(devices, "self") || all != 1 {
		t.Errorf("re-checked devices %v and all connections %d times; want self, and all once", devices, all)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestAPICAs(t *testing.T) {
	h := newTestHub(t)
	admin, viewer := h.tokens[db.RoleAdmin], h.tokens[db.RoleViewer]
	root := certstest.NewCA(t, "Fleet Root")
	add := func(name, pem string) string {
		b, _ := json.Marshal(map[string]string{"name": name, "certificate": pem})
		return string(b)
	}
	if got, body := h.do(req{method: "GET", path: "/api/v1/cas", bearer: viewer}); got != 200 || !jsonEqual(body["cas"], []any{}) {
		t.Fatalf("empty list = %d %v", got, body)
	}
	got, body := h.do(req{method: "POST", path: "/api/v1/cas", bearer: admin, body: add("fleet", string(root.PEM()))})
	if got != 201 || body["name"] != "fleet" || body["subject"] != "CN=Fleet Root" || body["thumbprint"] != auth.Thumbprint(root.Cert) || body["notAfter"] == nil {
		t.Fatalf("add = %d %v", got, body)
	}
	for _, tt := range []struct {
		name, body string
		role       string
		want       int
		wantMsg    string
	}{
		{"viewer", add("v", string(certstest.NewCA(t, "V").PEM())), db.RoleViewer, 403, ""},
		{"operator", add("o", string(certstest.NewCA(t, "O").PEM())), db.RoleOperator, 403, ""},
		{"not PEM", add("x", "hello"), db.RoleAdmin, 422, "not PEM"},
		{"not a CA", add("x", string(root.Issue(t, "dev1").PEM())), db.RoleAdmin, 422, "not a CA certificate"},
		{"same name", add("fleet", string(certstest.NewCA(t, "Other").PEM())), db.RoleAdmin, 409, "already exists"},
		{"same certificate", add("again", string(root.PEM())), db.RoleAdmin, 422, `already registered as "fleet"`},
		{"bad name", add("a/b", string(certstest.NewCA(t, "N").PEM())), db.RoleAdmin, 422, "allowed are"},
		{"unknown field", `{"name":"x","pem":"y"}`, db.RoleAdmin, 400, "pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, body := h.do(req{method: "POST", path: "/api/v1/cas", bearer: h.tokens[tt.role], body: tt.body})
			if msg, _ := body["error"].(string); got != tt.want || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got %d %q, want %d mentioning %q", got, msg, tt.want, tt.wantMsg)
			}
		})
	}
	got, body = h.do(req{method: "GET", path: "/api/v1/cas", bearer: viewer})
	if list, _ := body["cas"].([]any); got != 200 || len(list) != 1 {
		t.Fatalf("list = %d %v", got, body)
	}
	if got, _ := h.do(req{method: "DELETE", path: "/api/v1/cas/fleet", bearer: viewer}); got != 403 {
		t.Errorf("viewer delete = %d, want 403", got)
	}
	if got, _ := h.do(req{method: "DELETE", path: "/api/v1/cas/fleet", bearer: admin}); got != 204 {
		t.Errorf("delete = %d, want 204", got)
	}
	if got, body := h.do(req{method: "DELETE", path: "/api/v1/cas/fleet", bearer: admin}); got != 404 || body["error"] != `CA "fleet": not found` {
		t.Errorf("delete again = %d %v, want 404 naming the CA", got, body)
	}
	for _, action := range []string{"ca.add", "ca.remove"} {
		if entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Target: "fleet", Action: action}); err != nil || len(entries) != 1 {
			t.Errorf("audit %s = %+v, %v; want one entry", action, entries, err)
		}
	}
}
