package db

import (
	"context"
	"database/sql"
	"errors"
	"fieldhub/storage"
	"fmt"
	"strings"
	"time"
)

// Operator roles, from most to least powerful.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// ValidateRole accepts admin, operator and viewer.
func ValidateRole(role string) error {
	switch role {
	case RoleAdmin, RoleOperator, RoleViewer:
		return nil
	}
	return invalid("role", "unknown role %q; use admin, operator or viewer", role)
}

// User is an operator account.
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	LastLoginAt  time.Time // zero: never signed in
}

// MaxUsernameLength bounds login names (they are ASCII, so bytes are characters).
const MaxUsernameLength = 64

// ValidateUsername checks the rules for login names.
func ValidateUsername(name string) error {
	if name == "" || len(name) > MaxUsernameLength {
		return invalid("username", "username must be 1-%d characters", MaxUsernameLength)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._@", c)) {
			return invalid("username", "username contains %q; use letters, digits and - . _ @", c)
		}
	}
	return nil
}

// CreateUser stores a user whose password is already hashed. A name that
// differs from an existing one only in letter case is storage.ErrConflict.
func (d *DB) CreateUser(ctx context.Context, username, passwordHash, role string) (User, error) {
	if err := ValidateUsername(username); err != nil {
		return User{}, err
	}
	if err := ValidateRole(role); err != nil {
		return User{}, err
	}
	now := fromMS(ms(d.Now()))
	res, err := d.write.ExecContext(ctx, `INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)`,
		username, passwordHash, role, ms(now))
	if err := translate(err); errors.Is(err, storage.ErrConflict) {
		return User{}, fmt.Errorf("create user %q: %w (usernames are unique regardless of letter case)", username, err)
	} else if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", username, err)
	}
	id, _ := res.LastInsertId()
	return User{ID: id, Username: username, PasswordHash: passwordHash, Role: role, CreatedAt: now}, nil
}

const UserColumns = `id, username, password_hash, role, created_at, last_login_at`

func ScanUser(s Scanner) (User, error) {
	var u User
	var created int64
	var lastLogin sql.NullInt64
	if err := s.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Role, &created, &lastLogin); err != nil {
		return User{}, translate(err)
	}
	u.CreatedAt, u.LastLoginAt = fromMS(created), nullMS(lastLogin)
	return u, nil
}

// RecordLogin notes that user id signed in now.
func (d *DB) RecordLogin(ctx context.Context, id int64) error {
	if _, err := d.write.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, ms(d.Now()), id); err != nil {
		return fmt.Errorf("record login of user %d: %w", id, err)
	}
	return nil
}

// SetUserRole changes a user's role and returns the role they had. The last
// admin cannot lose the role: someone must be able to manage the hub.
func (d *DB) SetUserRole(ctx context.Context, username, role string) (string, error) {
	if err := ValidateRole(role); err != nil {
		return "", err
	}
	var old string
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT id, role FROM users WHERE username = ? COLLATE NOCASE`, username).Scan(&id, &old); err != nil {
			return translate(err)
		}
		if old == RoleAdmin && role != RoleAdmin {
			var admins int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin'`).Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return invalid("role", "%s is the last admin; make another user admin first", username)
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE users SET role = ? WHERE id = ?`, role, id)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("user %q: %w", username, err)
	}
	return old, nil
}

// User finds a user by name, in any letter case (names are unique regardless
// of case, migration 0005).
func (d *DB) User(ctx context.Context, username string) (User, error) {
	u, err := ScanUser(d.read.QueryRowContext(ctx, `SELECT `+UserColumns+` FROM users WHERE username = ? COLLATE NOCASE`, username))
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

// Users lists every user by name.
func (d *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+UserColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := ScanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers tells whether the first admin must still be created.
func (d *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := d.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPassword replaces a user's password hash and ends their sessions, so a
// changed password locks out whoever knew the old one.
func (d *DB) SetPassword(ctx context.Context, username, passwordHash string) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE username = ? COLLATE NOCASE`, username).Scan(&id); err != nil {
			return translate(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	return nil
}

// DeleteUser removes a user; refusing to remove the last admin keeps the hub manageable.
func (d *DB) DeleteUser(ctx context.Context, username string) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var id int64
		var role string
		if err := tx.QueryRowContext(ctx, `SELECT id, role FROM users WHERE username = ? COLLATE NOCASE`, username).Scan(&id, &role); err != nil {
			return translate(err)
		}
		if role == RoleAdmin {
			var admins int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin'`).Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return invalid("username", "%q is the last admin; create another admin first", username)
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", username, err)
	}
	return nil
}
