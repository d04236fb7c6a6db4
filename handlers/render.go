package handlers

import (
	"bytes"
	"net/http"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
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

// renderError shows an error page to a browser.
func (s *Server) renderError(c echo.Context, status int, msg string) error {
	return c.HTML(status, "<!doctype html><title>"+http.StatusText(status)+"</title><p>"+templ.EscapeString(msg)+"</p>")
}
