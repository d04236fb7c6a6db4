package auth_test

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/certs/certstest"
)

func TestNormalizeThumbprint(t *testing.T) {
	sha256Hex := strings.Repeat("ab", 32)
	sha1Hex := strings.Repeat("0f", 20)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{sha256Hex, strings.ToUpper(sha256Hex), true},
		{strings.ToUpper(sha1Hex), strings.ToUpper(sha1Hex), true},
		{"  " + sha1Hex + "\n", strings.ToUpper(sha1Hex), true},
		{strings.TrimSuffix(strings.Repeat("ab:", 32), ":"), strings.ToUpper(sha256Hex), true},
		{strings.Repeat("AB ", 20), strings.ToUpper(strings.Repeat("ab", 20)), true},
		{"", "", false},
		{strings.Repeat("ab", 31), "", false},  // 62 digits
		{strings.Repeat("ab", 33), "", false},  // 66
		{strings.Repeat("zz", 32), "", false},  // not hex
		{strings.Repeat("ab", 16), "", false},  // MD5 length
		{strings.Repeat("a", 5000), "", false}, // huge
	}
	for _, tt := range tests {
		got, err := auth.NormalizeThumbprint(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeThumbprint(%.40q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("NormalizeThumbprint(%.40q): error of %d bytes quotes too much", tt.in, len(err.Error()))
		}
	}
}

func FuzzNormalizeThumbprint(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add("AB:CD")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := auth.NormalizeThumbprint(s)
		if err != nil {
			return
		}
		if len(got) != 40 && len(got) != 64 || strings.ToUpper(got) != got {
			t.Fatalf("NormalizeThumbprint(%q) = %q: not 40 or 64 upper-case hex digits", s, got)
		}
		if again, err := auth.NormalizeThumbprint(got); err != nil || again != got {
			t.Fatalf("NormalizeThumbprint is not idempotent on %q: %q, %v", got, again, err)
		}
	})
}

func sha1Of(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestVerifyDeviceCertificate(t *testing.T) {
	now := time.Now()
	root := certstest.NewCA(t, "Fleet Root")
	inter := root.Intermediate(t, "Fleet Issuing")
	otherRoot := certstest.NewCA(t, "Other Root")
	self := certstest.SelfSigned(t, "dev1")
	self2 := certstest.SelfSigned(t, "dev1")
	fromRoot := root.Issue(t, "dev1")
	fromInter := inter.Issue(t, "dev1")
	clientEKU := root.Issue(t, "dev1", certstest.ExtKeyUsage(x509.ExtKeyUsageClientAuth))
	serverOnly := root.Issue(t, "dev1", certstest.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	otherCN := root.Issue(t, "dev2")
	fromOther := otherRoot.Issue(t, "dev1")
	expired := certstest.SelfSigned(t, "dev1", certstest.Valid(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	notYet := certstest.SelfSigned(t, "dev1", certstest.Valid(now.Add(time.Hour), now.Add(48*time.Hour)))
	shortRoot := certstest.NewCA(t, "Short Root", certstest.Valid(now.Add(-time.Hour), now.Add(2*time.Hour)))
	fromShort := shortRoot.Issue(t, "dev1")

	selfReg := auth.X509Registration{DeviceID: "dev1", Type: auth.AuthSelfSigned,
		Thumbprints: [2]string{auth.Thumbprint(self.Cert), sha1Of(self2.Cert)}}
	caReg := auth.X509Registration{DeviceID: "dev1", Type: auth.AuthCertificateAuthority}
	cas := func(certs ...*certstest.Cert) func() ([]*x509.Certificate, error) {
		return func() ([]*x509.Certificate, error) {
			var out []*x509.Certificate
			for _, c := range certs {
				out = append(out, c.Cert)
			}
			return out, nil
		}
	}
	noCAs := func() ([]*x509.Certificate, error) {
		t.Error("CAs loaded for a device that does not need them")
		return nil, nil
	}
	tests := []struct {
		name           string
		reg            auth.X509Registration
		chain          []*x509.Certificate
		cas            func() ([]*x509.Certificate, error)
		wantMethod     string
		wantCredential string
		wantNotAfter   time.Time
	}{
		{"primary SHA-256 thumbprint", selfReg, self.Chain(), noCAs, auth.AuthX509Primary, auth.Thumbprint(self.Cert), self.Cert.NotAfter},
		{"secondary SHA-1 thumbprint", selfReg, self2.Chain(), noCAs, auth.AuthX509Secondary, sha1Of(self2.Cert), self2.Cert.NotAfter},
		{"unregistered thumbprint", selfReg, fromRoot.Chain(), noCAs, "", "", time.Time{}},
		{"self-signed device without secondary", auth.X509Registration{DeviceID: "dev1", Type: auth.AuthSelfSigned, Thumbprints: [2]string{auth.Thumbprint(self.Cert)}}, self2.Chain(), noCAs, "", "", time.Time{}},
		{"expired self-signed", auth.X509Registration{DeviceID: "dev1", Type: auth.AuthSelfSigned, Thumbprints: [2]string{auth.Thumbprint(expired.Cert)}}, expired.Chain(), noCAs, "", "", time.Time{}},
		{"not yet valid", auth.X509Registration{DeviceID: "dev1", Type: auth.AuthSelfSigned, Thumbprints: [2]string{auth.Thumbprint(notYet.Cert)}}, notYet.Chain(), noCAs, "", "", time.Time{}},
		{"no certificate", selfReg, nil, noCAs, "", "", time.Time{}},
		{"SAS device", auth.X509Registration{DeviceID: "dev1", Type: auth.AuthSAS}, self.Chain(), noCAs, "", "", time.Time{}},
		{"issued by a registered root", caReg, fromRoot.Chain(), cas(otherRoot, root), auth.AuthX509CA, auth.Thumbprint(root.Cert), fromRoot.Cert.NotAfter},
		{"through an intermediate the device sends", caReg, fromInter.Chain(), cas(root), auth.AuthX509CA, auth.Thumbprint(root.Cert), fromInter.Cert.NotAfter},
		{"intermediate registered itself", caReg, fromInter.Chain()[:1], cas(inter), auth.AuthX509CA, auth.Thumbprint(inter.Cert), fromInter.Cert.NotAfter},
		{"intermediate not sent", caReg, fromInter.Chain()[:1], cas(root), "", "", time.Time{}},
		{"client auth usage", caReg, clientEKU.Chain(), cas(root), auth.AuthX509CA, auth.Thumbprint(root.Cert), clientEKU.Cert.NotAfter},
		{"server auth usage only", caReg, serverOnly.Chain(), cas(root), "", "", time.Time{}},
		{"CN of another device", caReg, otherCN.Chain(), noCAs, "", "", time.Time{}},
		{"unregistered CA", caReg, fromOther.Chain(), cas(root), "", "", time.Time{}},
		{"no CAs registered", caReg, fromRoot.Chain(), cas(), "", "", time.Time{}},
		{"self-signed for a CA device", caReg, self.Chain(), cas(root), "", "", time.Time{}},
		{"connection ends with the CA", caReg, fromShort.Chain(), cas(shortRoot), auth.AuthX509CA, auth.Thumbprint(shortRoot.Cert), shortRoot.Cert.NotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.VerifyDeviceCertificate(tt.reg, tt.chain, tt.cas, now)
			if tt.wantMethod == "" {
				if !errors.Is(err, auth.ErrCertificateRefused) {
					t.Fatalf("got %+v, %v; want ErrCertificateRefused", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.wantMethod || got.Credential != tt.wantCredential || !got.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("got %+v, want method %s, credential %s, not after %s", got, tt.wantMethod, tt.wantCredential, tt.wantNotAfter)
			}
		})
	}
}

func TestVerifyDeviceCertificateCAError(t *testing.T) {
	root := certstest.NewCA(t, "Root")
	boom := errors.New("database gone")
	_, err := auth.VerifyDeviceCertificate(auth.X509Registration{DeviceID: "dev1", Type: auth.AuthCertificateAuthority},
		root.Issue(t, "dev1").Chain(), func() ([]*x509.Certificate, error) { return nil, boom }, time.Now())
	if !errors.Is(err, boom) || errors.Is(err, auth.ErrCertificateRefused) {
		t.Fatalf("err = %v, want the loader's error, not a refusal", err)
	}
}

func TestParseCACertificate(t *testing.T) {
	now := time.Now()
	root := certstest.NewCA(t, "Root")
	leaf := root.Issue(t, "dev1")
	expired := certstest.NewCA(t, "Old", certstest.Valid(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	future := certstest.NewCA(t, "Future", certstest.Valid(now.Add(time.Hour), now.Add(48*time.Hour)))
	tests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"a root CA", root.PEM(), ""},
		{"an intermediate CA", root.Intermediate(t, "Issuing").PEM(), ""},
		{"not PEM", []byte("hello"), "not PEM"},
		{"a key", leaf.KeyPEM, "want CERTIFICATE"},
		{"two certificates", append(root.PEM(), root.PEM()...), "more than one"},
		{"a device certificate", leaf.PEM(), "not a CA certificate"},
		{"expired", expired.PEM(), "expired"},
		{"not yet valid", future.PEM(), "not valid before"},
		{"garbage in PEM", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "CA certificate:"},
		{"too large", []byte(strings.Repeat("x", auth.MaxCACertificateSize+1)), "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := auth.ParseCACertificate(tt.pem, now)
			if tt.wantErr == "" {
				if err != nil || cert == nil {
					t.Fatalf("got %v, %v; want a certificate", cert, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseCACertificate(f *testing.F) {
	f.Add(certstest.NewCA(f, "Root").PEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		cert, err := auth.ParseCACertificate(b, now)
		if err == nil && (!cert.IsCA || now.After(cert.NotAfter)) {
			t.Fatalf("accepted a certificate that is not a valid CA: %v", cert.Subject)
		}
	})
}
