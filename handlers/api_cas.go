package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
)

// caJSON is a trusted CA certificate as the API shows it.
type caJSON struct {
	Name       string    `json:"name"`
	Subject    string    `json:"subject"`
	Thumbprint string    `json:"thumbprint"`
	NotAfter   time.Time `json:"notAfter"`
	CreatedAt  time.Time `json:"createdAt"`
}

func toCAJSON(ca db.CertificateAuthority) caJSON {
	return caJSON{Name: ca.Name, Subject: ca.Subject, Thumbprint: ca.Thumbprint, NotAfter: ca.NotAfter, CreatedAt: ca.CreatedAt}
}

// apiListCAs lists the CA certificates certificateAuthority devices'
// certificates may chain to.
func (s *Server) apiListCAs(c echo.Context) error {
	cas, err := s.store.CertificateAuthorities(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]caJSON, len(cas))
	for i, ca := range cas {
		out[i] = toCAJSON(ca)
	}
	return c.JSON(http.StatusOK, map[string]any{"cas": out})
}

// apiAddCA registers a CA certificate: {"name": "…", "certificate": "<PEM>"}.
func (s *Server) apiAddCA(c echo.Context) error {
	var req struct {
		Name        string `json:"name"`
		Certificate string `json:"certificate"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	ca, err := s.devices.AddCA(c.Request().Context(), actor(c), req.Name, []byte(req.Certificate))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCAJSON(ca))
}

// apiRemoveCA stops trusting a CA certificate and closes the connections it
// admitted.
func (s *Server) apiRemoveCA(c echo.Context) error {
	if err := s.devices.RemoveCA(c.Request().Context(), actor(c), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
