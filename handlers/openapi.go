package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"fieldhub/docs"
)

// showOpenAPI serves the OpenAPI document of the operator API. It holds
// nothing of the hub's data, so it needs no sign-in.
func (s *Server) showOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, docs.OpenAPI)
}
