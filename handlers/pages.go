package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/storage"
	"fieldhub/views"
)

// flashCookie carries a one-time notice across the redirect after a form post
// (post/redirect/get), so a reload never repeats the action.
const flashCookie = "fieldhub_flash"

// page fills what every page's layout needs from the request.
func (s *Server) page(c echo.Context, title, nav string) views.Page {
	p := views.Page{Title: title, Nav: nav, Now: s.now()}
	if s.assets != nil {
		p.Assets = s.assets
	}
	if pr, ok := principal(c); ok {
		p.User = &views.UserInfo{Username: pr.Username, Role: pr.Role}
		p.CSRF = pr.CSRF
		if st := s.health.Status(); !st.OK {
			p.Storage = &views.StorageFault{Reason: st.Reason, Since: st.Since}
		}
		p.Alerts = s.alertSummary()
	}
	p.Flash, p.FlashError = s.takeFlash(c)
	return p
}

// flash shows msg on the next page this browser renders.
func (s *Server) flash(c echo.Context, msg string, isError bool) {
	kind := "ok:"
	if isError {
		kind = "error:"
	}
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Value: url.QueryEscape(kind + msg), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash reads and clears the pending notice.
func (s *Server) takeFlash(c echo.Context) (msg string, isError bool) {
	ck, err := c.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return "", false
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	raw, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return "", false
	}
	if m, ok := strings.CutPrefix(raw, "error:"); ok {
		return m, true
	}
	m, _ := strings.CutPrefix(raw, "ok:")
	return m, false
}

// redirectWith sends the browser to path with a notice (post/redirect/get).
func (s *Server) redirectWith(c echo.Context, path, msg string, isError bool) error {
	if msg != "" {
		s.flash(c, msg, isError)
	}
	return c.Redirect(http.StatusSeeOther, path)
}

// formError turns a mistake the user can fix (bad input, duplicate id) into a
// notice on the page they came from; anything else goes to the error handler.
func (s *Server) formError(c echo.Context, back string, err error) error {
	var inv *storage.InvalidError
	var he *Error
	switch {
	case errors.As(err, &inv):
		return s.redirectWith(c, back, inv.Reason, true)
	case errors.Is(err, storage.ErrConflict):
		return s.redirectWith(c, back, err.Error(), true)
	case errors.As(err, &he) && he.Status < 500 && he.Status != http.StatusForbidden:
		return s.redirectWith(c, back, he.Message, true)
	}
	return err
}

// viewTags lists tags in key order, as the pages show them.
func viewTags(tags map[string]string) []views.Tag {
	out := make([]views.Tag, 0, len(tags))
	for k, v := range tags {
		out = append(out, views.Tag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// devicePagePath is a device page's address; ids may need escaping.
func devicePagePath(id string) string {
	return "/devices/" + url.PathEscape(id)
}

// home redirects to the fleet page.
func (s *Server) home(c echo.Context) error {
	return c.Redirect(http.StatusFound, views.FleetPath)
}
