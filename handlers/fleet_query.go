package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/query"
	"fieldhub/registry"
	"fieldhub/views"
)

// The fleet page's advanced search: the search box holds a device query (a
// condition, or a whole SELECT … FROM devices …), asked for with mode=query
// or typed starting with SELECT. Its results are a fleet query's
// (POST /api/v1/devices/query): devices in id order, a page at a time, the
// next page named by a continuation token (after) in the address.

// fleetQueryMode reports whether the fleet page's search is a device query.
func fleetQueryMode(c echo.Context, search string) bool {
	return c.QueryParam("mode") == "query" || startsWithSelect(search)
}

// startsWithSelect reports whether s reads as a whole query: SELECT, then
// FROM. A plain search for "select pump" stays a plain search.
func startsWithSelect(s string) bool { return selectQuery.MatchString(s) }

var selectQuery = regexp.MustCompile(`(?is)^\s*select[\s*].*\bfrom\b`)

// statusConditions are the fleet page's status filter as query conditions,
// with the online rule the status filter uses (the document's online).
var statusConditions = map[string]string{
	db.StatusOnline:   "status = 'enabled' AND online = true",
	db.StatusOffline:  "status = 'enabled' AND online = false",
	db.StatusDisabled: "status = 'disabled'",
}

// fleetDeviceQuery reads the search box's query and narrows it to status
// ("" for any). A mistake in the text is a *query.Error with its place in
// what was typed.
func fleetDeviceQuery(text, status string) (*query.Query, error) {
	var q *query.Query
	if startsWithSelect(text) {
		var err error
		if q, err = registry.ParseQuery(text); err != nil {
			return nil, err
		}
	} else {
		q = &query.Query{Top: -1, Star: true}
		if strings.TrimSpace(text) != "" {
			cond, err := query.ParseCondition(text)
			if err != nil {
				return nil, err
			}
			q.Where = cond
		}
	}
	if status != "" {
		cond, err := query.ParseCondition(statusConditions[status])
		if err != nil {
			return nil, fmt.Errorf("status %q as a condition: %w", status, err)
		}
		if q.Where == nil {
			q.Where = cond
		} else {
			q.Where = &query.And{Terms: []query.Cond{q.Where, cond}}
		}
	}
	return q, nil
}

// renderFleetQuery renders the fleet page (or, asked for, its results) for
// an advanced query: f's Query is the text, f's Status narrows it.
func (s *Server) renderFleetQuery(c echo.Context, status int, add *views.AddDevice, f db.DeviceFilter, size int) error {
	ctx := c.Request().Context()
	m := views.FleetPage{
		Page:       s.page(c, "Fleet", views.NavFleet),
		FleetQuery: views.FleetQuery{Query: f.Query, Status: f.Status, Size: size, PageNum: 1, Advanced: true, After: c.QueryParam("after")},
		PageCount:  1,
		AddDevice:  add,
	}
	fragment := c.Request().Header.Get(fleetResultsHeader) == "fleet-results"
	refuse := func(qe *queryErrorJSON) error {
		if fragment {
			return errorf(http.StatusUnprocessableEntity, "%s", qe.Error)
		}
		m.QueryProblem = qe.Error
		if status == http.StatusOK {
			status = http.StatusUnprocessableEntity
		}
		return s.renderFleetPage(c, status, m)
	}
	q, err := fleetDeviceQuery(f.Query, f.Status)
	if qe := queryError(err); qe != nil {
		return refuse(qe)
	}
	if err != nil {
		return err
	}
	text := q.String()
	res, err := s.devices.Query(ctx, registry.QueryRequest{Text: text, PageSize: size, Continuation: m.After})
	if qe := queryError(err); qe != nil {
		return refuse(qe)
	}
	if err != nil {
		return err
	}
	m.NextAfter = res.Continuation
	if q.Star {
		devs := make([]db.Device, len(res.Devices))
		for i, qd := range res.Devices {
			devs[i] = qd.Device
		}
		m.Devices = s.fleetRows(devs)
		m.Total, m.TotalKnown = len(devs), true
		if m.After != "" || m.NextAfter != "" {
			// More than one page: count them all, as the plain list does.
			if m.Total, err = s.countQueried(c, q); err != nil {
				if qe := queryError(err); qe != nil {
					return refuse(qe)
				}
				return err
			}
		}
	} else {
		m.QueryColumns = q.ColumnNames()
		m.QueryRows = make([][]string, len(res.Rows))
		for i, row := range res.Rows {
			cells := make([]string, len(m.QueryColumns))
			for j, name := range m.QueryColumns {
				if v, ok := row[name]; ok {
					cells[j] = queryCell(v)
				}
			}
			m.QueryRows[i] = cells
		}
		m.Total, m.TotalKnown = len(res.Rows), m.After == "" && m.NextAfter == ""
	}
	if p, _ := principal(c); p.CanCommand() && q.Star && q.Top < 0 && len(m.Devices) > 0 {
		cond := ""
		if q.Where != nil {
			cond = q.Where.String()
		}
		m.JobURL = views.JobsPath + "?query=" + url.QueryEscape(cond) + "#new-job-heading"
	}
	if s.live != nil && q.Star {
		ids := make([]string, len(m.Devices))
		for i, d := range m.Devices {
			ids[i] = d.ID
		}
		m.LiveURL = fleetStreamURL(ids)
		m.MessagesPerMinute = float64(s.live.MessagesPerMinute())
	}
	if fragment {
		return s.render(c, http.StatusOK, views.FleetResults(m))
	}
	return s.renderFleetPage(c, status, m)
}

// countQueried counts the devices q's condition selects (at most its TOP).
func (s *Server) countQueried(c echo.Context, q *query.Query) (int, error) {
	count := &query.Query{Top: -1, Columns: []query.Column{{Count: true, Alias: "n"}}, Where: q.Where}
	res, err := s.devices.Query(c.Request().Context(), registry.QueryRequest{Text: count.String(), PageSize: 1})
	if err != nil {
		return 0, err
	}
	if len(res.Rows) != 1 {
		return 0, errors.New("count of a fleet query: no row")
	}
	n, err := strconv.Atoi(queryCell(res.Rows[0]["n"]))
	if err != nil {
		return 0, fmt.Errorf("count of a fleet query: %w", err)
	}
	if q.Top >= 0 {
		n = min(n, q.Top)
	}
	return n, nil
}

// queryCell writes a value of a query's row for the page: strings as they
// are, everything else as JSON.
func queryCell(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
