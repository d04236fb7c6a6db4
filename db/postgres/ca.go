package postgres

import (
	"context"
	"crypto/x509"
	"fmt"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// AddCertificateAuthority registers a CA certificate (one PEM block, a CA,
// valid now) under name.
func (s *Store) AddCertificateAuthority(ctx context.Context, name string, pemBytes []byte) (db.CertificateAuthority, error) {
	ca, err := db.NewCertificateAuthority(name, pemBytes, s.Now())
	if err != nil {
		return db.CertificateAuthority{}, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// Hubs adding CAs at once take turns, so the count holds.
		if _, err := tx.Exec(ctx, `LOCK TABLE certificate_authorities IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var n int
		var same string
		err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(CASE WHEN thumbprint = $1 THEN name END), '') FROM certificate_authorities`,
			ca.Thumbprint).Scan(&n, &same)
		if err != nil {
			return err
		}
		if err := db.CanAddCertificateAuthority(n, same); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO certificate_authorities (name, certificate, subject, thumbprint, not_after, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, ca.Name, ca.PEM, ca.Subject, ca.Thumbprint, ms(ca.NotAfter), ms(ca.CreatedAt))
		return translate(err)
	})
	if err == storage.ErrConflict {
		return db.CertificateAuthority{}, fmt.Errorf("CA %q: %w", name, storage.ErrConflict)
	}
	if err != nil {
		return db.CertificateAuthority{}, fmt.Errorf("add CA %q: %w", name, err)
	}
	return ca, nil
}

// CertificateAuthorities lists the registered CA certificates by name.
func (s *Store) CertificateAuthorities(ctx context.Context) ([]db.CertificateAuthority, error) {
	r, err := s.pool.Query(ctx, `SELECT name, subject, thumbprint, not_after, created_at, certificate
		FROM certificate_authorities ORDER BY name COLLATE "C"`)
	out, err := rows(r, err, func(r pgx.Rows) (db.CertificateAuthority, error) {
		var ca db.CertificateAuthority
		var notAfter, created int64
		err := r.Scan(&ca.Name, &ca.Subject, &ca.Thumbprint, &notAfter, &created, &ca.PEM)
		ca.NotAfter, ca.CreatedAt = storage.FromUnixMS(notAfter), storage.FromUnixMS(created)
		return ca, err
	})
	if err != nil {
		return nil, fmt.Errorf("list CAs: %w", err)
	}
	return out, nil
}

// CACertificates returns the registered CA certificates, parsed.
func (s *Store) CACertificates(ctx context.Context) ([]*x509.Certificate, error) {
	cas, err := s.CertificateAuthorities(ctx)
	if err != nil {
		return nil, err
	}
	return db.ParseCertificateAuthorities(cas)
}

// CAThumbprints is the set of registered CA thumbprints.
func (s *Store) CAThumbprints(ctx context.Context) (map[string]bool, error) {
	r, err := s.pool.Query(ctx, `SELECT thumbprint FROM certificate_authorities`)
	list, err := rows(r, err, func(r pgx.Rows) (string, error) {
		var t string
		return t, r.Scan(&t)
	})
	if err != nil {
		return nil, fmt.Errorf("read CA thumbprints: %w", err)
	}
	out := make(map[string]bool, len(list))
	for _, t := range list {
		out[t] = true
	}
	return out, nil
}

// DeleteCertificateAuthority stops trusting a CA certificate.
func (s *Store) DeleteCertificateAuthority(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM certificate_authorities WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("remove CA %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("CA %q: %w", name, storage.ErrNotFound)
	}
	return nil
}
