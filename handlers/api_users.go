package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
)

// userJSON is a dashboard user as the API shows it (admins only).
type userJSON struct {
	Username    string     `json:"username"`
	Role        string     `json:"role"`
	CreatedAt   time.Time  `json:"createdAt"`
	LastLoginAt *time.Time `json:"lastLoginAt"` // null: never signed in
}

func toUserJSON(u db.User) userJSON {
	return userJSON{Username: u.Username, Role: u.Role, CreatedAt: u.CreatedAt, LastLoginAt: timeOrNull(u.LastLoginAt)}
}

func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// apiListUsers is GET /api/v1/users: {"users": […]} by name.
func (s *Server) apiListUsers(c echo.Context) error {
	users, err := s.store.Users(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u)
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out})
}

// apiUpdateUser is PATCH /api/v1/users/{name} {"role": "..."}: the user.
func (s *Server) apiUpdateUser(c echo.Context) error {
	var req struct {
		Role *string `json:"role"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Role == nil {
		return errorf(http.StatusUnprocessableEntity, "role is required: admin, operator or viewer")
	}
	ctx := c.Request().Context()
	username := c.Param("name")
	if p, _ := principal(c); strings.EqualFold(p.Username, username) && !p.ViaToken {
		return errorf(http.StatusForbidden, "you cannot change your own role; ask another admin")
	}
	old, err := s.store.SetUserRole(ctx, username, *req.Role)
	if err != nil {
		return err
	}
	u, err := s.store.User(ctx, username)
	if err != nil {
		return err
	}
	if old != u.Role {
		s.audit(ctx, c, "user.role", u.Username, "ok", old+" → "+u.Role)
	}
	return c.JSON(http.StatusOK, toUserJSON(u))
}

// tokenJSON is an API token as the API lists it; the secret is never in it.
type tokenJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	State      string     `json:"state"` // active, expired or revoked
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	ExpiresAt  *time.Time `json:"expiresAt"` // null: never
	RevokedAt  *time.Time `json:"revokedAt"`
}

func (s *Server) tokenJSON(t db.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: t.Role, Prefix: t.Prefix, State: t.State(s.now()), CreatedAt: t.CreatedAt,
		LastUsedAt: timeOrNull(t.LastUsedAt), ExpiresAt: timeOrNull(t.ExpiresAt), RevokedAt: timeOrNull(t.RevokedAt)}
}

// apiListTokens is GET /api/v1/tokens: {"tokens": […]}, oldest first.
func (s *Server) apiListTokens(c echo.Context) error {
	tokens, err := s.store.APITokens(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]tokenJSON, len(tokens))
	for i, t := range tokens {
		out[i] = s.tokenJSON(t)
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": out})
}

// apiCreateToken is POST /api/v1/tokens {"name", "role", "expiresAt"}: 201
// with the token and, this once, its secret.
func (s *Server) apiCreateToken(c echo.Context) error {
	var req struct {
		Name      string     `json:"name"`
		Role      string     `json:"role"`
		ExpiresAt *time.Time `json:"expiresAt"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > maxTokenName {
		return errorf(http.StatusUnprocessableEntity, "name must be 1 to %d characters", maxTokenName)
	}
	var expires time.Time
	if req.ExpiresAt != nil {
		expires = *req.ExpiresAt
	}
	ctx := c.Request().Context()
	secret := auth.NewAPIToken()
	t, err := s.store.CreateAPITokenUntil(ctx, req.Name, req.Role, secret, expires)
	if err != nil {
		return err
	}
	s.audit(ctx, c, "token.create", strconv.FormatInt(t.ID, 10), "ok", tokenAuditDetail(t))
	return c.JSON(http.StatusCreated, map[string]any{"token": s.tokenJSON(t), "secret": secret})
}

// apiRevokeToken is DELETE /api/v1/tokens/{id}: 204.
func (s *Server) apiRevokeToken(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return errorf(http.StatusNotFound, "api token %q: not found", c.Param("id"))
	}
	ctx := c.Request().Context()
	if err := s.store.RevokeAPIToken(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, c, "token.revoke", strconv.FormatInt(id, 10), "ok", "")
	return c.NoContent(http.StatusNoContent)
}
