package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fieldhub/storage"
	"fmt"
	"time"
)

// Session is a logged-in browser. Only a hash of its cookie value is stored, so
// a copy of the database does not hand out live sessions.
type Session struct {
	User      User
	CSRFToken string
	ExpiresAt time.Time
}

// TokenHash is what stores keep of a session's or API token's secret.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateSession stores a session for user under the secret token.
func (d *DB) CreateSession(ctx context.Context, token string, userID int64, csrf string, ttl time.Duration) error {
	now := d.Now()
	_, err := d.write.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		TokenHash(token), userID, csrf, ms(now), ms(now.Add(ttl)))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session finds the live session for token; expired sessions are not found.
func (d *DB) Session(ctx context.Context, token string) (Session, error) {
	var s Session
	var expires int64
	row := d.read.QueryRowContext(ctx, `SELECT u.id, u.username, u.password_hash, u.role, u.created_at, s.csrf_token, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?`,
		TokenHash(token), ms(d.Now()))
	var created int64
	if err := row.Scan(&s.User.ID, &s.User.Username, &s.User.PasswordHash, &s.User.Role, &created, &s.CSRFToken, &expires); err != nil {
		return Session{}, fmt.Errorf("session: %w", translate(err))
	}
	s.User.CreatedAt, s.ExpiresAt = fromMS(created), fromMS(expires)
	return s, nil
}

// DeleteSession logs a session out.
func (d *DB) DeleteSession(ctx context.Context, token string) error {
	if _, err := d.write.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, TokenHash(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions past their expiry.
func (d *DB) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, ms(d.Now()))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// APIToken is an operator API token; the secret itself is shown once and never stored.
type APIToken struct {
	ID         int64
	Name       string
	Role       string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// NewAPIToken checks a new token's name and role and returns its record
// as created at now; the store gives it its ID and keeps TokenHash(token).
func NewAPIToken(name, role, token string, now time.Time) (APIToken, error) {
	if err := ValidateRole(role); err != nil {
		return APIToken{}, err
	}
	if len(name) > MaxNameLength {
		return APIToken{}, invalid("name", "name is longer than %d characters", MaxNameLength)
	}
	prefix := token
	if len(prefix) > 10 {
		prefix = prefix[:10]
	}
	return APIToken{Name: name, Role: role, Prefix: prefix, CreatedAt: fromMS(ms(now))}, nil
}

// CreateAPIToken stores the hash of a new token.
func (d *DB) CreateAPIToken(ctx context.Context, name, role, token string) (APIToken, error) {
	t, err := NewAPIToken(name, role, token, d.Now())
	if err != nil {
		return APIToken{}, err
	}
	res, err := d.write.ExecContext(ctx, `INSERT INTO api_tokens (name, role, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`,
		t.Name, t.Role, TokenHash(token), t.Prefix, ms(t.CreatedAt))
	if err != nil {
		return APIToken{}, fmt.Errorf("create api token: %w", translate(err))
	}
	t.ID, _ = res.LastInsertId()
	return t, nil
}

const APITokenColumns = `id, name, role, prefix, created_at, last_used_at, revoked_at`

func ScanAPIToken(s Scanner) (APIToken, error) {
	var t APIToken
	var created int64
	var used, revoked sql.NullInt64
	if err := s.Scan(&t.ID, &t.Name, &t.Role, &t.Prefix, &created, &used, &revoked); err != nil {
		return APIToken{}, translate(err)
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = fromMS(created), nullMS(used), nullMS(revoked)
	return t, nil
}

// APITokenBySecret finds a live (not revoked) token by its secret.
func (d *DB) APITokenBySecret(ctx context.Context, token string) (APIToken, error) {
	t, err := ScanAPIToken(d.read.QueryRowContext(ctx, `SELECT `+APITokenColumns+` FROM api_tokens
		WHERE token_hash = ? AND revoked_at IS NULL`, TokenHash(token)))
	if err != nil {
		return APIToken{}, fmt.Errorf("api token: %w", err)
	}
	return t, nil
}

// TouchAPIToken records that a token was used, at most about once a minute.
func (d *DB) TouchAPIToken(ctx context.Context, id int64) error {
	now := ms(d.Now())
	_, err := d.write.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
		now, id, now-60_000)
	if err != nil {
		return fmt.Errorf("touch api token: %w", err)
	}
	return nil
}

// APITokens lists every token, revoked ones included.
func (d *DB) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+APITokenColumns+` FROM api_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		t, err := ScanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list api tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken revokes a token by id.
func (d *DB) RevokeAPIToken(ctx context.Context, id int64) error {
	res, err := d.write.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(d.Now()), id)
	if err != nil {
		return fmt.Errorf("revoke api token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("api token %d: %w", id, storage.ErrNotFound)
	}
	return nil
}
