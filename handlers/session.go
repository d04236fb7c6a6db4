package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/storage"
)

const (
	sessionCookie = "fieldhub_session"
	// loginCSRFCookie carries the login form's CSRF token before a session exists
	// (double-submit: the form field must equal the cookie).
	loginCSRFCookie = "fieldhub_login_csrf"
	csrfField       = "_csrf"
	csrfHeader      = "X-CSRF-Token"
	principalKey    = "fieldhub.principal"
)

// Principal is who makes a request: a logged-in user or an API token.
type Principal struct {
	Username string // user name, or token name for tokens
	Role     string
	CSRF     string // session CSRF token; empty for bearer tokens
	ViaToken bool
	TokenID  int64
}

// Actor names the principal in the audit log.
func (p Principal) Actor() string {
	if p.ViaToken {
		return "token:" + p.Username
	}
	return "user:" + p.Username
}

// CanCommand is true for admins and operators.
func (p Principal) CanCommand() bool { return p.Role == db.RoleAdmin || p.Role == db.RoleOperator }

// IsAdmin is true for admins.
func (p Principal) IsAdmin() bool { return p.Role == db.RoleAdmin }

func principal(c echo.Context) (Principal, bool) {
	p, ok := c.Get(principalKey).(Principal)
	return p, ok
}

// identify finds the principal of a request from a bearer token or the session
// cookie. It does not refuse anything; requireRole does.
func (s *Server) identify(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		if h := c.Request().Header.Get("Authorization"); h != "" {
			scheme, token, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Bearer") || token == "" {
				return errorf(http.StatusUnauthorized, "Authorization header must be 'Bearer <token>'")
			}
			t, err := s.store.APITokenBySecret(ctx, strings.TrimSpace(token))
			if errors.Is(err, storage.ErrNotFound) {
				return errorf(http.StatusUnauthorized, "unknown, revoked or expired API token")
			}
			if err != nil {
				return err
			}
			if err := s.store.TouchAPIToken(ctx, t.ID); err != nil {
				s.log.Warn("record api token use", "err", err)
			}
			c.Set(principalKey, Principal{Username: t.Name, Role: t.Role, ViaToken: true, TokenID: t.ID})
			return next(c)
		}
		if ck, err := c.Cookie(sessionCookie); err == nil && ck.Value != "" {
			sess, err := s.store.Session(ctx, ck.Value)
			switch {
			case err == nil:
				c.Set(principalKey, Principal{Username: sess.User.Username, Role: sess.User.Role, CSRF: sess.CSRFToken})
			case errors.Is(err, storage.ErrNotFound):
				s.clearSessionCookie(c)
			default:
				return err
			}
		}
		return next(c)
	}
}

// roleRank orders roles so that "at least operator" is one comparison.
func roleRank(role string) int {
	switch role {
	case db.RoleAdmin:
		return 3
	case db.RoleOperator:
		return 2
	case db.RoleViewer:
		return 1
	}
	return 0
}

// requireRole refuses requests without a principal (401) or with a weaker role (403),
// and checks the CSRF token of every state-changing request made with a session cookie.
func (s *Server) requireRole(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := principal(c)
			if !ok {
				return errorf(http.StatusUnauthorized, "log in or send an API token (Authorization: Bearer <token>)")
			}
			if roleRank(p.Role) < roleRank(role) {
				return errorf(http.StatusForbidden, "this needs the %s role; you are %s", role, p.Role)
			}
			if !p.ViaToken && !safeMethod(c.Request().Method) {
				if err := checkCSRF(c, p.CSRF); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func checkCSRF(c echo.Context, want string) error {
	got := c.Request().Header.Get(csrfHeader)
	if got == "" {
		got = c.FormValue(csrfField)
	}
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errorf(http.StatusForbidden, "missing or wrong CSRF token; reload the page and try again")
	}
	return nil
}

func (s *Server) setSessionCookie(c echo.Context, token string) {
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(s.sessionTTL.Seconds()),
	})
}

func (s *Server) clearSessionCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// audit records an action; a failure to record is logged, not shown, since the
// action itself already happened.
func (s *Server) audit(ctx context.Context, c echo.Context, action, target, outcome, detail string) {
	if err := s.store.RecordAudit(ctx, db.AuditEntry{Actor: actor(c), Action: action, Target: target, Outcome: outcome, Detail: detail}); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}
