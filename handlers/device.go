package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/live"
	"fieldhub/views"
)

// showDevice renders one device's page.
func (s *Server) showDevice(c echo.Context) error {
	d, err := s.db.Device(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	tel, err := s.deviceTelemetry(c.Request().Context(), d.DeviceID)
	if err != nil {
		return err
	}
	m := views.DevicePage{
		Page: s.page(c, displayName(d), views.NavFleet),
		Device: views.DeviceDetail{
			ID: d.DeviceID, Name: d.Name, Status: d.Status(s.now()), Enabled: d.Enabled,
			Tags: viewTags(d.Tags), CreatedAt: d.CreatedAt, LastActivity: d.LastActivity,
			Auth: d.Auth.Type, PrimaryThumbprint: d.Auth.PrimaryThumbprint, SecondaryThumbprint: d.Auth.SecondaryThumbprint,
		},
		Telemetry: views.Telemetry(tel),
	}
	if s.live != nil {
		m.LiveURL = "/api/v1/devices/" + url.PathEscape(d.DeviceID) + "/events"
		m.LiveEvents = live.DeviceStreamEvents
	}
	if m.Commands, err = s.commandsSection(c.Request().Context(), c, d.DeviceID); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.DeviceView(m))
}

func displayName(d db.Device) string {
	if d.Name != "" {
		return d.Name
	}
	return d.DeviceID
}

// createDevice handles the fleet page's add form and opens the new device.
func (s *Server) createDevice(c echo.Context) error {
	ctx := c.Request().Context()
	id := strings.TrimSpace(c.FormValue("id"))
	tags, err := db.ParseTags(c.FormValue("tags"))
	if err != nil {
		return s.formError(c, views.FleetPath, err)
	}
	d, err := s.db.CreateDevice(ctx, db.NewDevice{DeviceID: id, Name: strings.TrimSpace(c.FormValue("name")), Tags: tags})
	if errors.Is(err, db.ErrConflict) {
		return s.redirectWith(c, views.FleetPath, fmt.Sprintf("A device with id %q already exists.", id), true)
	}
	if err != nil {
		return s.formError(c, views.FleetPath, err)
	}
	s.audit(ctx, c, "device.create", d.DeviceID, "ok", "")
	return s.redirectWith(c, devicePagePath(d.DeviceID), fmt.Sprintf("Device %s created. Show its connection string to set it up.", d.DeviceID), false)
}

// updateDevice saves the device page's edit form (name and tags).
func (s *Server) updateDevice(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	back := devicePagePath(id)
	tags, err := db.ParseTags(c.FormValue("tags"))
	if err != nil {
		return s.formError(c, back, err)
	}
	name := strings.TrimSpace(c.FormValue("name"))
	d, err := s.db.UpdateDevice(ctx, id, db.DeviceUpdate{Name: &name, Tags: tags})
	if err != nil {
		return s.formError(c, back, err)
	}
	s.audit(ctx, c, "device.update", d.DeviceID, "ok", "")
	return s.redirectWith(c, back, "Changes saved.", false)
}

// enableDevice and disableDevice switch whether a device may connect.
func (s *Server) enableDevice(c echo.Context) error  { return s.setDeviceEnabled(c, true) }
func (s *Server) disableDevice(c echo.Context) error { return s.setDeviceEnabled(c, false) }

func (s *Server) setDeviceEnabled(c echo.Context, enabled bool) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	d, err := s.db.UpdateDevice(ctx, id, db.DeviceUpdate{Enabled: &enabled})
	if err != nil {
		return s.formError(c, devicePagePath(id), err)
	}
	action, msg := "device.enable", "Device enabled: it may connect again."
	if !enabled {
		action, msg = "device.disable", "Device disabled: it is refused until you enable it again."
	}
	s.audit(ctx, c, action, d.DeviceID, "ok", "")
	s.announceStatus(d)
	return s.redirectWith(c, devicePagePath(d.DeviceID), msg, false)
}

// rotateDeviceKey replaces the primary or secondary key.
func (s *Server) rotateDeviceKey(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	which := c.FormValue("which")
	d, err := s.db.RotateDeviceKey(ctx, id, which)
	if err != nil {
		return s.formError(c, devicePagePath(id), err)
	}
	s.audit(ctx, c, "device.rotate-key", d.DeviceID, "ok", which)
	s.checkConnection(d.DeviceID)
	msg := fmt.Sprintf("The %s key was replaced. Connection strings with the old %s key no longer work.", which, which)
	return s.redirectWith(c, devicePagePath(d.DeviceID), msg, false)
}

// deleteDevice removes a device and everything stored for it.
func (s *Server) deleteDevice(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if err := s.db.DeleteDevice(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, c, "device.delete", id, "ok", "")
	s.announceDeleted(id)
	return s.redirectWith(c, views.FleetPath, fmt.Sprintf("Device %s deleted.", id), false)
}

// showConnectionString returns the partial the device page's "Show
// connection string" button swaps in. It holds a secret, so it is never cached.
func (s *Server) showConnectionString(c echo.Context) error {
	ctx := c.Request().Context()
	d, err := s.db.Device(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	s.audit(ctx, c, "device.show-connection-string", d.DeviceID, "ok", "")
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, http.StatusOK, views.ConnectionString(DeviceConnectionString(s.deviceHost, d), d.Auth.X509()))
}

// setDeviceAuthentication saves the device page's authentication form:
// SAS keys, X.509 thumbprints or a CA-issued certificate. Connections the
// old credentials opened are closed at once.
func (s *Server) setDeviceAuthentication(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	back := devicePagePath(id)
	a := db.Authentication{Type: c.FormValue("type")}
	if a.Type == auth.AuthSelfSigned {
		// The form always carries the fields; they count only here.
		a.PrimaryThumbprint = strings.TrimSpace(c.FormValue("primaryThumbprint"))
		a.SecondaryThumbprint = strings.TrimSpace(c.FormValue("secondaryThumbprint"))
	}
	d, err := s.db.UpdateDevice(ctx, id, db.DeviceUpdate{Auth: &a})
	if err != nil {
		return s.formError(c, back, err)
	}
	s.audit(ctx, c, "device.set-authentication", d.DeviceID, "ok", describeAuthentication(d.Auth))
	s.checkConnection(d.DeviceID)
	msg := "Authentication saved: SAS keys. Show the connection string to set up the device."
	if d.Auth.X509() {
		msg = "Authentication saved: the device now presents its X.509 certificate. Open connections were closed."
	}
	return s.redirectWith(c, back, msg, false)
}
