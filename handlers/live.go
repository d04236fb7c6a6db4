package handlers

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"fieldhub/live"
	"fieldhub/telemetry"
	"fieldhub/views"
)

// streamFleet serves the fleet's live events (GET /api/v1/events):
// device activity and status, and fleet statistics. ?devices=a,b limits the
// device events to those devices (the fleet page asks for the rows it shows).
func (s *Server) streamFleet(c echo.Context) error {
	if s.live == nil {
		return errorf(http.StatusServiceUnavailable, "live streams are not running")
	}
	r := c.Request()
	last, err := live.LastEventID(r)
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	filter, err := live.DeviceFilter(r)
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	s.endStream(c, s.live.ServeFleet(c.Response(), r, last, filter))
	return nil
}

// streamDevice serves one device's live events (GET /api/v1/devices/:id/events):
// readings, messages, status and the events other packages publish for it.
func (s *Server) streamDevice(c echo.Context) error {
	if s.live == nil {
		return errorf(http.StatusServiceUnavailable, "live streams are not running")
	}
	r := c.Request()
	d, err := s.store.Device(r.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	last, err := live.LastEventID(r)
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	s.endStream(c, s.live.ServeDevice(c.Response(), r, d.DeviceID, last))
	return nil
}

// endStream logs why a stream ended when it is worth knowing. The response
// has started, so there is no status left to send.
func (s *Server) endStream(c echo.Context, err error) {
	if err == nil {
		return
	}
	if live.IsSlow(err) {
		s.log.Debug("live client fell behind; it will reconnect", "path", c.Request().URL.Path, "remote", c.RealIP())
		return
	}
	s.log.Warn("live stream", "path", c.Request().URL.Path, "err", err)
}

// deviceTelemetry is the device page's telemetry section.
func (s *Server) deviceTelemetry(ctx context.Context, deviceID string) (views.TelemetrySection, error) {
	metrics, err := s.telemetry.Metrics(ctx, deviceID)
	if err != nil {
		return views.TelemetrySection{}, err
	}
	base := "/api/v1/devices/" + url.PathEscape(deviceID)
	t := views.TelemetrySection{
		DeviceID:    deviceID,
		ReadingsURL: base + "/readings",
		MessagesURL: base + "/messages",
		Metrics:     make([]views.MetricSummary, len(metrics)),
		MetricLimit: telemetry.MaxMetricsPerDevice, AtMetricLimit: len(metrics) >= telemetry.MaxMetricsPerDevice,
	}
	for i, m := range metrics {
		t.Metrics[i] = views.MetricSummary{Name: m.Name, LastValue: m.LastValue, LastTime: m.LastTime}
	}
	return t, nil
}
