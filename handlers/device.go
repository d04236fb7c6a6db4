package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/live"
	"fieldhub/storage"
	"fieldhub/views"
)

// maxMetricTiles bounds the header's tiles; the Telemetry tab has a chart
// for every metric.
const maxMetricTiles = 24

// showDevice renders one device's page.
func (s *Server) showDevice(c echo.Context) error {
	d, err := s.store.Device(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	tel, err := s.deviceTelemetry(c.Request().Context(), d.DeviceID)
	if err != nil {
		return err
	}
	if tel.Marks, err = s.chartMarks(c.Request().Context(), d); err != nil {
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
		Metrics:   tel.Metrics[:min(len(tel.Metrics), maxMetricTiles)],
	}
	m.Device.DisconnectedAt = d.DisconnectedAt
	if s.conns != nil {
		if ev, ok := s.conns.Connection(d.DeviceID); ok {
			m.Connection = views.DeviceConnection{Connected: true, Protocol: ev.Protocol, Remote: ev.Remote, Since: ev.At, Node: ev.Node}
		}
	}
	if !m.Connection.Connected && d.Connected {
		if m.Connection, err = s.remoteConnection(c.Request().Context(), d.DeviceID); err != nil {
			return err
		}
	}
	if s.live != nil {
		m.LiveURL = "/api/v1/devices/" + url.PathEscape(d.DeviceID) + "/events"
		m.LiveEvents = live.DeviceStreamEvents
	}
	if m.Commands, err = s.commandsSection(c.Request().Context(), c, d.DeviceID); err != nil {
		return err
	}
	if m.Connect, err = s.connectSection(c, d); err != nil {
		return err
	}
	if m.Alerts, err = s.deviceAlertsPanel(c, d.DeviceID); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.DeviceView(m))
}

// commandsSection builds the device page's Commands section. showDevice calls it.
func (s *Server) commandsSection(ctx context.Context, c echo.Context, deviceID string) (templ.Component, error) {
	msgs, err := s.cloud.History(ctx, deviceID, 50)
	if err != nil {
		return nil, err
	}
	tw, err := s.twins.Get(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	p, _ := principal(c)
	m := views.CommandsPanel{DeviceID: deviceID, CanCommand: p.CanCommand(), Now: s.now(), Twin: twinPanel(tw), Limits: commandLimits}
	for _, msg := range msgs {
		v := commands.NewCloudMessageView(msg, 120)
		body := v.Body
		if v.BodyTruncated {
			body += "…"
		}
		m.Messages = append(m.Messages, views.CloudMessageRow{
			ID: msg.ID, MessageID: msg.MessageID, Body: body, State: msg.State, DeliveryCount: msg.DeliveryCount,
			Sender: msg.Sender, EnqueuedAt: msg.EnqueuedAt, UpdatedAt: msg.UpdatedAt,
		})
	}
	return views.CommandsView(m), nil
}

// commandLimits are the limits the Commands section's forms hold input to.
var commandLimits = views.CommandLimits{
	MethodNameMax: commands.MaxMethodName, MethodNamePattern: commands.MethodNamePattern, MethodNameRule: commands.MethodNameRule,
	MinResponseTimeout:     int(commands.MinResponseTimeout / time.Second),
	MaxResponseTimeout:     int(commands.MaxResponseTimeout / time.Second),
	DefaultResponseTimeout: int(commands.DefaultResponseTimeout / time.Second),
	CloudBodyMax:           commands.MaxCloudBody,
	MinTTL:                 int(commands.MinCloudTTL / time.Second),
	MaxTTL:                 int(commands.MaxCloudTTL / time.Second),
	DefaultTTL:             int(commands.DefaultCloudTTL / time.Second),
}

// twinPanel prepares the twin for the page: both sections pretty-printed and a
// comparison of their top-level properties.
func twinPanel(tw db.Twin) views.TwinPanel {
	pretty := func(v map[string]any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	}
	compact := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	out := views.TwinPanel{
		ETag: commands.ETag(tw), DesiredVersion: tw.DesiredVersion, ReportedVersion: tw.ReportedVersion,
		DesiredJSON: pretty(tw.Desired), ReportedJSON: pretty(tw.Reported), Data: commands.NewTwinView(tw),
	}
	keys := map[string]bool{}
	for k := range tw.Desired {
		keys[k] = true
	}
	for k := range tw.Reported {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		row := views.TwinKeyRow{Key: k}
		if v, ok := tw.Desired[k]; ok {
			row.Desired = compact(v)
		}
		if v, ok := tw.Reported[k]; ok {
			row.Reported = compact(v)
		}
		// A property only the device reports (firmware, its own settings)
		// is not a mismatch: only a desired value not (yet) reported is.
		row.Differs = row.Desired != "" && row.Desired != row.Reported
		out.Keys = append(out.Keys, row)
	}
	return out
}

func displayName(d db.Device) string {
	if d.Name != "" {
		return d.Name
	}
	return d.DeviceID
}

// actor names who is asking, for the audit log.
func actor(c echo.Context) string {
	if p, ok := principal(c); ok {
		return p.Actor()
	}
	return "anonymous"
}

// createDevice handles the fleet page's add form and opens the new device.
func (s *Server) createDevice(c echo.Context) error {
	form := views.AddDevice{
		ID: strings.TrimSpace(c.FormValue("id")), Name: strings.TrimSpace(c.FormValue("name")), Tags: c.FormValue("tags"),
	}
	tags, err := db.ParseTags(form.Tags)
	var d db.Device
	if err == nil {
		d, err = s.devices.Create(c.Request().Context(), actor(c), db.NewDevice{DeviceID: form.ID, Name: form.Name, Tags: tags})
	}
	// A refused add sends the form back open, with what was typed and the
	// error beside it: nothing typed is lost.
	var inv *storage.InvalidError
	switch {
	case errors.Is(err, storage.ErrConflict):
		form.Error, form.Field = fmt.Sprintf("A device with id %q already exists. Choose another id.", form.ID), "id"
		return s.renderFleet(c, http.StatusConflict, &form)
	case errors.As(err, &inv):
		form.Error, form.Field = inv.Reason, inv.Field
		return s.renderFleet(c, http.StatusUnprocessableEntity, &form)
	case err != nil:
		return err
	}
	return s.redirectWith(c, devicePagePath(d.DeviceID), fmt.Sprintf("Device %s created. Show its connection string to set it up.", d.DeviceID), false)
}

// updateDevice saves the device page's edit form (name and tags).
func (s *Server) updateDevice(c echo.Context) error {
	back := devicePagePath(c.Param("id"))
	tags, err := db.ParseTags(c.FormValue("tags"))
	if err != nil {
		return s.formError(c, back, err)
	}
	name := strings.TrimSpace(c.FormValue("name"))
	if _, err := s.devices.Update(c.Request().Context(), actor(c), c.Param("id"), db.DeviceUpdate{Name: &name, Tags: tags}); err != nil {
		return s.formError(c, back, err)
	}
	return s.redirectWith(c, back, "Changes saved.", false)
}

// enableDevice and disableDevice switch whether a device may connect.
func (s *Server) enableDevice(c echo.Context) error  { return s.setDeviceEnabled(c, true) }
func (s *Server) disableDevice(c echo.Context) error { return s.setDeviceEnabled(c, false) }

func (s *Server) setDeviceEnabled(c echo.Context, enabled bool) error {
	d, err := s.devices.SetEnabled(c.Request().Context(), actor(c), c.Param("id"), enabled)
	if err != nil {
		return s.formError(c, devicePagePath(c.Param("id")), err)
	}
	msg := "Device enabled: it may connect again."
	if !enabled {
		msg = "Device disabled: it is refused until you enable it again."
	}
	return s.redirectWith(c, devicePagePath(d.DeviceID), msg, false)
}

// rotateDeviceKey replaces the primary or secondary key.
func (s *Server) rotateDeviceKey(c echo.Context) error {
	which := c.FormValue("which")
	d, err := s.devices.RotateKey(c.Request().Context(), actor(c), c.Param("id"), which)
	if err != nil {
		return s.formError(c, devicePagePath(c.Param("id")), err)
	}
	msg := fmt.Sprintf("The %s key was replaced. Connection strings with the old %s key no longer work.", which, which)
	return s.redirectWith(c, devicePagePath(d.DeviceID), msg, false)
}

// deleteDevice removes a device and everything stored for it.
func (s *Server) deleteDevice(c echo.Context) error {
	id := c.Param("id")
	if err := s.devices.Delete(c.Request().Context(), actor(c), id); err != nil {
		return err
	}
	return s.redirectWith(c, views.FleetPath, fmt.Sprintf("Device %s deleted.", id), false)
}

// showConnectionString returns the partial the device page's "Show
// connection string" button swaps in. It holds a secret, so it is never cached.
func (s *Server) showConnectionString(c echo.Context) error {
	cs, d, err := s.devices.RevealConnectionString(c.Request().Context(), actor(c), c.Param("id"), s.deviceHost)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, http.StatusOK, views.ConnectionString(cs, d.Auth.X509()))
}

// setDeviceAuthentication saves the device page's authentication form:
// SAS keys, X.509 thumbprints or a CA-issued certificate. Connections the
// old credentials opened are closed at once.
func (s *Server) setDeviceAuthentication(c echo.Context) error {
	back := devicePagePath(c.Param("id"))
	a := db.Authentication{Type: c.FormValue("type")}
	if a.Type == auth.AuthSelfSigned {
		// The form always carries the fields; they count only here.
		a.PrimaryThumbprint = strings.TrimSpace(c.FormValue("primaryThumbprint"))
		a.SecondaryThumbprint = strings.TrimSpace(c.FormValue("secondaryThumbprint"))
	}
	d, err := s.devices.SetAuthentication(c.Request().Context(), actor(c), c.Param("id"), a)
	if err != nil {
		return s.formError(c, back, err)
	}
	msg := "Authentication saved: SAS keys. Show the connection string to set up the device."
	if d.Auth.X509() {
		msg = "Authentication saved: the device now presents its X.509 certificate. Open connections were closed."
	}
	return s.redirectWith(c, back, msg, false)
}

// ActionDeviceConnected is the device log's entry of a connect, as
// mqtt.ActionConnected writes it (the mqtt package's tests import this
// one's through internal/testkit, so it cannot be imported here).
const ActionDeviceConnected = "device.connected"

// remoteConnection describes a device's live connection held by another
// instance of a cluster (--bus): the node, from the store's connection
// state, and since when, from the newest connect in the device's log.
func (s *Server) remoteConnection(ctx context.Context, deviceID string) (views.DeviceConnection, error) {
	node, err := s.store.DeviceConnectionNode(ctx, deviceID)
	if err != nil || node == "" {
		return views.DeviceConnection{}, err // "": it closed meanwhile
	}
	conn := views.DeviceConnection{Connected: true, Protocol: "mqtt", Node: node}
	entries, err := s.store.AuditEntries(ctx, db.AuditFilter{Target: deviceID, Action: ActionDeviceConnected, Limit: 1})
	if err != nil {
		return conn, err
	}
	if len(entries) == 1 {
		conn.Since = entries[0].At
	}
	return conn, nil
}
