package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/views"
)

// showImport is the bulk import page (operators preview, admins apply).
func (s *Server) showImport(c echo.Context) error {
	return s.render(c, http.StatusOK, views.ImportView(s.importPage(c)))
}

func (s *Server) importPage(c echo.Context) views.ImportPage {
	p, _ := principal(c)
	return views.ImportPage{Page: s.page(c, "Import devices", views.NavImport), CanApply: p.IsAdmin()}
}

// importDevices is the import page's upload: a preview, or (admins) the
// import itself. A file refused as a whole, or rows with errors, show the
// page again with what is wrong.
func (s *Server) importDevices(c echo.Context) error {
	dryRun := c.QueryParam("dryRun") != "false"
	m := s.importPage(c)
	if !dryRun && !m.CanApply {
		return errorf(http.StatusForbidden, "applying an import needs the admin role")
	}
	out, status, err := s.runImport(c, dryRun)
	var he *Error
	if errors.As(err, &he) && he.Status < 500 {
		m.Error = he.Message
		return s.render(c, he.Status, views.ImportView(m))
	}
	if err != nil {
		return err
	}
	r := &views.ImportResult{DryRun: out.DryRun, Applied: out.Applied, Rows: out.Rows, Created: out.Created,
		Updated: out.Updated, Unchanged: out.Unchanged, ErrorRows: out.ErrorRows, More: out.More, CredentialsReplaced: out.CredentialsReplaced}
	for _, e := range out.Errors {
		r.Errors = append(r.Errors, views.ImportError{Row: e.Row, Column: e.Column, Message: e.Message})
	}
	for _, d := range out.Devices {
		r.Devices = append(r.Devices, views.ImportRow{Row: d.Row, ID: d.ID, Name: d.Name, Tags: db.FormatTags(d.Tags),
			Enabled: d.Enabled, Action: d.Action, ReplacesCredentials: d.ReplacesCredentials})
	}
	m.Result = r
	return s.render(c, status, views.ImportView(m))
}
