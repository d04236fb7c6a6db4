// Package certstest mints X.509 certificates for tests of device
// authentication: CAs, intermediates, device certificates and self-signed
// ones, each with its key as PEM and as a tls.Certificate.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Cert is a certificate with its private key and the chain a device presents.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM is the certificate followed by its issuers below the root
	// (what a device sends in its TLS handshake); KeyPEM its key.
	CertPEM, KeyPEM []byte
	// TLS is CertPEM and KeyPEM for a tls.Config.
	TLS   tls.Certificate
	chain [][]byte // DER, leaf first, without the root
}

// Options change a certificate from the defaults: valid from an hour ago for
// a day, no extended key usages.
type Options struct {
	NotBefore, NotAfter time.Time
	ExtKeyUsage         []x509.ExtKeyUsage
	// DNSNames are subject alternative names, for server certificates.
	DNSNames []string
}

// Option changes Options.
type Option func(*Options)

// Valid sets the validity period.
func Valid(from, to time.Time) Option {
	return func(o *Options) { o.NotBefore, o.NotAfter = from, to }
}

// ExtKeyUsage sets the extended key usages.
func ExtKeyUsage(u ...x509.ExtKeyUsage) Option {
	return func(o *Options) { o.ExtKeyUsage = u }
}

// DNSNames sets the subject alternative names (host names).
func DNSNames(names ...string) Option {
	return func(o *Options) { o.DNSNames = names }
}

// NewCA makes a self-signed root CA.
func NewCA(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	return issue(t, cn, true, nil, opts)
}

// Intermediate makes a CA signed by ca.
func (ca *Cert) Intermediate(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	return issue(t, cn, true, ca, opts)
}

// Issue makes a device certificate with subject CN cn signed by ca.
func (ca *Cert) Issue(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	return issue(t, cn, false, ca, opts)
}

// SelfSigned makes a self-signed device certificate.
func SelfSigned(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	return issue(t, cn, false, nil, opts)
}

func issue(t testing.TB, cn string, isCA bool, parent *Cert, opts []Option) *Cert {
	t.Helper()
	now := time.Now()
	o := Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	if isCA {
		// A CA outlives what it issues by default: validity is stored in
		// whole seconds, so a leaf made in the next second with the same
		// span would end a second after its CA, and a chain's end would
		// depend on the clock (TestVerifyDeviceCertificate failed so).
		o.NotAfter = now.Add(25 * time.Hour)
	}
	for _, f := range opts {
		f(&o)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.ExtKeyUsage,
		DNSNames:              o.DNSNames,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{Cert: cert, Key: key, chain: [][]byte{der}}
	if parent != nil && !parent.isRoot() {
		c.chain = append(c.chain, parent.chain...)
	}
	for _, d := range c.chain {
		c.CertPEM = append(c.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cert) isRoot() bool {
	return c.Cert.IsCA && c.Cert.CheckSignatureFrom(c.Cert) == nil
}

// PEM is the certificate alone (without its issuers) as PEM, the way a CA
// certificate is uploaded to the hub.
func (c *Cert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// Chain is the parsed chain a device presents: the certificate and its
// issuers below the root.
func (c *Cert) Chain() []*x509.Certificate {
	out := make([]*x509.Certificate, len(c.chain))
	for i, d := range c.chain {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			panic(err) // parsed once already in issue
		}
		out[i] = cert
	}
	return out
}
