package handlers

import (
	"fieldhub/alert"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/views"
)

// fleetResultsHeader asks the fleet page for its results only
// (views.FleetResults), which web/fleet.js swaps in as the user types.
const fleetResultsHeader = "X-Fieldhub-Fragment"

// fleetFilter reads what the fleet page and GET /api/v1/devices share: the
// search q, status, sort and order.
func fleetFilter(c echo.Context) (db.DeviceFilter, error) {
	f := db.DeviceFilter{
		Query:  strings.TrimSpace(c.QueryParam("q")),
		Status: c.QueryParam("status"),
		Sort:   c.QueryParam("sort"),
	}
	switch c.QueryParam("order") {
	case "", "asc":
	case "desc":
		f.Desc = true
	default:
		return f, errorf(http.StatusBadRequest, "order must be asc or desc")
	}
	if err := db.ValidateStatusFilter(f.Status); err != nil {
		return f, err
	}
	if err := db.ValidateDeviceSort(f.Sort); err != nil {
		return f, err
	}
	return f, nil
}

// fleetPageSize reads the page's size parameter: one of views.FleetPageSizes.
func fleetPageSize(c echo.Context) (int, error) {
	v := c.QueryParam("size")
	if v == "" {
		return views.DefaultFleetPageSize, nil
	}
	for _, n := range views.FleetPageSizes {
		if v == strconv.Itoa(n) {
			return n, nil
		}
	}
	return 0, errorf(http.StatusBadRequest, "size must be 25, 50, 100 or 200")
}

// showFleet renders one page of the device list with the fleet summary.
func (s *Server) showFleet(c echo.Context) error { return s.renderFleet(c, http.StatusOK, nil) }

// renderFleet renders the fleet page with status; add, when set, is the
// add-device form sent back open with its input and error.
func (s *Server) renderFleet(c echo.Context, status int, add *views.AddDevice) error {
	ctx := c.Request().Context()
	f, err := fleetFilter(c)
	if err != nil {
		return err
	}
	size, err := fleetPageSize(c)
	if err != nil {
		return err
	}
	if fleetQueryMode(c, f.Query) {
		return s.renderFleetQuery(c, status, add, f, size) // handlers/fleet_query.go
	}
	pageNum, err := intParam(c, "page", 1, 1, 1<<30)
	if err != nil {
		return err
	}
	f.Offset, f.Limit = (pageNum-1)*size, size
	devs, total, err := s.store.Devices(ctx, f)
	if err != nil {
		return err
	}
	q := views.FleetQuery{Query: f.Query, Status: f.Status, Sort: f.Sort, Desc: f.Desc, Size: size, PageNum: pageNum}
	pageCount := max(1, (total+size-1)/size)
	if pageNum > pageCount {
		// A stale link after devices were removed: show the last page.
		return c.Redirect(http.StatusSeeOther, q.AtPage(pageCount).URL())
	}

	m := views.FleetPage{
		Page:       s.page(c, "Fleet", views.NavFleet),
		FleetQuery: q,
		PageCount:  pageCount, Total: total,
		Devices:   s.fleetRows(devs),
		AddDevice: add,
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.DeviceID
	}
	if s.live != nil {
		m.LiveURL = fleetStreamURL(ids)
		m.MessagesPerMinute = float64(s.live.MessagesPerMinute())
	}
	if c.Request().Header.Get(fleetResultsHeader) == "fleet-results" {
		return s.render(c, http.StatusOK, views.FleetResults(m))
	}
	return s.renderFleetPage(c, status, m)
}

// fleetRows are the fleet table's rows of devs.
func (s *Server) fleetRows(devs []db.Device) []views.DeviceRow {
	now := s.now()
	var worst map[string]alert.Severity
	if s.alerts != nil {
		worst = s.alerts.WorstOpen()
	}
	rows := make([]views.DeviceRow, len(devs))
	for i, d := range devs {
		rows[i] = views.DeviceRow{
			ID: d.DeviceID, Name: d.Name, Status: d.Status(now), LastActivity: d.LastActivity, Tags: viewTags(d.Tags),
			Worst: string(worst[d.DeviceID]),
		}
	}
	return rows
}

// renderFleetPage renders the whole fleet page m with the fleet's counts.
func (s *Server) renderFleetPage(c echo.Context, status int, m views.FleetPage) error {
	counts, err := s.store.FleetCounts(c.Request().Context())
	if err != nil {
		return err
	}
	m.Online, m.Offline, m.Disabled = counts.Online, counts.Offline, counts.Disabled
	return s.render(c, status, views.FleetView(m))
}

// fleetStreamURL asks the fleet stream for events about the devices on the
// page only (plus the fleet stats), so a page of 50 rows does not receive the
// activity of 10,000 devices. Device ids may contain commas, which the filter
// cannot express; then the page takes every event and ignores the others.
func fleetStreamURL(ids []string) string {
	const stream = "/api/v1/events"
	if len(ids) == 0 {
		return stream + "?devices=" + url.QueryEscape(",")
	}
	for _, id := range ids {
		if strings.Contains(id, ",") {
			return stream
		}
	}
	return stream + "?devices=" + url.QueryEscape(strings.Join(ids, ","))
}
