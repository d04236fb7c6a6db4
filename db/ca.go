package db

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"time"

	"fieldhub/auth"
	"fieldhub/storage"
)

// CertificateAuthority is a CA certificate the hub trusts to issue device
// certificates (for certificateAuthority devices).
type CertificateAuthority struct {
	Name       string
	Subject    string
	Thumbprint string // SHA-256, upper-case hex
	NotAfter   time.Time
	CreatedAt  time.Time
	PEM        string
}

// MaxCertificateAuthorities bounds the CA certificates of a hub (Azure IoT
// Hub's limit).
const MaxCertificateAuthorities = 25

// ValidateCAName checks the name a CA certificate is registered under: it
// goes into URLs and command lines.
func ValidateCAName(name string) error {
	if name == "" || len(name) > 64 || name == "." || name == ".." {
		return invalid("name", "CA name must be 1-64 characters (not . or ..)")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			continue
		}
		return invalid("name", "CA name contains %q at position %d; allowed are ASCII letters, digits and - _ .", c, i+1)
	}
	return nil
}

// NewCertificateAuthority checks a CA certificate (one PEM block, a CA,
// valid at now) to register under name and returns its record.
func NewCertificateAuthority(name string, pemBytes []byte, now time.Time) (CertificateAuthority, error) {
	if err := ValidateCAName(name); err != nil {
		return CertificateAuthority{}, err
	}
	cert, err := auth.ParseCACertificate(pemBytes, now)
	if err != nil {
		return CertificateAuthority{}, invalid("certificate", "%v", err)
	}
	return CertificateAuthority{
		Name: name, Subject: cert.Subject.String(), Thumbprint: auth.Thumbprint(cert),
		NotAfter: fromMS(ms(cert.NotAfter)), CreatedAt: fromMS(ms(now)),
		PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
	}, nil
}

// CanAddCertificateAuthority refuses another CA certificate when the hub
// trusts count already, or when the same certificate is registered under
// the name same ("" when it is not).
func CanAddCertificateAuthority(count int, same string) error {
	switch {
	case same != "":
		return invalid("certificate", "this certificate is already registered as %q", same)
	case count >= MaxCertificateAuthorities:
		return invalid("certificate", "the hub already trusts %d CA certificates, the most it allows; remove one first", count)
	}
	return nil
}

// AddCertificateAuthority registers a CA certificate (one PEM block, a CA,
// valid now) under name.
func (d *DB) AddCertificateAuthority(ctx context.Context, name string, pemBytes []byte) (CertificateAuthority, error) {
	ca, err := NewCertificateAuthority(name, pemBytes, d.Now())
	if err != nil {
		return CertificateAuthority{}, err
	}
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		var n int
		var same string
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(CASE WHEN thumbprint = ? THEN name END), '') FROM certificate_authorities`,
			ca.Thumbprint).Scan(&n, &same)
		if err != nil {
			return err
		}
		if err := CanAddCertificateAuthority(n, same); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO certificate_authorities (name, certificate, subject, thumbprint, not_after, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, ca.Name, ca.PEM, ca.Subject, ca.Thumbprint, ms(ca.NotAfter), ms(ca.CreatedAt))
		return translate(err)
	})
	if err == storage.ErrConflict {
		return CertificateAuthority{}, fmt.Errorf("CA %q: %w", name, storage.ErrConflict)
	}
	if err != nil {
		return CertificateAuthority{}, fmt.Errorf("add CA %q: %w", name, err)
	}
	return ca, nil
}

// CertificateAuthorities lists the registered CA certificates by name.
func (d *DB) CertificateAuthorities(ctx context.Context) ([]CertificateAuthority, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT name, subject, thumbprint, not_after, created_at, certificate
		FROM certificate_authorities ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list CAs: %w", err)
	}
	defer rows.Close()
	var out []CertificateAuthority
	for rows.Next() {
		var ca CertificateAuthority
		var notAfter, created int64
		if err := rows.Scan(&ca.Name, &ca.Subject, &ca.Thumbprint, &notAfter, &created, &ca.PEM); err != nil {
			return nil, fmt.Errorf("list CAs: %w", err)
		}
		ca.NotAfter, ca.CreatedAt = fromMS(notAfter), fromMS(created)
		out = append(out, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list CAs: %w", err)
	}
	return out, nil
}

// CACertificates returns the registered CA certificates, parsed, for
// checking device certificates.
func (d *DB) CACertificates(ctx context.Context) ([]*x509.Certificate, error) {
	cas, err := d.CertificateAuthorities(ctx)
	if err != nil {
		return nil, err
	}
	return ParseCertificateAuthorities(cas)
}

// ParseCertificateAuthorities parses the stored certificates of cas.
func ParseCertificateAuthorities(cas []CertificateAuthority) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(cas))
	for _, ca := range cas {
		block, _ := pem.Decode([]byte(ca.PEM))
		if block == nil {
			return nil, fmt.Errorf("CA %q: stored certificate is not PEM", ca.Name)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA %q: stored certificate: %w", ca.Name, err)
		}
		out = append(out, cert)
	}
	return out, nil
}

// CAThumbprints is the set of registered CA thumbprints: a live connection
// admitted through a CA ends when its CA is no longer in it.
func (d *DB) CAThumbprints(ctx context.Context) (map[string]bool, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT thumbprint FROM certificate_authorities`)
	if err != nil {
		return nil, fmt.Errorf("read CA thumbprints: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("read CA thumbprints: %w", err)
		}
		out[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read CA thumbprints: %w", err)
	}
	return out, nil
}

// DeleteCertificateAuthority stops trusting a CA certificate.
func (d *DB) DeleteCertificateAuthority(ctx context.Context, name string) error {
	res, err := d.write.ExecContext(ctx, `DELETE FROM certificate_authorities WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove CA %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("CA %q: %w", name, storage.ErrNotFound)
	}
	return nil
}
