package auth

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCertificateRefused is returned (wrapped with detail for the server log)
// when a device's certificate does not prove it is the device. Devices are
// told nothing more than 401 or CONNACK 5.
var ErrCertificateRefused = errors.New("device certificate refused")

// NormalizeThumbprint turns a thumbprint as people paste it ("ab:cd:…",
// "AB CD …", lower or upper case) into upper-case hex without separators. It
// must be a SHA-1 (40 hex digits) or SHA-256 (64) thumbprint, as Azure accepts.
func NormalizeThumbprint(s string) (string, error) {
	t := strings.ToUpper(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	if len(t) != 2*sha1.Size && len(t) != 2*sha256.Size {
		return "", fmt.Errorf("thumbprint %q: want the SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint of the certificate", clip(s, 80))
	}
	if _, err := hex.DecodeString(t); err != nil {
		return "", fmt.Errorf("thumbprint %q: not hexadecimal", clip(s, 80))
	}
	return t, nil
}

// Thumbprint is the SHA-256 thumbprint of a certificate (of its DER bytes),
// upper-case hex, the way the hub stores and shows thumbprints.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// sha1Thumbprint is the legacy thumbprint Azure still accepts.
func sha1Thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// X509Registration is what a device's certificate is checked against.
type X509Registration struct {
	DeviceID string
	// Type is AuthSAS, AuthSelfSigned or AuthCertificateAuthority.
	Type string
	// Thumbprints are a self-signed device's primary and secondary
	// thumbprints, normalized (NormalizeThumbprint); "" for none.
	Thumbprints [2]string
}

// X509Match is the outcome of a successful certificate check.
type X509Match struct {
	// Method is AuthX509Primary, AuthX509Secondary or AuthX509CA.
	Method string
	// Credential is what admitted the device: the matched thumbprint, or the
	// SHA-256 thumbprint of the registered CA the certificate chains to. A
	// live connection ends when it is no longer registered.
	Credential string
	// NotAfter is when the first certificate of the chain expires.
	NotAfter time.Time
}

// VerifyDeviceCertificate decides whether the certificate chain a device
// presented in its TLS handshake (leaf first; the TLS layer has already
// checked that the device holds the leaf's private key) proves it is the
// device registered as reg. A self-signed device's certificate must have one
// of its thumbprints (SHA-1 or SHA-256); a certificateAuthority device's must
// chain to one of cas (loaded only then) and name the device id as its
// subject CN. Either way the certificate must be within its validity period.
// A SAS device is refused: devices use the method they were registered with.
func VerifyDeviceCertificate(reg X509Registration, chain []*x509.Certificate, cas func() ([]*x509.Certificate, error), now time.Time) (X509Match, error) {
	if len(chain) == 0 {
		return X509Match{}, fmt.Errorf("%w: device %q presented no client certificate", ErrCertificateRefused, reg.DeviceID)
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return X509Match{}, fmt.Errorf("%w: certificate of device %q is valid from %s to %s", ErrCertificateRefused, reg.DeviceID,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	switch reg.Type {
	case AuthSelfSigned:
		sha256Hex, sha1Hex := Thumbprint(leaf), sha1Thumbprint(leaf)
		for i, want := range reg.Thumbprints {
			got := sha256Hex
			if len(want) == len(sha1Hex) {
				got = sha1Hex
			}
			if want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
				return X509Match{Method: []string{AuthX509Primary, AuthX509Secondary}[i], Credential: want, NotAfter: leaf.NotAfter}, nil
			}
		}
		return X509Match{}, fmt.Errorf("%w: certificate thumbprint %s (SHA-1 %s) is not registered for device %q", ErrCertificateRefused, sha256Hex, sha1Hex, reg.DeviceID)
	case AuthCertificateAuthority:
		if leaf.Subject.CommonName != reg.DeviceID {
			return X509Match{}, fmt.Errorf("%w: certificate subject CN %q is not the device id %q", ErrCertificateRefused, clip(leaf.Subject.CommonName, 200), reg.DeviceID)
		}
		roots, err := cas()
		if err != nil {
			return X509Match{}, err
		}
		opts := x509.VerifyOptions{
			Roots:         x509.NewCertPool(),
			Intermediates: x509.NewCertPool(),
			CurrentTime:   now,
			// A device certificate without extended key usages may be used
			// for anything; one with them must allow client authentication.
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		for _, ca := range roots {
			opts.Roots.AddCert(ca)
		}
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
		chains, err := leaf.Verify(opts)
		if err != nil {
			return X509Match{}, fmt.Errorf("%w: certificate of device %q does not chain to a registered CA: %v", ErrCertificateRefused, reg.DeviceID, err)
		}
		notAfter := leaf.NotAfter
		for _, c := range chains[0] {
			if c.NotAfter.Before(notAfter) {
				notAfter = c.NotAfter
			}
		}
		anchor := chains[0][len(chains[0])-1]
		return X509Match{Method: AuthX509CA, Credential: Thumbprint(anchor), NotAfter: notAfter}, nil
	default:
		return X509Match{}, fmt.Errorf("%w: device %q authenticates with %s, not with a certificate", ErrCertificateRefused, reg.DeviceID, reg.Type)
	}
}

// MaxCACertificateSize bounds an uploaded CA certificate (PEM).
const MaxCACertificateSize = 64 << 10

// ParseCACertificate reads one PEM CERTIFICATE block and checks that it is a
// CA certificate (basic constraints CA, allowed to sign certificates when it
// states key usages) valid at now.
func ParseCACertificate(pemBytes []byte, now time.Time) (*x509.Certificate, error) {
	if len(pemBytes) > MaxCACertificateSize {
		return nil, fmt.Errorf("CA certificate is %d bytes; at most %d are allowed", len(pemBytes), MaxCACertificateSize)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("CA certificate is not PEM: want one -----BEGIN CERTIFICATE----- block")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate: PEM block is %q, want CERTIFICATE", clip(block.Type, 40))
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("CA certificate: more than one PEM block; upload each CA certificate on its own")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("certificate %q is not a CA certificate (basic constraints CA:TRUE missing)", clip(cert.Subject.String(), 200))
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("CA certificate %q may not sign certificates (key usage keyCertSign missing)", clip(cert.Subject.String(), 200))
	case now.After(cert.NotAfter):
		return nil, fmt.Errorf("CA certificate %q expired at %s", clip(cert.Subject.String(), 200), cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return nil, fmt.Errorf("CA certificate %q is not valid before %s", clip(cert.Subject.String(), 200), cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
