package handlers

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
	"fieldhub/views"
)

// showLogin renders the sign-in form with a fresh login CSRF token
// (double-submit: the same value in a cookie and in the form).
func (s *Server) showLogin(c echo.Context) error {
	if p, ok := principal(c); ok && !p.ViaToken {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	return s.renderLogin(c, http.StatusOK, views.LoginPage{Next: c.QueryParam("next")})
}

func (s *Server) renderLogin(c echo.Context, status int, m views.LoginPage) error {
	token := auth.RandomToken(32)
	c.SetCookie(&http.Cookie{
		Name: loginCSRFCookie, Value: token, Path: "/login", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600,
	})
	m.Page = s.page(c, "Sign in", "")
	m.Page.User = nil
	m.Page.CSRF = token
	if m.Next == "/" || safeNext(m.Next) != m.Next {
		m.Next = ""
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, status, views.LoginView(m))
}

// Bounds of the sign-in form, checked before a password check, a throttle
// entry or an audit row is spent on it.
const (
	maxLoginForm     = 8 << 10
	maxPasswordBytes = 1024
)

// readLoginForm reads the sign-in form's fields. It names the problem with a
// body over 8 KB, a username over 64 characters or of characters no username
// has, and a password over 1,024 bytes.
func readLoginForm(c echo.Context) (username, password, problem string) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxLoginForm)
	var err error
	if strings.HasPrefix(r.Header.Get(echo.HeaderContentType), echo.MIMEMultipartForm) {
		err = r.ParseMultipartForm(maxLoginForm)
	} else {
		err = r.ParseForm()
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return "", "", "The sign-in form is larger than 8 KB."
	case err != nil:
		return "", "", "The sign-in form could not be read."
	}
	username = strings.TrimSpace(r.FormValue("username"))
	password = r.FormValue("password")
	switch {
	case len(username) > db.MaxUsernameLength:
		return "", "", fmt.Sprintf("Usernames are at most %d characters.", db.MaxUsernameLength)
	case username != "" && db.ValidateUsername(username) != nil:
		return "", "", "Usernames hold only letters, digits and - . _ @."
	case len(password) > maxPasswordBytes:
		return "", "", "Passwords are at most 1,024 bytes."
	}
	return username, password, ""
}

// login checks the form, throttles guessing, and starts a session.
func (s *Server) login(c echo.Context) error {
	ctx := c.Request().Context()
	username, password, problem := readLoginForm(c)
	if problem != "" {
		return s.renderLogin(c, http.StatusBadRequest, views.LoginPage{Error: problem})
	}
	next := c.FormValue("next")
	retry := views.LoginPage{Username: username, Next: next}

	ck, err := c.Cookie(loginCSRFCookie)
	form := c.FormValue(csrfField)
	if err != nil || ck.Value == "" || form == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form)) != 1 {
		retry.Error = "The sign-in form expired. Please sign in again."
		return s.renderLogin(c, http.StatusForbidden, retry)
	}
	if username == "" || password == "" {
		retry.Error = "Enter your username and password."
		return s.renderLogin(c, http.StatusUnprocessableEntity, retry)
	}

	// The attempt is taken from the username's and the address's budgets
	// before the password is checked, so parallel guesses cannot outrun it.
	attempt, wait := s.throttle.Reserve(username, c.RealIP())
	if attempt == nil {
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		retry.Error = fmt.Sprintf("Too many failed attempts. Try again in %s.", waitText(secs))
		return s.renderLogin(c, http.StatusTooManyRequests, retry)
	}
	defer attempt.Release() // unless Fail or Succeed came first

	user, err := s.store.User(ctx, username)
	hash := user.PasswordHash
	switch {
	case errors.Is(err, storage.ErrNotFound):
		hash = "" // checked against a dummy hash: timing does not tell which names exist
	case err != nil:
		return err
	}
	err = s.passwords.Check(ctx, hash, password)
	switch {
	case errors.Is(err, auth.ErrBusy):
		c.Response().Header().Set("Retry-After", "1")
		retry.Error = "The hub is busy checking other sign-ins. Try again in a moment."
		return s.renderLogin(c, http.StatusServiceUnavailable, retry)
	case errors.Is(err, auth.ErrBadPassword):
		attempt.Fail()
		s.audit(ctx, c, "user.login", username, "failed", "wrong username or password")
		retry.Error = "Wrong username or password."
		return s.renderLogin(c, http.StatusUnauthorized, retry)
	case err != nil:
		return err // the client went away
	}
	attempt.Succeed()

	token, csrf := auth.RandomToken(32), auth.RandomToken(32)
	if err := s.store.CreateSession(ctx, token, user.ID, csrf, s.sessionTTL); err != nil {
		return err
	}
	if err := s.store.RecordLogin(ctx, user.ID); err != nil {
		s.log.Warn("record sign-in time", "user", user.Username, "err", err) // the sign-in itself worked
	}
	s.setSessionCookie(c, token)
	c.SetCookie(&http.Cookie{Name: loginCSRFCookie, Value: "", Path: "/login", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	c.Set(principalKey, Principal{Username: user.Username, Role: user.Role, CSRF: csrf})
	s.audit(ctx, c, "user.login", user.Username, "ok", "")
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// waitText says how long to wait, in minutes once it is over two.
func waitText(secs int) string {
	switch {
	case secs <= 1:
		return "a second"
	case secs < 120:
		return strconv.Itoa(secs) + " seconds"
	}
	return strconv.Itoa((secs+59)/60) + " minutes"
}

// logout ends the session behind the cookie.
func (s *Server) logout(c echo.Context) error {
	ctx := c.Request().Context()
	if ck, err := c.Cookie(sessionCookie); err == nil && ck.Value != "" {
		if err := s.store.DeleteSession(ctx, ck.Value); err != nil {
			return err
		}
	}
	s.audit(ctx, c, "user.logout", "", "ok", "")
	s.clearSessionCookie(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}

// safeNext keeps a post-login redirect on this site: a local absolute path,
// not "//host" or "/\host" (which browsers treat as another host), not back to
// the login page, and only of printable ASCII, so that no control byte (a NUL,
// a line break) or raw non-ASCII byte reaches the Location header; links the
// dashboard makes are percent-encoded and pass. Anything else goes to the fleet.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, `/\`) ||
		next == "/login" || strings.HasPrefix(next, "/login?") || strings.HasPrefix(next, "/logout") {
		return views.FleetPath
	}
	for i := 0; i < len(next); i++ {
		if next[i] <= ' ' || next[i] >= 0x7f {
			return views.FleetPath
		}
	}
	return next
}
