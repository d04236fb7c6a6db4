// Package certs owns Fieldhub's TLS material: a self-signed CA kept in the data
// folder and a server certificate signed by it, re-issued when the host names
// change or it nears expiry. Devices trust ca.pem (e.g. NODE_EXTRA_CA_CERTS).
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the certificate folder.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 397 * 24 * time.Hour // the longest lifetime browsers accept
	renewBefore    = 30 * 24 * time.Hour
	// backdate tolerates clients whose clocks run a little behind ours.
	backdate = time.Hour
)

// Ensure loads or creates the CA and server certificate in dir and returns
// the server certificate (with the CA in its chain). The server certificate's
// SANs are localhost, 127.0.0.1, ::1, the machine's host name and hosts (IP
// addresses become IP SANs, anything else DNS SANs; a ":port" is dropped).
// It is re-issued, keeping the CA, when a SAN is missing or it expires within
// 30 days.
func Ensure(dir string, hosts []string, now time.Time) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure certificates: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure certificates: %w", err)
	}
	ca, caKey, err := ensureCA(dir, now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure certificates: %w", err)
	}
	dnsNames, ips := sans(hosts)
	certPath, keyPath := filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile)
	// A missing, damaged or outdated server certificate is simply replaced:
	// devices trust the CA, which stays.
	if cert, err := Load(certPath, keyPath); err == nil && serverCertFits(cert, ca, dnsNames, ips, now) {
		return cert, nil
	}
	if err := issueServer(certPath, keyPath, ca, caKey, dnsNames, ips, now); err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure certificates: %w", err)
	}
	cert, err := Load(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure certificates: %w", err)
	}
	return cert, nil
}

// Load reads a PEM certificate chain and private key, as given with --tls-cert
// and --tls-key, and parses the leaf.
func Load(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return cert, nil
}

// ensureCA loads the CA from dir, or creates it when neither file exists.
// A half-present or unreadable CA is an error: silently replacing it would
// break every device that trusts the old one.
func ensureCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	if errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist) {
		return createCA(certPath, keyPath, now)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA (move %s and %s away to create a new one): %w", certPath, keyPath, err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA %s: %w", certPath, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %s: got %T, want an ECDSA key", keyPath, pair.PrivateKey)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if now.After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("CA %s expired on %s (move %s and %s away to create a new one)",
			certPath, ca.NotAfter.Format(time.DateOnly), certPath, keyPath)
	}
	return ca, key, nil
}

func createCA(certPath, keyPath string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"Fieldhub"}, CommonName: strings.TrimSpace("Fieldhub CA " + host)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	if err := writeKeyPair(certPath, keyPath, [][]byte{der}, key); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new CA: %w", err)
	}
	return ca, key, nil
}

func issueServer(certPath, keyPath string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, dnsNames []string, ips []net.IP, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate server key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	notAfter := now.Add(serverLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{Organization: []string{"Fieldhub"}, CommonName: dnsNames[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create server certificate: %w", err)
	}
	// The chain includes the CA so clients that only trust it can verify.
	return writeKeyPair(certPath, keyPath, [][]byte{der, ca.Raw}, key)
}

// writeKeyPair writes the key (0600) before the certificate so a crash in
// between never leaves a certificate whose key is missing; each file is
// written to a temporary name and renamed into place.
func writeKeyPair(certPath, keyPath string, chain [][]byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return writeFile(certPath, certPEM, 0o644)
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil { // WriteFile keeps an existing file's mode
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// serverCertFits reports whether cert was signed by ca, covers every wanted
// SAN and stays valid for longer than renewBefore.
func serverCertFits(cert tls.Certificate, ca *x509.Certificate, dnsNames []string, ips []net.IP, now time.Time) bool {
	leaf := cert.Leaf
	if leaf == nil || leaf.CheckSignatureFrom(ca) != nil {
		return false
	}
	if now.Before(leaf.NotBefore) || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, d := range dnsNames {
		if !slices.ContainsFunc(leaf.DNSNames, func(have string) bool { return strings.EqualFold(have, d) }) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// sans returns the server certificate's DNS names (localhost first) and IPs.
func sans(hosts []string) ([]string, []net.IP) {
	all := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		all = append(all, h)
	}
	all = append(all, hosts...)
	var dnsNames []string
	var ips []net.IP
	for _, h := range all {
		h = hostOnly(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// hostOnly drops a ":port" and IPv6 brackets: hosts may come straight from a
// HostName such as "hub.local:8883".
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}

// serial returns a random 127-bit serial number, unique per certificate as
// RFC 5280 requires.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}
