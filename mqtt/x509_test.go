package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
	"fieldhub/db"
	"fieldhub/internal/testkit"
)

// x509Devices registers a self-signed and a CA-issued device and returns
// their certificates.
type x509Devices struct {
	primary, secondary *certstest.Cert // of "self"
	root, issuing      *certstest.Cert // CA "fleet" and an intermediate below it
	caDev              *certstest.Cert // of "ca-dev", issued by issuing
}

func (h *testHub) x509Devices() x509Devices {
	h.t.Helper()
	ctx := context.Background()
	var x x509Devices
	x.primary, x.secondary = certstest.SelfSigned(h.t, "self"), certstest.SelfSigned(h.t, "self")
	x.root = certstest.NewCA(h.t, "Fleet Root")
	x.issuing = x.root.Intermediate(h.t, "Fleet Issuing")
	x.caDev = x.issuing.Issue(h.t, "ca-dev")
	if _, err := h.db.AddCertificateAuthority(ctx, "fleet", x.root.PEM()); err != nil {
		h.t.Fatal(err)
	}
	for id, a := range map[string]db.Authentication{
		"self":   {Type: auth.AuthSelfSigned, PrimaryThumbprint: auth.Thumbprint(x.primary.Cert), SecondaryThumbprint: auth.Thumbprint(x.secondary.Cert)},
		"ca-dev": {Type: auth.AuthCertificateAuthority},
	} {
		if _, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: id, Auth: a}); err != nil {
			h.t.Fatal(err)
		}
	}
	return x
}

// x509Options are the SDK's CONNECT for an X.509 device: no password.
func (h *testHub) x509Options(id string, cert *certstest.Cert) connectOptions {
	return connectOptions{
		clientID: id,
		username: h.host + "/" + id + "/?api-version=2021-04-12&DeviceClientType=test",
		cert:     &cert.TLS,
	}
}

func (h *testHub) connectX509(id string, cert *certstest.Cert) *testDevice {
	h.t.Helper()
	d, err := h.dial(h.x509Options(id, cert))
	if err != nil {
		h.t.Fatalf("connect %s with a certificate: %v", id, err)
	}
	testkit.WaitFor(h.t, "connection registered", func() bool { return h.broker.Connected(id) })
	return d
}

// TestX509Connect: X.509 devices connect with paho presenting their
// certificate and no password, and their messages are stored with the auth
// method that admitted them.
func TestX509Connect(t *testing.T) {
	h := newTestHub(t)
	x := h.x509Devices()
	tests := []struct {
		device     string
		cert       *certstest.Cert
		wantMethod string
	}{
		{"self", x.primary, auth.AuthX509Primary},
		{"self", x.secondary, auth.AuthX509Secondary},
		{"ca-dev", x.caDev, auth.AuthX509CA},
	}
	for _, tt := range tests {
		t.Run(tt.wantMethod, func(t *testing.T) {
			d := h.connectX509(tt.device, tt.cert)
			tok := d.publish(t, "devices/"+tt.device+"/messages/events/", 1, `{"t":1}`)
			if !tok.WaitTimeout(wait) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			msgs := h.stored(tt.device)
			if got := msgs[len(msgs)-1]; got.AuthMethod != tt.wantMethod {
				t.Errorf("stored with auth method %q, want %q", got.AuthMethod, tt.wantMethod)
			}
			d.client.Disconnect(100)
			testkit.WaitFor(t, "disconnected", func() bool { return !h.broker.Connected(tt.device) })
		})
	}
}

// TestX509Refused: every wrong certificate, and SAS and X.509 mixed up, gets
// CONNACK 5 and nothing else.
func TestX509Refused(t *testing.T) {
	h := newTestHub(t)
	x := h.x509Devices()
	sasDev := h.device("sas-dev")
	foreign := certstest.NewCA(t, "Foreign Root")
	now := time.Now()
	s := func(v string) *string { return &v }
	tests := []struct {
		name     string
		device   string
		cert     *certstest.Cert
		password *string
	}{
		{"unregistered self-signed certificate", "self", certstest.SelfSigned(t, "self"), nil},
		{"expired certificate", "self", certstest.SelfSigned(t, "self", certstest.Valid(now.Add(-48*time.Hour), now.Add(-time.Hour))), nil},
		{"certificate of a foreign CA", "ca-dev", foreign.Issue(t, "ca-dev"), nil},
		{"intermediate missing from the chain", "ca-dev", &certstest.Cert{TLS: tls.Certificate{Certificate: x.caDev.TLS.Certificate[:1], PrivateKey: x.caDev.Key}}, nil},
		{"CA-issued for another device", "ca-dev", x.issuing.Issue(t, "self"), nil},
		{"SAS device with a certificate only", "sas-dev", x.primary, nil},
		{"X.509 device without a certificate", "self", nil, nil},
		{"X.509 device with a SAS token", "self", x.primary, s(h.token(sasDev, 0, time.Hour))},
		{"unknown device", "ghost", x.primary, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: h.roots, ServerName: "localhost"}
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{tt.cert.TLS}
			}
			got, err := connackOver(t, func() (net.Conn, error) { return tls.Dial("tcp", h.broker.Addr(), cfg) }, rawConnect{
				clientID: tt.device, username: s(h.host + "/" + tt.device + "/?api-version=2021-04-12"), password: tt.password,
			})
			if err != nil || len(got) != 4 || got[3] != codeNotAuthorized {
				t.Fatalf("CONNACK % x, %v; want 20 02 00 05", got, err)
			}
		})
	}
	// The SAS device still connects with its token on the same listener.
	h.connect(sasDev)
}

// TestX509Revocation: changing a device's thumbprints, removing the CA its
// certificate chains to, or switching the device to another authentication
// type closes its connection — at once when handlers report the change,
// within the periodic check when the CLI made it.
func TestX509Revocation(t *testing.T) {
	ctx := context.Background()
	lastReason := func(t *testing.T, h *testHub, id, want string) {
		t.Helper()
		testkit.WaitFor(t, "disconnect recorded", func() bool {
			entries, err := h.db.AuditEntries(ctx, db.AuditFilter{Target: id, Action: ActionDisconnected})
			return err == nil && len(entries) > 0 && entries[0].Detail == want
		})
	}
	t.Run("thumbprint replaced", func(t *testing.T) {
		h := newTestHub(t, func(cfg *Config) { cfg.RecheckInterval = time.Hour })
		x := h.x509Devices()
		d1 := h.connectX509("self", x.primary)
		// The secondary stays registered: its connections stay.
		h.broker.CheckDevice("self")
		if _, err := h.db.UpdateDevice(ctx, "self", db.DeviceUpdate{Auth: &db.Authentication{Type: auth.AuthSelfSigned,
			PrimaryThumbprint: auth.Thumbprint(x.secondary.Cert)}}); err != nil {
			t.Fatal(err)
		}
		h.broker.CheckDevice("self")
		d1.waitLost(t)
		lastReason(t, h, "self", "certificate thumbprint no longer registered")
		d2 := h.connectX509("self", x.secondary)
		h.broker.CheckDevice("self")
		if !h.broker.Connected("self") {
			t.Fatal("connection with a registered thumbprint closed")
		}
		d2.client.Disconnect(0)
	})
	t.Run("CA removed", func(t *testing.T) {
		h := newTestHub(t, func(cfg *Config) { cfg.RecheckInterval = time.Hour })
		x := h.x509Devices()
		d := h.connectX509("ca-dev", x.caDev)
		self := h.connectX509("self", x.primary)
		h.broker.CheckAllDevices()
		if err := h.db.DeleteCertificateAuthority(ctx, "fleet"); err != nil {
			t.Fatal(err)
		}
		h.broker.CheckAllDevices()
		d.waitLost(t)
		lastReason(t, h, "ca-dev", "CA certificate removed")
		if !h.broker.Connected("self") {
			t.Error("removing a CA closed a self-signed device's connection")
		}
		self.client.Disconnect(0)
	})
	t.Run("CA removed by the CLI", func(t *testing.T) {
		h := newTestHub(t) // checks every 50 ms
		x := h.x509Devices()
		d := h.connectX509("ca-dev", x.caDev)
		if err := h.db.DeleteCertificateAuthority(ctx, "fleet"); err != nil {
			t.Fatal(err)
		}
		d.waitLost(t)
		lastReason(t, h, "ca-dev", "CA certificate removed")
	})
	t.Run("SAS device switched to X.509", func(t *testing.T) {
		h := newTestHub(t, func(cfg *Config) { cfg.RecheckInterval = time.Hour })
		d := h.connect(h.device("dev1"))
		if _, err := h.db.UpdateDevice(ctx, "dev1", db.DeviceUpdate{Auth: &db.Authentication{Type: auth.AuthCertificateAuthority}}); err != nil {
			t.Fatal(err)
		}
		h.broker.CheckDevice("dev1")
		d.waitLost(t)
		lastReason(t, h, "dev1", "authentication changed from sas to certificateAuthority")
	})
	t.Run("certificate expires", func(t *testing.T) {
		h := newTestHub(t)
		short := certstest.SelfSigned(t, "short", certstest.Valid(time.Now().Add(-time.Hour), time.Now().Add(2*time.Second)))
		if _, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: "short", Auth: db.Authentication{Type: auth.AuthSelfSigned,
			PrimaryThumbprint: auth.Thumbprint(short.Cert)}}); err != nil {
			t.Fatal(err)
		}
		d, err := h.dial(h.x509Options("short", short))
		if err != nil {
			t.Fatal(err)
		}
		d.waitLost(t)
		lastReason(t, h, "short", "certificate expired")
	})
}

// TestX509WebSocket: MQTT over WebSockets takes the client certificate of
// the HTTPS connection.
func TestX509WebSocket(t *testing.T) {
	h := newTestHub(t)
	x := h.x509Devices()
	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, h.broker.WebSocketHandler())
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{h.cert}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	h.url = "wss://" + srv.Listener.Addr().String() + WebSocketPath
	h.host = "localhost:" + srv.Listener.Addr().String()[strings.LastIndexByte(srv.Listener.Addr().String(), ':')+1:]

	d := h.connectX509("ca-dev", x.caDev)
	tok := d.publish(t, "devices/ca-dev/messages/events/", 1, `{"t":1}`)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish over websocket: %v", tok.Error())
	}
	if msgs := h.stored("ca-dev"); len(msgs) != 1 || msgs[0].AuthMethod != auth.AuthX509CA {
		t.Errorf("stored %+v, want one message with auth method %s", msgs, auth.AuthX509CA)
	}
	if _, err := h.dial(h.x509Options("self", certstest.SelfSigned(t, "self"))); err == nil {
		t.Error("an unregistered certificate connected over WebSockets")
	}
}
