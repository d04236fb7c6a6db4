package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"fieldhub/storage"
)

// Rights are what a shared access policy grants, as on Azure IoT Hub.
type Rights uint8

// The rights of shared access policies.
const (
	// RightRegistryRead reads the identity registry (devices, statistics).
	RightRegistryRead Rights = 1 << iota
	// RightRegistryWrite changes it; it implies RegistryRead, as on IoT Hub.
	RightRegistryWrite
	// RightServiceConnect reaches devices through the hub: twins, direct
	// methods, queries and jobs.
	RightServiceConnect
	// RightDeviceConnect lets a token signed with the policy's key act for
	// any device on the device endpoints.
	RightDeviceConnect
)

// rightNames are the rights as the CLI, the page and the store spell them,
// in canonical order.
var rightNames = []struct {
	r    Rights
	name string
}{
	{RightRegistryRead, "registryRead"},
	{RightRegistryWrite, "registryWrite"},
	{RightServiceConnect, "serviceConnect"},
	{RightDeviceConnect, "deviceConnect"},
}

// RightNames lists the rights' names in canonical order.
func RightNames() []string {
	out := make([]string, len(rightNames))
	for i, rn := range rightNames {
		out[i] = rn.name
	}
	return out
}

// ParseRights reads a comma-separated list of rights in any letter case
// ("registryRead,serviceConnect"); IoT Hub's "RegistryReadWrite" is
// accepted too. RegistryWrite brings RegistryRead with it. At least one
// right is required.
func ParseRights(s string) (Rights, error) {
	var r Rights
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		found := false
		for _, rn := range rightNames {
			if strings.EqualFold(part, rn.name) {
				r |= rn.r
				found = true
			}
		}
		if strings.EqualFold(part, "registryReadWrite") {
			r |= RightRegistryWrite
			found = true
		}
		if !found {
			return 0, invalid("rights", "unknown right %q; use %s", clipText(part, 40), strings.Join(RightNames(), ", "))
		}
	}
	if r == 0 {
		return 0, invalid("rights", "a policy needs at least one right of %s", strings.Join(RightNames(), ", "))
	}
	return r.normalize(), nil
}

func (r Rights) normalize() Rights {
	if r&RightRegistryWrite != 0 {
		r |= RightRegistryRead
	}
	return r
}

// Has reports whether r grants all of want.
func (r Rights) Has(want Rights) bool { return r&want == want }

// String is the canonical comma-separated list, as stored.
func (r Rights) String() string {
	var names []string
	for _, rn := range rightNames {
		if r&rn.r != 0 {
			names = append(names, rn.name)
		}
	}
	return strings.Join(names, ",")
}

// Names lists the rights r grants, in canonical order.
func (r Rights) Names() []string {
	if r == 0 {
		return nil
	}
	return strings.Split(r.String(), ",")
}

// Policy is a shared access policy: a name, two keys (either signs tokens,
// so that one can be rotated while apps move to the other) and its rights.
type Policy struct {
	Name         string
	PrimaryKey   string
	SecondaryKey string
	Rights       Rights
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Keys returns the primary and secondary key, in that order.
func (p Policy) Keys() []string { return []string{p.PrimaryKey, p.SecondaryKey} }

// Bounds of policies: IoT Hub allows 16 policies, names of at most 64
// characters.
const (
	MaxPolicies      = 16
	MaxPolicyNameLen = 64
)

// ValidatePolicyName checks a policy's name: it travels in tokens (skn),
// connection strings, URLs and command lines.
func ValidatePolicyName(name string) error {
	if name == "" || len(name) > MaxPolicyNameLen {
		return invalid("name", "policy name must be 1-%d characters", MaxPolicyNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			continue
		}
		return invalid("name", "policy name contains %q at position %d; allowed are ASCII letters, digits and - _ .", c, i+1)
	}
	return nil
}

// NewPolicy checks a policy to create and gives it fresh keys.
func NewPolicy(name string, rights Rights, now time.Time) (Policy, error) {
	if err := ValidatePolicyName(name); err != nil {
		return Policy{}, err
	}
	rights = rights.normalize()
	if rights == 0 || rights&^(RightRegistryRead|RightRegistryWrite|RightServiceConnect|RightDeviceConnect) != 0 {
		return Policy{}, invalid("rights", "a policy needs at least one right of %s", strings.Join(RightNames(), ", "))
	}
	t := fromMS(ms(now))
	return Policy{Name: name, PrimaryKey: NewDeviceKey(), SecondaryKey: NewDeviceKey(), Rights: rights, CreatedAt: t, UpdatedAt: t}, nil
}

// CanAddPolicy refuses another policy when the hub has count already.
func CanAddPolicy(count int) error {
	if count >= MaxPolicies {
		return invalid("name", "the hub already has %d shared access policies, the most it allows; remove one first", count)
	}
	return nil
}

// PolicyColumns are the columns ScanPolicy reads, for every store.
const PolicyColumns = `name, primary_key, secondary_key, rights, created_at, updated_at`

// ScanPolicy reads a row of PolicyColumns.
func ScanPolicy(s Scanner) (Policy, error) {
	var p Policy
	var rights string
	var created, updated int64
	if err := s.Scan(&p.Name, &p.PrimaryKey, &p.SecondaryKey, &rights, &created, &updated); err != nil {
		return Policy{}, err
	}
	r, err := ParseRights(rights)
	if err != nil {
		return Policy{}, fmt.Errorf("policy %q: stored rights %q: %w", p.Name, rights, err)
	}
	p.Rights, p.CreatedAt, p.UpdatedAt = r, fromMS(created), fromMS(updated)
	return p, nil
}

// CreatePolicy stores a policy made by NewPolicy; a taken name is
// storage.ErrConflict.
func (d *DB) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM shared_access_policies`).Scan(&n); err != nil {
			return err
		}
		if err := CanAddPolicy(n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO shared_access_policies (`+PolicyColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			p.Name, p.PrimaryKey, p.SecondaryKey, p.Rights.String(), ms(p.CreatedAt), ms(p.UpdatedAt))
		return translate(err)
	})
	if err == storage.ErrConflict {
		return Policy{}, fmt.Errorf("policy %q: %w", p.Name, storage.ErrConflict)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("add policy %q: %w", p.Name, err)
	}
	return p, nil
}

// Policy reads one policy by name.
func (d *DB) Policy(ctx context.Context, name string) (Policy, error) {
	p, err := ScanPolicy(d.read.QueryRowContext(ctx, `SELECT `+PolicyColumns+` FROM shared_access_policies WHERE name = ?`, name))
	if err := translate(err); err != nil {
		return Policy{}, fmt.Errorf("policy %q: %w", name, err)
	}
	return p, nil
}

// Policies lists the policies by name.
func (d *DB) Policies(ctx context.Context) ([]Policy, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+PolicyColumns+` FROM shared_access_policies ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	var out []Policy
	for rows.Next() {
		p, err := ScanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// RotatePolicyKey replaces one key (PrimaryKey or SecondaryKey) with a
// fresh one and returns the policy.
func (d *DB) RotatePolicyKey(ctx context.Context, name, which string) (Policy, error) {
	col, err := KeyColumn(which)
	if err != nil {
		return Policy{}, err
	}
	res, err := d.write.ExecContext(ctx, `UPDATE shared_access_policies SET `+col+` = ?, updated_at = ? WHERE name = ?`,
		NewDeviceKey(), ms(d.Now()), name)
	if err != nil {
		return Policy{}, fmt.Errorf("rotate key of policy %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Policy{}, fmt.Errorf("policy %q: %w", name, storage.ErrNotFound)
	}
	p, err := ScanPolicy(d.write.QueryRowContext(ctx, `SELECT `+PolicyColumns+` FROM shared_access_policies WHERE name = ?`, name))
	if err := translate(err); err != nil {
		return Policy{}, fmt.Errorf("policy %q: %w", name, err)
	}
	return p, nil
}

// DeletePolicy removes a policy: tokens signed with its keys stop working.
func (d *DB) DeletePolicy(ctx context.Context, name string) error {
	res, err := d.write.ExecContext(ctx, `DELETE FROM shared_access_policies WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove policy %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("policy %q: %w", name, storage.ErrNotFound)
	}
	return nil
}
