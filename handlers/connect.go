package handlers

import (
	"net/http"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/registry"
	"fieldhub/views"
)

// deviceCAPath downloads the certificate devices trust (downloadDeviceCA).
const deviceCAPath = "/device-ca.pem"

// connectSection is the device page's "Connect a device" panel, with
// placeholders for the key: showing it needs no audit entry.
func (s *Server) connectSection(c echo.Context, d db.Device) (templ.Component, error) {
	conns, err := registry.Connections(s.endpoints, d, registry.ConnectOptions{Now: s.now()})
	if err != nil {
		return nil, err
	}
	m := s.connectPanel(d, conns, false)
	if p, _ := principal(c); p.IsAdmin() && !d.Auth.X509() {
		m.RevealURL = devicePagePath(d.DeviceID) + "/connect"
	}
	return views.ConnectView(m), nil
}

// showConnections answers the panel's "Fill in the device key" button: the
// panel's body with the key and SAS tokens, recorded in the audit log.
func (s *Server) showConnections(c echo.Context) error {
	conns, d, err := s.devices.RevealConnections(c.Request().Context(), actor(c), c.Param("id"), s.endpoints, s.now())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, http.StatusOK, views.ConnectBody(s.connectPanel(d, conns, true)))
}

func (s *Server) connectPanel(d db.Device, conns []registry.Connection, secrets bool) views.ConnectPanel {
	m := views.ConnectPanel{DeviceID: d.DeviceID, Secrets: secrets && !d.Auth.X509(), X509: d.Auth.X509()}
	if len(s.deviceCA) > 0 {
		m.CAURL = deviceCAPath
	}
	for _, cn := range conns {
		t := views.ConnectTransport{
			ID: cn.Transport, Name: cn.Name, Served: cn.Served, ConnectionString: cn.ConnectionString,
			Port: cn.Port, HubPort: cn.HubPort, Works: cn.Works, Problem: cn.Problem, Fix: cn.Fix, Note: cn.Note,
		}
		for _, sn := range cn.Snippets {
			t.Snippets = append(t.Snippets, views.ConnectSnippet{ID: sn.ID, Title: sn.Title, Language: sn.Language, Code: sn.Code, Works: sn.Works, Note: sn.Note})
		}
		m.Transports = append(m.Transports, t)
	}
	return m
}

// downloadDeviceCA serves the certificate devices trust: the CA of the
// device endpoints' chain. It is no secret (the endpoints present it in
// every handshake), but it is offered to signed-in users only, over the
// dashboard they already trust.
func (s *Server) downloadDeviceCA(c echo.Context) error {
	if len(s.deviceCA) == 0 {
		return echo.NewHTTPError(http.StatusNotFound, "this hub has no CA certificate to offer: its device certificate comes from a CA devices already trust")
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+registry.CAFileName+`"`)
	return c.Blob(http.StatusOK, "application/x-pem-file", s.deviceCA)
}
