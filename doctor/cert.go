package doctor

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fieldhub/certs"
)

// RenewWithin is how close to expiry a certificate becomes a warning; the
// generated one is re-issued this close to its end too.
const RenewWithin = 30 * 24 * time.Hour

// CertSource says where the device endpoints' certificate comes from.
type CertSource struct {
	// CertFile and KeyFile are given with --tls-cert/--tls-key; when empty
	// the hub generates a CA and a certificate in <DataDir>/tls.
	CertFile, KeyFile string
	DataDir           string
}

// Certificate checks that the device endpoints' certificate names host
// (what devices dial; "" is localhost) and is not expired or about to. A
// generated certificate is re-issued by serve at start when it lacks a name
// or nears expiry, so for it those are findings only while a hub runs
// (hubRunning) with the old one.
func Certificate(src CertSource, host string, now time.Time, hubRunning bool) []Finding {
	host = hostOnly(host)
	if host == "" {
		host = "localhost"
	}
	if src.CertFile != "" {
		return givenCertificate(src, host, now)
	}
	return generatedCertificate(filepath.Join(src.DataDir, "tls"), host, now, hubRunning)
}

func givenCertificate(src CertSource, host string, now time.Time) []Finding {
	pair, err := certs.Load(src.CertFile, src.KeyFile)
	if err != nil {
		return []Finding{{Check: "certificate", Severity: Problem, What: err.Error(),
			Fix: "--tls-cert must be a PEM certificate chain (leaf first) and --tls-key its private key"}}
	}
	chain := []*x509.Certificate{pair.Leaf}
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			chain = append(chain, c)
		}
	}
	var out []Finding
	names := Finding{Check: "certificate"}
	if err := pair.Leaf.VerifyHostname(host); err != nil {
		names.Severity = Problem
		names.What = fmt.Sprintf("%s names %s, not %s, the host devices dial: their TLS check fails",
			src.CertFile, certNames(pair.Leaf), host)
		names.Fix = fmt.Sprintf("get a certificate whose subject alternative names include %s, or set --hostname (env FIELDHUB_HOSTNAME) to a name it has", host)
	} else {
		names.What = fmt.Sprintf("%s names %s", src.CertFile, host)
	}
	out = append(out, names)
	for i, c := range chain {
		what := src.CertFile
		if i > 0 {
			what = fmt.Sprintf("%q in the chain of %s", c.Subject.CommonName, src.CertFile)
		}
		out = append(out, validity(what, c, now, "renew it and restart the hub (devices keep working only with a valid chain)"))
	}
	return out
}

func generatedCertificate(dir, host string, now time.Time, hubRunning bool) []Finding {
	caPath, certPath := filepath.Join(dir, certs.CAFile), filepath.Join(dir, certs.ServerFile)
	ca, err := readCertificate(caPath)
	if errors.Is(err, fs.ErrNotExist) {
		return []Finding{{Check: "certificate", What: fmt.Sprintf("none yet: serve creates a CA and a certificate for %s in %s at start", host, dir)}}
	}
	if err != nil {
		return []Finding{{Check: "certificate", Severity: Problem, What: err.Error(),
			Fix: fmt.Sprintf("serve refuses to replace a damaged CA that devices may trust: restore %s, or move it and %s away to start over (devices must then trust the new one)", caPath, certs.CAKeyFile)}}
	}
	out := []Finding{validity("the hub's CA "+caPath, ca, now,
		fmt.Sprintf("move %s and %s away; serve creates a new CA at start, which every device must then trust", caPath, certs.CAKeyFile))}
	leaf, err := readCertificate(certPath)
	if err != nil {
		// serve replaces a missing or damaged server certificate at start.
		f := Finding{Check: "certificate", What: certPath + " is missing or damaged; serve issues a new one at start"}
		if hubRunning {
			f.Severity, f.Fix = Warning, "restart the hub"
		}
		return append(out, f)
	}
	var stale []string
	if err := leaf.VerifyHostname(host); err != nil {
		stale = append(stale, fmt.Sprintf("names %s, not %s", certNames(leaf), host))
	}
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		stale = append(stale, "expired on "+leaf.NotAfter.UTC().Format(time.DateOnly))
	case left < RenewWithin:
		stale = append(stale, "expires on "+leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	f := Finding{Check: "certificate"}
	switch {
	case len(stale) == 0:
		f.What = fmt.Sprintf("%s names %s and is valid until %s", certPath, host, leaf.NotAfter.UTC().Format(time.DateOnly))
	case hubRunning:
		f.Severity = Warning
		if leaf.NotAfter.Before(now) {
			f.Severity = Problem
		}
		f.What = fmt.Sprintf("the running hub's certificate %s %s", certPath, strings.Join(stale, " and "))
		f.Fix = fmt.Sprintf("restart the hub with --hostname %s: serve re-issues it at start, signed by the same CA", host)
	default:
		f.What = fmt.Sprintf("%s %s; serve re-issues it at start, signed by the same CA", certPath, strings.Join(stale, " and "))
	}
	return append(out, f)
}

// validity grades a certificate's validity period at now.
func validity(what string, c *x509.Certificate, now time.Time, fix string) Finding {
	f := Finding{Check: "certificate"}
	until := c.NotAfter.UTC().Format(time.DateOnly)
	switch left := c.NotAfter.Sub(now); {
	case now.Before(c.NotBefore):
		f.Severity = Problem
		f.What = fmt.Sprintf("%s is not valid before %s", what, c.NotBefore.UTC().Format(time.RFC3339))
		f.Fix = "check this machine's clock (doctor --clock-url URL compares it); else wait or use another certificate"
	case left <= 0:
		f.Severity = Problem
		f.What = fmt.Sprintf("%s expired on %s", what, until)
		f.Fix = fix
	case left < RenewWithin:
		f.Severity = Warning
		f.What = fmt.Sprintf("%s expires in %d days, on %s", what, int(left.Hours()/24), until)
		f.Fix = fix
	default:
		f.What = fmt.Sprintf("%s is valid until %s", what, until)
	}
	return f
}

// readCertificate parses the first certificate of a PEM file.
func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return c, nil
}

// certNames lists a certificate's host names and addresses.
func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no host (no subject alternative names)"
	}
	return strings.Join(names, ", ")
}

// hostOnly drops a ":port" and IPv6 brackets.
func hostOnly(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}
