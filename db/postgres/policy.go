package postgres

import (
	"context"
	"fmt"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// CreatePolicy stores a policy made by db.NewPolicy; a taken name is
// storage.ErrConflict.
func (s *Store) CreatePolicy(ctx context.Context, p db.Policy) (db.Policy, error) {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Hubs adding policies at once take turns, so the count holds.
		if _, err := tx.Exec(ctx, `LOCK TABLE shared_access_policies IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM shared_access_policies`).Scan(&n); err != nil {
			return err
		}
		if err := db.CanAddPolicy(n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO shared_access_policies (`+db.PolicyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			p.Name, p.PrimaryKey, p.SecondaryKey, p.Rights.String(), ms(p.CreatedAt), ms(p.UpdatedAt))
		return translate(err)
	})
	if err == storage.ErrConflict {
		return db.Policy{}, fmt.Errorf("policy %q: %w", p.Name, storage.ErrConflict)
	}
	if err != nil {
		return db.Policy{}, fmt.Errorf("add policy %q: %w", p.Name, err)
	}
	return p, nil
}

// Policy reads one policy by name.
func (s *Store) Policy(ctx context.Context, name string) (db.Policy, error) {
	p, err := db.ScanPolicy(s.pool.QueryRow(ctx, `SELECT `+db.PolicyColumns+` FROM shared_access_policies WHERE name = $1`, name))
	if err := translate(err); err != nil {
		return db.Policy{}, fmt.Errorf("policy %q: %w", name, err)
	}
	return p, nil
}

// Policies lists the policies by name.
func (s *Store) Policies(ctx context.Context) ([]db.Policy, error) {
	r, err := s.pool.Query(ctx, `SELECT `+db.PolicyColumns+` FROM shared_access_policies ORDER BY name COLLATE "C"`)
	out, err := rows(r, err, func(r pgx.Rows) (db.Policy, error) { return db.ScanPolicy(r) })
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// RotatePolicyKey replaces one key with a fresh one and returns the policy.
func (s *Store) RotatePolicyKey(ctx context.Context, name, which string) (db.Policy, error) {
	col, err := db.KeyColumn(which)
	if err != nil {
		return db.Policy{}, err
	}
	p, err := db.ScanPolicy(s.pool.QueryRow(ctx, `UPDATE shared_access_policies SET `+col+` = $1, updated_at = $2
		WHERE name = $3 RETURNING `+db.PolicyColumns, db.NewDeviceKey(), ms(s.Now()), name))
	if err := translate(err); err != nil {
		return db.Policy{}, fmt.Errorf("policy %q: %w", name, err)
	}
	return p, nil
}

// DeletePolicy removes a policy.
func (s *Store) DeletePolicy(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM shared_access_policies WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("remove policy %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("policy %q: %w", name, storage.ErrNotFound)
	}
	return nil
}
