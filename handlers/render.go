package handlers

import (
	"bytes"
	"net/http"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"fieldhub/views"
)

// render writes a templ component through a buffer, so a failed render can still
// become a clean 500 instead of half a page.
func (s *Server) render(c echo.Context, status int, comp templ.Component) error {
	var buf bytes.Buffer
	if err := comp.Render(c.Request().Context(), &buf); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// renderError shows an error page to a browser. htmx requests and the fleet
// page's search as you type get the bare message as text, which the page
// shows in place.
func (s *Server) renderError(c echo.Context, status int, msg string) error {
	if c.Request().Header.Get("HX-Request") == "true" || c.Request().Header.Get(fleetResultsHeader) != "" {
		return c.String(status, msg)
	}
	p := s.page(c, http.StatusText(status), "")
	return s.render(c, status, views.ErrorView(views.ErrorPage{Page: p, Status: status, Message: msg}))
}
