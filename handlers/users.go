package handlers

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/views"
)

const usersPath = "/users"

// showUsers lists dashboard users.
func (s *Server) showUsers(c echo.Context) error {
	users, err := s.store.Users(c.Request().Context())
	if err != nil {
		return err
	}
	m := views.UsersPage{Page: s.page(c, "Users", views.NavUsers), Users: make([]views.UserRow, len(users))}
	for i, u := range users {
		m.Users[i] = views.UserRow{Username: u.Username, Role: u.Role, CreatedAt: u.CreatedAt}
	}
	return s.render(c, http.StatusOK, views.UsersView(m))
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
