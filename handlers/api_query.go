package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/query"
	"fieldhub/registry"
)

// queryRequest is the body of POST /api/v1/devices/query.
type queryRequest struct {
	Query        string `json:"query"`
	PageSize     int    `json:"pageSize"`
	Continuation string `json:"continuation"`
}

// queriedDeviceJSON is a device a SELECT * selected: the device as the API
// lists it, its connection state as Azure names it, and its twin.
type queriedDeviceJSON struct {
	deviceJSON
	ConnectionState string            `json:"connectionState"`
	Twin            commands.TwinView `json:"twin"`
}

// queryErrorJSON is a refused query: what is wrong and, for a mistake in
// the text, where (1-based line and column in characters, byte offset).
type queryErrorJSON struct {
	Error  string `json:"error"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Offset *int   `json:"offset,omitempty"`
	Hint   string `json:"hint,omitempty"`
}

func (s *Server) apiQueryDevices(c echo.Context) error {
	var req queryRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if len(req.Query) > query.MaxLength {
		return errorf(http.StatusRequestEntityTooLarge, "query is %d bytes; at most %d are allowed", len(req.Query), query.MaxLength)
	}
	res, err := s.devices.Query(c.Request().Context(), registry.QueryRequest{
		Text: req.Query, PageSize: req.PageSize, Continuation: req.Continuation})
	if qe := queryError(err); qe != nil {
		return c.JSON(http.StatusUnprocessableEntity, qe)
	}
	if err != nil {
		return err
	}
	out := map[string]any{"aggregate": res.Query.Aggregate()}
	if res.Query.Star {
		items := make([]queriedDeviceJSON, len(res.Devices))
		for i, qd := range res.Devices {
			items[i] = s.queriedDeviceJSON(c, qd)
		}
		out["items"] = items
	} else {
		out["items"] = res.Rows
	}
	if res.Continuation != "" {
		out["continuation"] = res.Continuation
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) queriedDeviceJSON(c echo.Context, qd db.QueriedDevice) queriedDeviceJSON {
	conn := "Disconnected"
	if qd.Device.Connected {
		conn = "Connected"
	}
	return queriedDeviceJSON{deviceJSON: s.deviceJSON(c, qd.Device), ConnectionState: conn, Twin: commands.NewTwinView(qd.Twin)}
}

// queryError is the body of a 422 for a query the hub refuses, nil for any
// other error.
func queryError(err error) *queryErrorJSON {
	var pe *query.Error
	var le *registry.QueryLimitError
	switch {
	case errors.As(err, &pe):
		off := pe.Offset
		return &queryErrorJSON{Error: pe.Error(), Line: pe.Line, Column: pe.Column, Offset: &off, Hint: pe.Hint}
	case errors.As(err, &le):
		return &queryErrorJSON{Error: le.Reason}
	case errors.Is(err, registry.ErrQueryTimeout):
		return &queryErrorJSON{Error: err.Error()}
	}
	return nil
}
