package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fieldhub/db"
	"fieldhub/storage"

	"github.com/jackc/pgx/v5"
)

// CreateUser stores a user whose password is already hashed. A name that
// differs from an existing one only in letter case is storage.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash, role string) (db.User, error) {
	if err := db.ValidateUsername(username); err != nil {
		return db.User{}, err
	}
	if err := db.ValidateRole(role); err != nil {
		return db.User{}, err
	}
	u := db.User{Username: username, PasswordHash: passwordHash, Role: role, CreatedAt: storage.FromUnixMS(ms(s.Now()))}
	err := s.pool.QueryRow(ctx, `INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		username, passwordHash, role, ms(u.CreatedAt)).Scan(&u.ID)
	if err := translate(err); errors.Is(err, storage.ErrConflict) {
		return db.User{}, fmt.Errorf("create user %q: %w (usernames are unique regardless of letter case)", username, err)
	} else if err != nil {
		return db.User{}, fmt.Errorf("create user %q: %w", username, err)
	}
	return u, nil
}

// byName matches a username in any letter case (usernames are ASCII, and
// migration 0005 makes lower(username) unique).
const byName = `lower(username) = lower($1)`

// User finds a user by name, in any letter case.
func (s *Store) User(ctx context.Context, username string) (db.User, error) {
	u, err := db.ScanUser(s.pool.QueryRow(ctx, `SELECT `+db.UserColumns+` FROM users WHERE `+byName, username))
	if err := translate(err); err != nil {
		return db.User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]db.User, error) {
	r, err := s.pool.Query(ctx, `SELECT `+db.UserColumns+` FROM users ORDER BY username COLLATE "C"`)
	out, err := rows(r, err, func(r pgx.Rows) (db.User, error) { return db.ScanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// CountUsers tells whether the first admin must still be created.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPassword replaces a user's password hash and ends their sessions.
func (s *Store) SetPassword(ctx context.Context, username, passwordHash string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `UPDATE users SET password_hash = $2 WHERE `+byName+` RETURNING id`, username, passwordHash).Scan(&id); err != nil {
			return translate(err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	return nil
}

// DeleteUser removes a user; refusing to remove the last admin keeps the
// hub manageable. Every admin's row is locked while it counts them, so two
// hubs deleting the last two admins at once cannot both succeed.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var role string
		if err := tx.QueryRow(ctx, `SELECT id, role FROM users WHERE `+byName+` FOR UPDATE`, username).Scan(&id, &role); err != nil {
			return translate(err)
		}
		if role == db.RoleAdmin {
			var admins int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE) a`).Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return storage.Invalid("username", "%q is the last admin; create another admin first", username)
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", username, err)
	}
	return nil
}

// CreateSession stores a session for user under the secret token.
func (s *Store) CreateSession(ctx context.Context, token string, userID int64, csrf string, ttl time.Duration) error {
	now := s.Now()
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		db.TokenHash(token), userID, csrf, ms(now), ms(now.Add(ttl)))
	if err != nil {
		return fmt.Errorf("create session: %w", translate(err))
	}
	return nil
}

// Session finds the live session for token; expired sessions are not found.
func (s *Store) Session(ctx context.Context, token string) (db.Session, error) {
	var sess db.Session
	var created, expires int64
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.username, u.password_hash, u.role, u.created_at, s.csrf_token, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2`,
		db.TokenHash(token), ms(s.Now())).Scan(&sess.User.ID, &sess.User.Username, &sess.User.PasswordHash, &sess.User.Role,
		&created, &sess.CSRFToken, &expires)
	if err != nil {
		return db.Session{}, fmt.Errorf("session: %w", translate(err))
	}
	sess.User.CreatedAt, sess.ExpiresAt = storage.FromUnixMS(created), storage.FromUnixMS(expires)
	return sess, nil
}

// DeleteSession logs a session out.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, db.TokenHash(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions past their expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	n, err := s.deleteOnce(ctx, lockSessions, `DELETE FROM sessions WHERE expires_at <= $1`, ms(s.Now()))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return n, nil
}

// CreateAPIToken stores the hash of a new token that works until revoked.
func (s *Store) CreateAPIToken(ctx context.Context, name, role, token string) (db.APIToken, error) {
	return s.CreateAPITokenUntil(ctx, name, role, token, time.Time{})
}

// apiTokensLock serialises the count and insert of new tokens, so that two
// at once cannot pass db.MaxActiveAPITokens together.
const apiTokensLock = 0x66685f746f6b // "fh_tok"

// CreateAPITokenUntil stores the hash of a new token that works until
// expires (zero: until revoked).
func (s *Store) CreateAPITokenUntil(ctx context.Context, name, role, token string, expires time.Time) (db.APIToken, error) {
	t, err := db.NewAPIToken(name, role, token, s.Now(), expires)
	if err != nil {
		return db.APIToken{}, err
	}
	var exp any
	if !t.ExpiresAt.IsZero() {
		exp = ms(t.ExpiresAt)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(apiTokensLock)); err != nil {
			return err
		}
		var active int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)`,
			ms(t.CreatedAt)).Scan(&active); err != nil {
			return err
		}
		if active >= db.MaxActiveAPITokens {
			return db.TooManyTokens(active)
		}
		return translate(tx.QueryRow(ctx, `INSERT INTO api_tokens (name, role, token_hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			t.Name, t.Role, db.TokenHash(token), t.Prefix, ms(t.CreatedAt), exp).Scan(&t.ID))
	})
	if err != nil {
		return db.APIToken{}, fmt.Errorf("create api token: %w", err)
	}
	return t, nil
}

// APITokenBySecret finds a live (not revoked, not expired) token by its secret.
func (s *Store) APITokenBySecret(ctx context.Context, token string) (db.APIToken, error) {
	t, err := db.ScanAPIToken(s.pool.QueryRow(ctx, `SELECT `+db.APITokenColumns+` FROM api_tokens
		WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, db.TokenHash(token), ms(s.Now())))
	if err != nil {
		return db.APIToken{}, fmt.Errorf("api token: %w", translate(err))
	}
	return t, nil
}

// RecordLogin notes that user id signed in now.
func (s *Store) RecordLogin(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE users SET last_login_at = $1 WHERE id = $2`, ms(s.Now()), id); err != nil {
		return fmt.Errorf("record login of user %d: %w", id, err)
	}
	return nil
}

// SetUserRole changes a user's role and returns the role they had; the
// last admin keeps the role.
func (s *Store) SetUserRole(ctx context.Context, username, role string) (string, error) {
	if err := db.ValidateRole(role); err != nil {
		return "", err
	}
	var old string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id, role FROM users WHERE `+byName+` FOR UPDATE`, username).Scan(&id, &old); err != nil {
			return translate(err)
		}
		if old == db.RoleAdmin && role != db.RoleAdmin {
			var admins int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE) a`).Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return storage.Invalid("role", "%s is the last admin; make another user admin first", username)
			}
		}
		_, err := tx.Exec(ctx, `UPDATE users SET role = $1 WHERE id = $2`, role, id)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("user %q: %w", username, err)
	}
	return old, nil
}

// TouchAPIToken records that a token was used, at most about once a minute.
func (s *Store) TouchAPIToken(ctx context.Context, id int64) error {
	now := ms(s.Now())
	_, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)`,
		now, id, now-60_000)
	if err != nil {
		return fmt.Errorf("touch api token: %w", err)
	}
	return nil
}

// APITokens lists every token, revoked ones included.
func (s *Store) APITokens(ctx context.Context) ([]db.APIToken, error) {
	r, err := s.pool.Query(ctx, `SELECT `+db.APITokenColumns+` FROM api_tokens ORDER BY id`)
	out, err := rows(r, err, func(r pgx.Rows) (db.APIToken, error) { return db.ScanAPIToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken revokes a token by id.
func (s *Store) RevokeAPIToken(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ms(s.Now()), id)
	if err != nil {
		return fmt.Errorf("revoke api token %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("api token %d: %w", id, storage.ErrNotFound)
	}
	return nil
}
