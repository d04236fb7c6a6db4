package handlers

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/registry"
)

// apiListFleet is GET /api/v1/devices: the devices q and status select, in
// the order sort and order ask for, as JSON ({"devices": […], "total": n}) or,
// with format=csv, as a CSV download; admins may add keys=true for the
// devices' credentials (a backup that an import restores).
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
	keys, err := boolParam(c, "keys")
	if err != nil {
		return err
	}
	switch c.QueryParam("mode") {
	case "":
	case "query":
		if c.QueryParam("format") != "csv" {
			return errorf(http.StatusBadRequest, "mode=query goes with format=csv; POST /api/v1/devices/query lists a query's devices as JSON")
		}
	default:
		return errorf(http.StatusBadRequest, "mode must be query (q is then a device query) or absent")
	}
	switch c.QueryParam("format") {
	case "", "json":
		if keys {
			return errorf(http.StatusBadRequest, "keys=true goes with format=csv: the JSON list never carries keys")
		}
	case "csv":
		if p, _ := principal(c); keys && !p.IsAdmin() {
			return errorf(http.StatusForbidden, "exporting keys needs the admin role")
		}
		return s.exportFleetCSV(c, f, keys)
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
// (id, name, tags, enabled) and two it reads past (status, lastActivity);
// an export with keys adds the credential columns (registry.CredentialColumns).
var fleetCSVHeader = []string{"id", "name", "tags", "enabled", "status", "lastActivity"}

// ActionExportKeys is the audit entry of an export with keys.
const ActionExportKeys = "device.export-keys"

// exportFleetCSV streams the devices f selects as CSV, with their
// credentials when keys is set. It holds no more than one batch of devices
// in memory, and the status of every device is taken at one instant.
func (s *Server) exportFleetCSV(c echo.Context, f db.DeviceFilter, keys bool) error {
	now := s.now()
	header, name := fleetCSVHeader, "fieldhub-devices-"
	if keys {
		header, name = append(slices.Clone(fleetCSVHeader), registry.CredentialColumns...), "fieldhub-devices-with-keys-"
	}
	var w *csv.Writer
	start := func() error {
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		h.Set(echo.HeaderContentDisposition, `attachment; filename="`+name+now.UTC().Format("20060102-150405")+`.csv"`)
		c.Response().WriteHeader(http.StatusOK)
		w = csv.NewWriter(c.Response())
		return w.Write(header)
	}
	each := func(fn func(db.Device) error) error { return s.store.EachDevice(c.Request().Context(), f, now, fn) }
	if c.QueryParam("mode") == "query" {
		var err error
		if each, err = s.eachQueried(c, f); err != nil {
			return err
		}
	}
	row := make([]string, len(header))
	exported := 0
	err := each(func(d db.Device) error {
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
		if keys {
			row[6], row[7], row[8], row[9], row[10] = d.Auth.Type, d.PrimaryKey, d.SecondaryKey, d.Auth.PrimaryThumbprint, d.Auth.SecondaryThumbprint
		}
		exported++
		return w.Write(row)
	})
	if keys {
		// Whatever happens to the download, the keys that left are on
		// record; the client may have gone, the audit entry must not.
		outcome := "ok"
		if err != nil {
			outcome = "incomplete"
		}
		s.audit(context.WithoutCancel(c.Request().Context()), c, ActionExportKeys, fmt.Sprintf("%d devices", exported), outcome,
			exportDetail(f, c.QueryParam("mode") == "query"))
	}
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

// exportDetail says which devices an export selected, for its audit entry.
func exportDetail(f db.DeviceFilter, advanced bool) string {
	var parts []string
	switch {
	case advanced:
		parts = append(parts, "query "+strconv.Quote(f.Query))
	case f.Query != "":
		parts = append(parts, "search "+strconv.Quote(f.Query))
	}
	if f.Status != "" {
		parts = append(parts, "status "+f.Status)
	}
	if len(parts) == 0 {
		return "every device, with keys"
	}
	return strings.Join(parts, ", ") + ", with keys"
}

// eachQueried is the export's walk over the devices of a device query
// (mode=query: q is a condition or SELECT * FROM devices …, narrowed by
// status), a page of 1,000 at a time in device id order. A query the hub
// refuses is refused before anything is sent, with where its mistake is.
func (s *Server) eachQueried(c echo.Context, f db.DeviceFilter) (func(func(db.Device) error) error, error) {
	q, err := fleetDeviceQuery(f.Query, f.Status)
	if qe := queryError(err); qe != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "%s", qe.Error)
	}
	if err != nil {
		return nil, err
	}
	if !q.Star || q.Aggregate() {
		return nil, errorf(http.StatusUnprocessableEntity, "an export lists devices: write a condition or SELECT * FROM devices …, without columns, COUNT() or GROUP BY")
	}
	text := q.String()
	return func(fn func(db.Device) error) error {
		after := ""
		for {
			res, err := s.devices.Query(c.Request().Context(), registry.QueryRequest{Text: text, PageSize: registry.MaxQueryPageSize, Continuation: after})
			if qe := queryError(err); qe != nil {
				return errorf(http.StatusUnprocessableEntity, "%s", qe.Error)
			}
			if err != nil {
				return err
			}
			for _, qd := range res.Devices {
				if err := fn(qd.Device); err != nil {
					return err
				}
			}
			if after = res.Continuation; after == "" {
				return nil
			}
		}
	}, nil
}
