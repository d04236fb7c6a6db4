package handlers_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/telemetry"
)

// x509Hub serves the device router over real TLS that asks for (and does not
// require) client certificates, as serve does.
type x509Hub struct {
	*ingestHub
	devSrv *httptest.Server
}

func newX509Hub(t *testing.T) *x509Hub {
	t.Helper()
	return newX509HubWith(t, nil)
}

func newX509HubWith(t *testing.T, configure func(*handlers.Config)) *x509Hub {
	t.Helper()
	h := newIngestHub(t, configure)
	srv := httptest.NewUnstartedServer(h.server.DeviceRouter())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &x509Hub{ingestHub: h, devSrv: srv}
}

// postAs sends one telemetry message presenting cert (nil: none) and the
// Authorization header authz (empty: none), on a fresh TLS connection.
func (h *x509Hub) postAs(deviceID string, cert *certstest.Cert, authz string) result {
	h.t.Helper()
	tlsCfg := &tls.Config{RootCAs: x509.NewCertPool()}
	tlsCfg.RootCAs.AddCert(h.devSrv.Certificate())
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{cert.TLS}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest("POST", h.devSrv.URL+"/devices/"+deviceID+"/messages/events?api-version=2021-04-12", strings.NewReader(`{"t":1}`))
	if err != nil {
		h.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func (h *x509Hub) addX509Device(id string, a db.Authentication) db.Device {
	h.t.Helper()
	dev, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id, Auth: a})
	if err != nil {
		h.t.Fatal(err)
	}
	return dev
}

// TestDeviceX509Authentication: devices prove themselves with client
// certificates over HTTPS, self-signed (registered thumbprints) or issued by
// a registered CA; every wrong certificate gets a bare 401 and nothing is
// stored; SAS devices keep working on the same listener.
func TestDeviceX509Authentication(t *testing.T) {
	h := newX509Hub(t)
	ctx := context.Background()
	now := time.Now()
	primary, secondary := certstest.SelfSigned(t, "self"), certstest.SelfSigned(t, "self")
	root := certstest.NewCA(t, "Fleet Root")
	issuing := root.Intermediate(t, "Fleet Issuing")
	foreign := certstest.NewCA(t, "Foreign Root")
	if _, err := h.db.AddCertificateAuthority(ctx, "fleet", root.PEM()); err != nil {
		t.Fatal(err)
	}
	h.addX509Device("self", db.Authentication{Type: auth.AuthSelfSigned,
		PrimaryThumbprint: strings.ToLower(auth.Thumbprint(primary.Cert)), SecondaryThumbprint: auth.Thumbprint(secondary.Cert)})
	h.addX509Device("ca-dev", db.Authentication{Type: auth.AuthCertificateAuthority})
	h.addX509Device("off", db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: auth.Thumbprint(primary.Cert)})
	if _, err := h.db.UpdateDevice(ctx, "off", db.DeviceUpdate{Enabled: new(bool)}); err != nil {
		t.Fatal(err)
	}
	sasDev := h.addDevice("sas-dev")
	other := h.addDevice("other")
	hour := now.Add(time.Hour)

	tests := []struct {
		name       string
		device     string
		cert       *certstest.Cert
		authz      string
		wantStatus int
		wantMethod string // auth method stored on success
	}{
		{"primary thumbprint", "self", primary, "", 204, auth.AuthX509Primary},
		{"secondary thumbprint", "self", secondary, "", 204, auth.AuthX509Secondary},
		{"CA-issued through an intermediate", "ca-dev", issuing.Issue(t, "ca-dev"), "", 204, auth.AuthX509CA},
		{"CA-issued by the root", "ca-dev", root.Issue(t, "ca-dev"), "", 204, auth.AuthX509CA},
		{"SAS device with a certificate and its token", "sas-dev", primary, token(t, "sas-dev", sasDev.PrimaryKey, hour), 204, "sas-primary"},
		{"unregistered self-signed certificate", "self", certstest.SelfSigned(t, "self"), "", 401, ""},
		{"expired certificate", "self", certstest.SelfSigned(t, "self", certstest.Valid(now.Add(-48*time.Hour), now.Add(-time.Hour))), "", 401, ""},
		{"certificate of a foreign CA", "ca-dev", foreign.Issue(t, "ca-dev"), "", 401, ""},
		{"CA-issued for another device", "ca-dev", root.Issue(t, "self"), "", 401, ""},
		{"self-signed certificate for a CA device", "ca-dev", primary, "", 401, ""},
		{"SAS device with a certificate only", "sas-dev", primary, "", 401, ""},
		{"unknown device", "ghost", primary, "", 401, ""},
		{"X.509 device with a SAS token", "self", nil, token(t, "self", other.PrimaryKey, hour), 401, ""},
		{"X.509 device without its certificate", "self", nil, "", 401, ""},
		{"disabled X.509 device", "off", primary, "", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := func() []telemetry.Message {
				msgs, err := h.tel.Messages(ctx, tt.device, telemetry.MessageFilter{Limit: 100})
				if err != nil && tt.device != "ghost" {
					t.Fatal(err)
				}
				return msgs
			}
			before := len(stored())
			r := h.postAs(tt.device, tt.cert, tt.authz)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			msgs := stored()
			if tt.wantMethod == "" {
				if len(msgs) != before {
					t.Error("a refused request stored a message")
				}
				return
			}
			if len(msgs) != before+1 || msgs[0].AuthMethod != tt.wantMethod {
				t.Errorf("stored %+v, want one more message with auth method %s", msgs, tt.wantMethod)
			}
		})
	}

	// A refused certificate learns nothing: the same bare answer whatever was wrong.
	for _, c := range []struct {
		device string
		cert   *certstest.Cert
	}{{"ghost", primary}, {"self", foreign.Issue(t, "self")}, {"sas-dev", primary}, {"ca-dev", foreign.Issue(t, "ca-dev")}} {
		r := h.postAs(c.device, c.cert, "")
		if got := strings.TrimSpace(string(r.body)); r.status != 401 || got != `{"error":"unauthorized"}` {
			t.Errorf("%s: %d %s, want 401 {\"error\":\"unauthorized\"}", c.device, r.status, got)
		}
	}
}
