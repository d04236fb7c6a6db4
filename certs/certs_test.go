package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func mustEnsure(t *testing.T, dir string, hosts []string, now time.Time) tls.Certificate {
	t.Helper()
	cert, err := Ensure(dir, hosts, now)
	if err != nil {
		t.Fatalf("Ensure(%v): %v", hosts, err)
	}
	return cert
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnsureCreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cert := mustEnsure(t, dir, []string{"hub.example.com", "10.1.2.3", "hub.local:8883", "[fd00::7]:8883"}, testNow)

	modes := map[string]os.FileMode{
		dir:                               0o700,
		filepath.Join(dir, CAKeyFile):     0o600,
		filepath.Join(dir, ServerKeyFile): 0o600,
		filepath.Join(dir, CAFile):        0o644,
		filepath.Join(dir, ServerFile):    0o644,
	}
	for path, want := range modes {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode got %o, want %o", path, got, want)
		}
	}

	leaf := cert.Leaf
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", "hub.example.com", "hub.local", host} {
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("DNS SANs %v: missing %q", leaf.DNSNames, name)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "fd00::7"} {
		if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("IP SANs %v: missing %s", leaf.IPAddresses, ip)
		}
	}
	if len(cert.Certificate) != 2 {
		t.Errorf("chain length: got %d, want 2 (server, CA)", len(cert.Certificate))
	}

	ca := loadCA(t, dir)
	if !ca.IsCA {
		t.Error("ca.pem: IsCA is false")
	}
	if got, want := ca.NotAfter.Sub(testNow), 10*365*24*time.Hour; got < want {
		t.Errorf("CA lifetime: got %v, want at least %v", got, want)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server certificate not signed by the CA: %v", err)
	}
}

func TestEnsureReuseAndReissue(t *testing.T) {
	tests := []struct {
		name        string
		hosts       []string
		after       time.Duration // since the first Ensure
		wantReissue bool
	}{
		{"same hosts", []string{"hub.example.com"}, 0, false},
		{"fewer hosts", nil, 24 * time.Hour, false},
		{"host name case and port differ", []string{"HUB.example.com:8883"}, 0, false},
		{"new host name", []string{"hub.example.com", "other.example.com"}, 0, true},
		{"new IP", []string{"192.168.1.10"}, 0, true},
		{"31 days before expiry", []string{"hub.example.com"}, serverLifetime - 31*24*time.Hour, false},
		{"29 days before expiry", []string{"hub.example.com"}, serverLifetime - 29*24*time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustEnsure(t, dir, []string{"hub.example.com"}, testNow)
			caPEM := readFile(t, filepath.Join(dir, CAFile))
			caKeyPEM := readFile(t, filepath.Join(dir, CAKeyFile))

			second := mustEnsure(t, dir, tt.hosts, testNow.Add(tt.after))

			if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) ||
				!bytes.Equal(readFile(t, filepath.Join(dir, CAKeyFile)), caKeyPEM) {
				t.Error("the CA changed; it must be kept")
			}
			reissued := first.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0
			if reissued != tt.wantReissue {
				t.Errorf("server certificate reissued: got %v, want %v", reissued, tt.wantReissue)
			}
			if err := second.Leaf.CheckSignatureFrom(loadCA(t, dir)); err != nil {
				t.Errorf("server certificate not signed by the kept CA: %v", err)
			}
			for _, h := range tt.hosts {
				if err := second.Leaf.VerifyHostname(hostOnly(h)); err != nil {
					t.Errorf("VerifyHostname(%q): %v", h, err)
				}
			}
		})
	}
}

func TestEnsureReplacesDamagedServerCert(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, nil, testNow)
	if err := os.WriteFile(filepath.Join(dir, ServerFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert := mustEnsure(t, dir, nil, testNow)
	if err := cert.Leaf.CheckSignatureFrom(loadCA(t, dir)); err != nil {
		t.Errorf("replacement not signed by the CA: %v", err)
	}
}

func TestEnsureRefusesDamagedCA(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string) error
	}{
		{"CA key missing", func(dir string) error { return os.Remove(filepath.Join(dir, CAKeyFile)) }},
		{"CA garbage", func(dir string) error { return os.WriteFile(filepath.Join(dir, CAFile), []byte("garbage"), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustEnsure(t, dir, nil, testNow)
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := Ensure(dir, nil, testNow); err == nil {
				t.Error("Ensure with a damaged CA: got nil error; replacing the CA silently would break every device")
			}
		})
	}
}

func TestEnsureRefusesExpiredCA(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, nil, testNow)
	if _, err := Ensure(dir, nil, testNow.Add(11*365*24*time.Hour)); err == nil {
		t.Error("Ensure after the CA expired: got nil error")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope-key.pem")); err == nil {
		t.Error("Load of missing files: got nil error")
	}
	mustEnsure(t, dir, nil, testNow)
	// The CA certificate with the server's key is a mismatched pair.
	if _, err := Load(filepath.Join(dir, CAFile), filepath.Join(dir, ServerKeyFile)); err == nil {
		t.Error("Load of a mismatched pair: got nil error")
	}
}

// TestTLSHandshake serves HTTPS with the ensured certificate and connects as a
// device would: trusting only ca.pem, by name and by IP.
func TestTLSHandshake(t *testing.T) {
	dir := t.TempDir()
	cert, err := Ensure(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(readFile(t, filepath.Join(dir, CAFile))) {
		t.Fatal("ca.pem holds no certificate")
	}
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots},
				// "localhost" may resolve to ::1 first; the server only listens on IPv4.
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, srv.Listener.Addr().String())
				},
			}}
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
			if err != nil {
				t.Fatalf("GET over TLS to %s: %v", host, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "ok" {
				t.Errorf("body: got %q, want %q", body, "ok")
			}
		})
	}
	t.Run("untrusted name", func(t *testing.T) {
		conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "not-in-the-cert.example"})
		if err == nil {
			conn.Close()
			t.Fatal("handshake for a name not in the certificate: got nil error")
		}
	})
}

func loadCA(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
