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
	cas, err := s.db.CertificateAuthorities(c.Request().Context())
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
	ctx := c.Request().Context()
	ca, err := s.db.AddCertificateAuthority(ctx, req.Name, []byte(req.Certificate))
	if err != nil {
		return err
	}
	s.audit(ctx, c, "ca.add", ca.Name, "ok", ca.Subject+", thumbprint "+ca.Thumbprint)
	return c.JSON(http.StatusCreated, toCAJSON(ca))
}

// apiRemoveCA stops trusting a CA certificate and closes the connections it
// admitted.
func (s *Server) apiRemoveCA(c echo.Context) error {
	ctx := c.Request().Context()
	name := c.Param("name")
	if err := s.db.DeleteCertificateAuthority(ctx, name); err != nil {
		return err
	}
	s.audit(ctx, c, "ca.remove", name, "ok", "")
	if s.connections != nil {
		s.connections.CheckAllDevices()
	}
	return c.NoContent(http.StatusNoContent)
}
