package handlers

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
)

// apiListFleet is GET /api/v1/devices: the devices q and status select, in
// the order sort and order ask for, as JSON ({"devices": […], "total": n}) or,
// with format=csv, as a CSV download.
func (s *Server) apiListFleet(c echo.Context) error {
	f, err := fleetFilter(c)
	if err != nil {
		return err
	}
	if f.Limit, err = intParam(c, "limit", 0, 0, 100000); err != nil {
		return err
	}
	if f.Offset, err = intParam(c, "offset", 0, 0, 1<<31); err != nil {
		return err
	}
	switch c.QueryParam("format") {
	case "", "json":
	case "csv":
		return s.exportFleetCSV(c, f)
	default:
		return errorf(http.StatusBadRequest, "format must be json or csv")
	}
	devs, total, err := s.store.Devices(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]deviceJSON, len(devs))
	for i, d := range devs {
		out[i] = s.deviceJSON(c, d)
	}
	return c.JSON(http.StatusOK, map[string]any{"devices": out, "total": total})
}

// fleetCSVHeader is the export's first line: the columns a bulk import reads
// (id, name, tags, enabled) and two it ignores.
var fleetCSVHeader = []string{"id", "name", "tags", "enabled", "status", "lastActivity"}

// exportFleetCSV streams the devices f selects as CSV. It holds no more
// than one batch of devices in memory, and the status of every device is
// taken at one instant. Keys are not exported.
func (s *Server) exportFleetCSV(c echo.Context, f db.DeviceFilter) error {
	now := s.now()
	var w *csv.Writer
	start := func() error {
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		h.Set(echo.HeaderContentDisposition, `attachment; filename="fieldhub-devices-`+now.UTC().Format("20060102-150405")+`.csv"`)
		c.Response().WriteHeader(http.StatusOK)
		w = csv.NewWriter(c.Response())
		return w.Write(fleetCSVHeader)
	}
	row := make([]string, len(fleetCSVHeader))
	err := s.store.EachDevice(c.Request().Context(), f, now, func(d db.Device) error {
		if w == nil {
			if err := start(); err != nil {
				return err
			}
		}
		row[0], row[1], row[2] = d.DeviceID, d.Name, db.FormatTagList(d.Tags)
		row[3], row[4], row[5] = strconv.FormatBool(d.Enabled), d.Status(now), ""
		if !d.LastActivity.IsZero() {
			row[5] = d.LastActivity.UTC().Format(time.RFC3339Nano)
		}
		return w.Write(row)
	})
	if err == nil && w == nil {
		err = start() // nothing matched: the header alone
	}
	if err == nil {
		w.Flush()
		err = w.Error()
	}
	if err != nil && w != nil {
		// The status line is sent. Cutting the connection is the only way
		// left to tell the client that the file is incomplete.
		if c.Request().Context().Err() != nil {
			s.log.Debug("export devices as CSV: the client went away", "err", err)
		} else {
			s.log.Error("export devices as CSV", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return err
}
