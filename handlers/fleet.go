package handlers

import (
	"fieldhub/alert"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/views"
)

// fleetPageSize is how many devices one fleet page shows. Large fleets are
// browsed with the filters, not by scrolling.
const fleetPageSize = 50

// showFleet renders one page of the device list with the fleet summary.
func (s *Server) showFleet(c echo.Context) error {
	ctx := c.Request().Context()
	query := strings.TrimSpace(c.QueryParam("q"))
	status := c.QueryParam("status")
	if err := db.ValidateStatusFilter(status); err != nil {
		return err
	}
	pageNum, err := intParam(c, "page", 1, 1, 1<<30)
	if err != nil {
		return err
	}
	devs, total, err := s.store.Devices(ctx, db.DeviceFilter{
		Query: query, Status: status, Offset: (pageNum - 1) * fleetPageSize, Limit: fleetPageSize,
	})
	if err != nil {
		return err
	}
	pageCount := max(1, (total+fleetPageSize-1)/fleetPageSize)
	if pageNum > pageCount {
		// A stale link after devices were removed: show the last page.
		return c.Redirect(http.StatusSeeOther, views.FleetPageURL(query, status, pageCount))
	}
	counts, err := s.store.FleetCounts(ctx)
	if err != nil {
		return err
	}

	now := s.now()
	m := views.FleetPage{
		Page:    s.page(c, "Fleet", views.NavFleet),
		Query:   query,
		Status:  status,
		PageNum: pageNum, PageCount: pageCount, Total: total,
		Online: counts.Online, Offline: counts.Offline, Disabled: counts.Disabled,
		Devices: make([]views.DeviceRow, len(devs)),
	}
	ids := make([]string, len(devs))
	var worst map[string]alert.Severity
	if s.alerts != nil {
		worst = s.alerts.WorstOpen()
	}
	for i, d := range devs {
		m.Devices[i] = views.DeviceRow{
			ID: d.DeviceID, Name: d.Name, Status: d.Status(now), LastActivity: d.LastActivity, Tags: viewTags(d.Tags),
			Worst: string(worst[d.DeviceID]),
		}
		ids[i] = d.DeviceID
	}
	if s.live != nil {
		m.LiveURL = fleetStreamURL(ids)
		m.MessagesPerMinute = float64(s.live.MessagesPerMinute())
	}
	return s.render(c, http.StatusOK, views.FleetView(m))
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
