package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
	"fieldhub/views"
)

const usersPath = "/users"

// showUsers lists dashboard users and API tokens.
func (s *Server) showUsers(c echo.Context) error {
	return s.renderUsers(c, http.StatusOK, nil)
}

// renderUsers renders the users page; fresh, when set, is a token just
// created, whose secret the page shows this once.
func (s *Server) renderUsers(c echo.Context, status int, fresh *views.NewToken) error {
	ctx := c.Request().Context()
	users, err := s.store.Users(ctx)
	if err != nil {
		return err
	}
	tokens, err := s.store.APITokens(ctx)
	if err != nil {
		return err
	}
	m := views.UsersPage{Page: s.page(c, "Users", views.NavUsers), Users: make([]views.UserRow, len(users)), NewToken: fresh}
	for i, u := range users {
		m.Users[i] = views.UserRow{Username: u.Username, Role: u.Role, CreatedAt: u.CreatedAt, LastLoginAt: u.LastLoginAt}
	}
	now := s.now()
	// Newest first: the one just made, and the ones in use, are on top.
	for i := len(tokens) - 1; i >= 0; i-- {
		t := tokens[i]
		m.Tokens = append(m.Tokens, views.TokenRow{ID: t.ID, Name: t.Name, Role: t.Role, Prefix: t.Prefix,
			CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, State: t.State(now)})
	}
	return s.render(c, status, views.UsersView(m))
}

// createUser handles the users page's add form.
func (s *Server) createUser(c echo.Context) error {
	ctx := c.Request().Context()
	username := strings.TrimSpace(c.FormValue("username"))
	role := c.FormValue("role")
	if err := db.ValidateUsername(username); err != nil {
		return s.formError(c, usersPath, err)
	}
	if err := db.ValidateRole(role); err != nil {
		return s.formError(c, usersPath, err)
	}
	hash, err := auth.HashPassword(c.FormValue("password"))
	if err != nil {
		return s.redirectWith(c, usersPath, passwordProblem(err), true)
	}
	if _, err := s.store.CreateUser(ctx, username, hash, role); err != nil {
		return s.formError(c, usersPath, err)
	}
	s.audit(ctx, c, "user.create", username, "ok", role)
	return s.redirectWith(c, usersPath, fmt.Sprintf("User %s created as %s.", username, role), false)
}

// setUserPassword replaces a user's password; their sessions end.
func (s *Server) setUserPassword(c echo.Context) error {
	ctx := c.Request().Context()
	username := c.Param("name")
	hash, err := auth.HashPassword(c.FormValue("password"))
	if err != nil {
		return s.redirectWith(c, usersPath, passwordProblem(err), true)
	}
	if err := s.store.SetPassword(ctx, username, hash); err != nil {
		return err
	}
	s.audit(ctx, c, "user.password", username, "ok", "")
	if p, _ := principal(c); strings.EqualFold(p.Username, username) && !p.ViaToken {
		// Changing one's own password ends one's own session too.
		s.clearSessionCookie(c)
		return s.redirectWith(c, "/login", "Password changed. Sign in with the new password.", false)
	}
	return s.redirectWith(c, usersPath, fmt.Sprintf("Password of %s changed; their sessions were ended.", username), false)
}

// deleteUser removes a user (never oneself, never the last admin).
func (s *Server) deleteUser(c echo.Context) error {
	ctx := c.Request().Context()
	username := c.Param("name")
	if p, _ := principal(c); strings.EqualFold(p.Username, username) && !p.ViaToken {
		return s.redirectWith(c, usersPath, "You cannot delete yourself; ask another admin.", true)
	}
	if err := s.store.DeleteUser(ctx, username); err != nil {
		return s.formError(c, usersPath, err)
	}
	s.audit(ctx, c, "user.delete", username, "ok", "")
	return s.redirectWith(c, usersPath, fmt.Sprintf("User %s deleted.", username), false)
}

// passwordProblem is the password rule a form broke.
func passwordProblem(err error) string {
	return strings.ToUpper(err.Error()[:1]) + err.Error()[1:] + "."
}

// setUserRole changes another user's role; the last admin keeps theirs.
func (s *Server) setUserRole(c echo.Context) error {
	ctx := c.Request().Context()
	username, role := c.Param("name"), c.FormValue("role")
	if p, _ := principal(c); strings.EqualFold(p.Username, username) && !p.ViaToken {
		return s.redirectWith(c, usersPath, "You cannot change your own role; ask another admin.", true)
	}
	old, err := s.store.SetUserRole(ctx, username, role)
	if err != nil {
		return s.formError(c, usersPath, err)
	}
	if old == role {
		return s.redirectWith(c, usersPath, fmt.Sprintf("%s is already %s.", username, role), false)
	}
	s.audit(ctx, c, "user.role", username, "ok", old+" → "+role)
	return s.redirectWith(c, usersPath, fmt.Sprintf("%s is now %s (was %s).", username, role, old), false)
}

// maxTokenName bounds a token's name (it becomes the audit actor "token:<name>").
const maxTokenName = 200

// createToken handles the users page's new-token form. The answer is the
// users page itself, showing the secret this once; nothing stores it.
func (s *Server) createToken(c echo.Context) error {
	ctx := c.Request().Context()
	name := strings.TrimSpace(c.FormValue("name"))
	role := c.FormValue("role")
	if name == "" || len(name) > maxTokenName {
		return s.redirectWith(c, usersPath, fmt.Sprintf("Give the token a name of 1 to %d characters, to recognise it by.", maxTokenName), true)
	}
	expires, err := db.ParseTokenExpiry(c.FormValue("expires"), s.now())
	if err != nil {
		return s.formError(c, usersPath, err)
	}
	secret := auth.NewAPIToken()
	t, err := s.store.CreateAPITokenUntil(ctx, name, role, secret, expires)
	if err != nil {
		return s.formError(c, usersPath, err)
	}
	s.audit(ctx, c, "token.create", strconv.FormatInt(t.ID, 10), "ok", tokenAuditDetail(t))
	return s.renderUsers(c, http.StatusCreated, &views.NewToken{ID: t.ID, Name: t.Name, Role: t.Role, Secret: secret, ExpiresAt: t.ExpiresAt})
}

// tokenAuditDetail describes a new token in the audit log.
func tokenAuditDetail(t db.APIToken) string {
	d := "name " + t.Name + ", role " + t.Role + ", expires "
	if t.ExpiresAt.IsZero() {
		return d + "never"
	}
	return d + t.ExpiresAt.UTC().Format(time.RFC3339)
}

// revokeToken handles a token's revoke confirmation on the users page.
func (s *Server) revokeToken(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return errorf(http.StatusNotFound, "api token %q: not found", c.Param("id"))
	}
	if err := s.store.RevokeAPIToken(ctx, id); errors.Is(err, storage.ErrNotFound) {
		return s.redirectWith(c, usersPath, fmt.Sprintf("Token %d is unknown or already revoked.", id), true)
	} else if err != nil {
		return err
	}
	s.audit(ctx, c, "token.revoke", strconv.FormatInt(id, 10), "ok", "")
	return s.redirectWith(c, usersPath, fmt.Sprintf("Token %d revoked; requests with it are refused from now on.", id), false)
}
