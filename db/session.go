package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fieldhub/storage"
	"fmt"
	"strconv"
	"strings"
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
	ExpiresAt  time.Time // zero: never
}

// State is "active", "revoked" or "expired" at time now.
func (t APIToken) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return TokenRevoked
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// API token states.
const (
	TokenActive  = "active"
	TokenRevoked = "revoked"
	TokenExpired = "expired"
)

// MaxActiveAPITokens bounds the tokens that work at once: each is a
// credential to keep track of, and the table only grows.
const MaxActiveAPITokens = 100

// MaxTokenLifetime is the furthest in the future a token may expire.
const MaxTokenLifetime = 10 * 365 * 24 * time.Hour

// NewAPIToken checks a new token's name, role and expiry (zero: never;
// else in the future, at most MaxTokenLifetime away) and returns its
// record as created at now; the store gives it its ID, keeps
// TokenHash(token) and refuses it beyond MaxActiveAPITokens active ones.
func NewAPIToken(name, role, token string, now, expires time.Time) (APIToken, error) {
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
	now = fromMS(ms(now))
	var exp time.Time
	if !expires.IsZero() {
		exp = fromMS(ms(expires))
		if !exp.After(now) {
			return APIToken{}, invalid("expires", "expiry %s is not in the future", exp.Format(time.RFC3339))
		}
		if exp.Sub(now) > MaxTokenLifetime {
			return APIToken{}, invalid("expires", "expiry %s is more than 10 years away", exp.Format(time.RFC3339))
		}
	}
	return APIToken{Name: name, Role: role, Prefix: prefix, CreatedAt: now, ExpiresAt: exp}, nil
}

// TooManyTokens is the error for a token beyond MaxActiveAPITokens.
func TooManyTokens(active int) error {
	return invalid("tokens", "there are already %d active API tokens; revoke one first", active)
}

// CreateAPIToken stores the hash of a new token that works until revoked.
func (d *DB) CreateAPIToken(ctx context.Context, name, role, token string) (APIToken, error) {
	return d.CreateAPITokenUntil(ctx, name, role, token, time.Time{})
}

// CreateAPITokenUntil stores the hash of a new token that works until
// expires (zero: until revoked).
func (d *DB) CreateAPITokenUntil(ctx context.Context, name, role, token string, expires time.Time) (APIToken, error) {
	t, err := NewAPIToken(name, role, token, d.Now(), expires)
	if err != nil {
		return APIToken{}, err
	}
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		var active int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
			ms(t.CreatedAt)).Scan(&active); err != nil {
			return err
		}
		if active >= MaxActiveAPITokens {
			return TooManyTokens(active)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (name, role, token_hash, prefix, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.Name, t.Role, TokenHash(token), t.Prefix, ms(t.CreatedAt), nullableMS(t.ExpiresAt))
		if err != nil {
			return translate(err)
		}
		t.ID, _ = res.LastInsertId()
		return nil
	})
	if err != nil {
		return APIToken{}, fmt.Errorf("create api token: %w", err)
	}
	return t, nil
}

// nullableMS is t in Unix ms, or NULL for the zero time.
func nullableMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ms(t)
}

const APITokenColumns = `id, name, role, prefix, created_at, last_used_at, revoked_at, expires_at`

func ScanAPIToken(s Scanner) (APIToken, error) {
	var t APIToken
	var created int64
	var used, revoked, expires sql.NullInt64
	if err := s.Scan(&t.ID, &t.Name, &t.Role, &t.Prefix, &created, &used, &revoked, &expires); err != nil {
		return APIToken{}, translate(err)
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt, t.ExpiresAt = fromMS(created), nullMS(used), nullMS(revoked), nullMS(expires)
	return t, nil
}

// APITokenBySecret finds a live (not revoked, not expired) token by its secret.
func (d *DB) APITokenBySecret(ctx context.Context, token string) (APIToken, error) {
	t, err := ScanAPIToken(d.read.QueryRowContext(ctx, `SELECT `+APITokenColumns+` FROM api_tokens
		WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`, TokenHash(token), ms(d.Now())))
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

// APITokens lists every token, revoked and expired ones included, oldest first.
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

// ParseTokenExpiry reads when a new token should stop working, as the CLI's
// --expires and the users page give it: "never" (or ""), a number of days
// ("90d"), a duration ("720h"), a date ("2027-01-31": the start of that day,
// UTC) or an RFC 3339 time. The zero time is never.
func ParseTokenExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "never":
		return time.Time{}, nil
	case strings.HasSuffix(s, "d"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil || n < 1 || n > 3650 {
			return time.Time{}, invalid("expires", "%q is not a number of days from 1 to 3650 (e.g. 90d)", clipText(s, 40))
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, invalid("expires", "%q is not in the future", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, invalid("expires", "%q is not an expiry; use never, a number of days (90d), a duration (720h), a date (2027-01-31) or an RFC 3339 time", clipText(s, 40))
}
