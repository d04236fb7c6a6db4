package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunUsers tests operators, their sessions and API tokens.
func RunUsers(t *testing.T, b Backend) {
	cases(t, b,
		test{"UsersSessionsTokens", testUsersSessionsTokens},
		test{"UsernameCase", testUsernameCase},
		test{"Tokens", testTokens},
		test{"ExpiredSessions", testExpiredSessions},
		test{"TokenExpiry", testTokenExpiry},
		test{"UserRoleAndLogin", testUserRoleAndLogin},
	)
}

func testUsersSessionsTokens(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)

	u, err := d.CreateUser(ctx, "alice", "hash1", db.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "alice", "x", db.RoleViewer); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate user: %v", err)
	}
	if _, err := d.CreateUser(ctx, "bob", "x", "root"); err == nil {
		t.Error("unknown role accepted")
	}
	if err := d.CreateSession(ctx, "secret", u.ID, "csrf", time.Hour); err != nil {
		t.Fatal(err)
	}
	s, err := d.Session(ctx, "secret")
	if err != nil || s.User.Username != "alice" || s.CSRFToken != "csrf" {
		t.Fatalf("session = %+v, %v", s, err)
	}
	if _, err := d.Session(ctx, "other"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	clk.Advance(2 * time.Hour)
	if _, err := d.Session(ctx, "secret"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}
	if err := d.CreateSession(ctx, "s2", u.ID, "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPassword(ctx, "alice", "hash2"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Session(ctx, "s2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session survived password change: %v", err)
	}

	if _, err := d.CreateUser(ctx, "root", "h", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, "root"); err == nil {
		t.Error("deleted the last admin")
	}
	if err := d.DeleteUser(ctx, "alice"); err != nil {
		t.Errorf("delete alice: %v", err)
	}

	tok, err := d.CreateAPIToken(ctx, "ci", db.RoleViewer, "fh_abcdefghijklmnop")
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.APITokenBySecret(ctx, "fh_abcdefghijklmnop")
	if err != nil || got.ID != tok.ID || got.Role != db.RoleViewer {
		t.Fatalf("token lookup = %+v, %v", got, err)
	}
	if err := d.RevokeAPIToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.APITokenBySecret(ctx, "fh_abcdefghijklmnop"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoked token still works: %v", err)
	}
}

// testUsernameCase: names are unique regardless of letter case, and every
// lookup and change matches any case.
func testUsernameCase(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	if _, err := d.CreateUser(ctx, "olga", "x", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "OLGA", "y", db.RoleViewer); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("create OLGA beside olga: %v, want ErrConflict", err)
	}
	if u, err := d.User(ctx, "OlGa"); err != nil || u.Username != "olga" {
		t.Errorf("User(OlGa) = %q, %v; want olga", u.Username, err)
	}
	if err := d.SetPassword(ctx, "OLGA", "z"); err != nil {
		t.Errorf("SetPassword(OLGA): %v", err)
	}
	if u, _ := d.User(ctx, "olga"); u.PasswordHash != "z" {
		t.Errorf("password hash = %q, want z", u.PasswordHash)
	}
	if _, err := d.CreateUser(ctx, "Bob", "x", db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, "BOB"); err != nil {
		t.Errorf("DeleteUser(BOB): %v", err)
	}
	if _, err := d.User(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob after DeleteUser(BOB): %v, want ErrNotFound", err)
	}
	if n, err := d.CountUsers(ctx); err != nil || n != 1 {
		t.Errorf("count = %d, %v; want 1", n, err)
	}
}

// testTokens: listed with revoked ones, last use recorded at most about
// once a minute, refused once revoked.
func testTokens(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	ci, err := d.CreateAPIToken(ctx, "ci", db.RoleOperator, "fh_0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Prefix != "fh_0123456" || !ci.CreatedAt.Equal(T0) || !ci.LastUsedAt.IsZero() {
		t.Errorf("created %+v, want the first 10 characters as prefix, created at T0, never used", ci)
	}
	if _, err := d.CreateAPIToken(ctx, "bad", "root", "fh_x"); err == nil {
		t.Error("token with an unknown role created")
	}
	old, err := d.CreateAPIToken(ctx, "old", db.RoleViewer, "fh_fedcba9876543210")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := d.TouchAPIToken(ctx, ci.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if err := d.TouchAPIToken(ctx, ci.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeAPIToken(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeAPIToken(ctx, old.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoke twice: %v, want ErrNotFound", err)
	}
	list, err := d.APITokens(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %+v, %v; want both", list, err)
	}
	if list[0].ID != ci.ID || !list[0].LastUsedAt.Equal(T0.Add(time.Second)) || !list[0].RevokedAt.IsZero() {
		t.Errorf("ci = %+v, want last used at its first use (the second was within a minute), not revoked", list[0])
	}
	if list[1].ID != old.ID || !list[1].RevokedAt.Equal(clk.Now()) {
		t.Errorf("old = %+v, want revoked now", list[1])
	}
	if _, err := d.APITokenBySecret(ctx, "fh_fedcba9876543210"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoked token: %v, want ErrNotFound", err)
	}
}

// testExpiredSessions: DeleteExpiredSessions removes exactly the expired.
func testExpiredSessions(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	u, err := d.CreateUser(ctx, "alice", "x", db.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		token string
		ttl   time.Duration
	}{{"short-1", time.Minute}, {"short-2", time.Minute}, {"long", time.Hour}} {
		if err := d.CreateSession(ctx, s.token, u.ID, "csrf", s.ttl); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)
	if n, err := d.DeleteExpiredSessions(ctx); err != nil || n != 2 {
		t.Errorf("deleted %d, %v; want 2", n, err)
	}
	if s, err := d.Session(ctx, "long"); err != nil || s.User.Username != "alice" || !s.ExpiresAt.Equal(T0.Add(time.Hour)) {
		t.Errorf("long session = %+v, %v", s, err)
	}
	if err := d.DeleteSession(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Session(ctx, "long"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session after sign-out: %v, want ErrNotFound", err)
	}
}

// testTokenExpiry: a token with an expiry works until then, is then refused
// like a revoked one and stays listed; an expiry not in the future or more
// than MaxTokenLifetime away is refused; at most MaxActiveAPITokens work at
// once, and expired or revoked ones do not count.
func testTokenExpiry(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	var inv *storage.InvalidError
	for _, exp := range []time.Time{T0, T0.Add(-time.Hour), T0.Add(db.MaxTokenLifetime + time.Hour)} {
		if _, err := d.CreateAPITokenUntil(ctx, "bad", db.RoleViewer, "fh_bad0000000000", exp); !errors.As(err, &inv) {
			t.Errorf("expiry %s: err = %v, want InvalidError", exp, err)
		}
	}
	tok, err := d.CreateAPITokenUntil(ctx, "ci", db.RoleViewer, "fh_expiring000000", T0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.ExpiresAt.Equal(T0.Add(time.Hour)) || tok.State(T0) != db.TokenActive {
		t.Errorf("created %+v, want expiring at T0+1h, active", tok)
	}
	if _, err := d.APITokenBySecret(ctx, "fh_expiring000000"); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	clk.Advance(time.Hour)
	if _, err := d.APITokenBySecret(ctx, "fh_expiring000000"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("at expiry: err = %v, want ErrNotFound", err)
	}
	list, err := d.APITokens(ctx)
	if err != nil || len(list) != 1 || !list[0].ExpiresAt.Equal(T0.Add(time.Hour)) || list[0].State(clk.Now()) != db.TokenExpired {
		t.Fatalf("list = %+v, %v; want the expired token listed", list, err)
	}

	for i := range db.MaxActiveAPITokens {
		if _, err := d.CreateAPIToken(ctx, fmt.Sprint("t", i), db.RoleViewer, fmt.Sprintf("fh_many%012d", i)); err != nil {
			t.Fatalf("token %d of %d: %v", i+1, db.MaxActiveAPITokens, err)
		}
	}
	if _, err := d.CreateAPIToken(ctx, "one-too-many", db.RoleViewer, "fh_onetoomany0000"); !errors.As(err, &inv) {
		t.Fatalf("token %d: err = %v, want InvalidError", db.MaxActiveAPITokens+1, err)
	}
	list, _ = d.APITokens(ctx)
	if err := d.RevokeAPIToken(ctx, list[len(list)-1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAPIToken(ctx, "after-revoke", db.RoleViewer, "fh_afterrevoke000"); err != nil {
		t.Errorf("after a revoke: %v", err)
	}
}

// testUserRoleAndLogin: a role changes and the old one comes back; the last
// admin keeps the role; an unknown role or user is refused; the last sign-in
// is recorded on the store's clock.
func testUserRoleAndLogin(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	root, err := d.CreateUser(ctx, "root", "h", db.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, "bob", "h", db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	var inv *storage.InvalidError
	if _, err := d.SetUserRole(ctx, "root", db.RoleOperator); !errors.As(err, &inv) {
		t.Errorf("demote the last admin: err = %v, want InvalidError", err)
	}
	if _, err := d.SetUserRole(ctx, "bob", "root"); !errors.As(err, &inv) {
		t.Errorf("unknown role: err = %v, want InvalidError", err)
	}
	if _, err := d.SetUserRole(ctx, "nobody", db.RoleViewer); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
	if old, err := d.SetUserRole(ctx, "BOB", db.RoleAdmin); err != nil || old != db.RoleViewer {
		t.Errorf("promote bob (any letter case) = %q, %v; want the old role viewer", old, err)
	}
	if old, err := d.SetUserRole(ctx, "root", db.RoleOperator); err != nil || old != db.RoleAdmin {
		t.Errorf("demote root beside another admin = %q, %v", old, err)
	}
	if u, _ := d.User(ctx, "root"); u.Role != db.RoleOperator || !u.LastLoginAt.IsZero() {
		t.Errorf("root = %+v, want operator, never signed in", u)
	}
	clk.Advance(time.Minute)
	if err := d.RecordLogin(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	if u, _ := d.User(ctx, "root"); !u.LastLoginAt.Equal(T0.Add(time.Minute)) {
		t.Errorf("last login = %v, want T0+1m", u.LastLoginAt)
	}
}
