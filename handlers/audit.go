package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/views"
)

const auditPageSize = 100

// auditFilter reads the filters shared by the audit page and API: actor and
// target match part of the field in any letter case, action by prefix,
// before pages back by id.
func auditFilter(c echo.Context) (db.AuditFilter, error) {
	f := db.AuditFilter{
		ActorContains:  strings.TrimSpace(c.QueryParam("actor")),
		Action:         strings.TrimSpace(c.QueryParam("action")),
		TargetContains: strings.TrimSpace(c.QueryParam("target")),
		Limit:          auditPageSize,
	}
	for _, v := range []struct {
		name, value string
		max         int
	}{{"actor", f.ActorContains, db.MaxAuditActor}, {"action", f.Action, db.MaxAuditAction}, {"target", f.TargetContains, db.MaxAuditTarget}} {
		// Stored values are never longer, so such a filter could match nothing.
		if utf8.RuneCountInString(v.value) > v.max {
			return f, errorf(http.StatusBadRequest, "%s must be at most %d characters", v.name, v.max)
		}
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, errorf(http.StatusBadRequest, "before must be an entry id (a positive whole number)")
		}
		f.BeforeID = n
	}
	limit, err := intParam(c, "limit", auditPageSize, 1, 1000)
	if err != nil {
		return f, err
	}
	f.Limit = limit
	return f, nil
}

// showAudit renders the audit page (admins).
func (s *Server) showAudit(c echo.Context) error {
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	p, err := s.store.ListAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	m := views.AuditPage{
		Page:  s.page(c, "Audit log", views.NavAudit),
		Actor: f.ActorContains, Action: f.Action, Target: f.TargetContains,
		NextBefore: p.NextBefore, WindowEnd: p.WindowEnd, ScanWindow: db.AuditScanWindow,
	}
	for _, e := range p.Entries {
		m.Entries = append(m.Entries, views.AuditRow{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Outcome: e.Outcome, Detail: e.Detail})
	}
	return s.render(c, http.StatusOK, views.AuditView(m))
}

type auditEntryJSON struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail"`
}

// apiListAudit is GET /api/v1/audit (admins): {"entries": […], "nextBefore": id or 0}.
func (s *Server) apiListAudit(c echo.Context) error {
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	p, err := s.store.ListAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]auditEntryJSON, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = auditEntryJSON{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Detail: e.Detail}
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": out, "nextBefore": p.NextBefore})
}
