package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/query"
	"fieldhub/storage"
	"fieldhub/views"
)

// startAtLayout is what <input type="datetime-local"> sends.
const startAtLayout = "2006-01-02T15:04"

func jobRow(j db.Job) views.JobRow {
	r := views.JobRow{ID: j.ID, Type: j.Type, Query: j.Query, Status: j.Status, CreatedBy: j.Actor, Error: j.Error,
		CreatedAt: j.CreatedAt, StartAt: j.StartAt, Total: j.Total, Pending: j.Pending(), Succeeded: j.Succeeded,
		Failed: j.Failed, Cancelled: j.Cancelled}
	switch j.Type {
	case db.JobMethod:
		var m jobs.Method
		_ = json.Unmarshal(j.Payload, &m)
		r.What = "method " + m.Name
	case db.JobTwin:
		r.What = "desired patch"
	default:
		r.What = "message"
	}
	if !j.StartedAt.IsZero() {
		end := time.Now()
		if !j.FinishedAt.IsZero() {
			end = j.FinishedAt
		}
		r.Duration = end.Sub(j.StartedAt)
	}
	return r
}

func (s *Server) showJobs(c echo.Context) error {
	// The fleet page's query mode links here with its condition.
	form := views.JobForm{Query: c.QueryParam("query")}
	if len(form.Query) > query.MaxLength {
		form.Query = ""
	}
	return s.renderJobs(c, http.StatusOK, form)
}

func (s *Server) renderJobs(c echo.Context, status int, form views.JobForm) error {
	list, err := s.jobs.Jobs(c.Request().Context(), db.JobFilter{Limit: 100})
	if err != nil {
		return err
	}
	p, _ := principal(c)
	m := views.JobsPage{Page: s.page(c, "Jobs", views.NavJobs), CanEdit: p.CanCommand(), Form: form}
	if s.live != nil {
		m.LiveURL = "/api/v1/jobs/events"
	}
	for _, j := range list {
		m.Jobs = append(m.Jobs, jobRow(j))
	}
	return s.render(c, status, views.JobsView(m))
}

// createJob is the Jobs page's form. A refused job shows the form again
// with what was typed and what is wrong.
func (s *Server) createJob(c echo.Context) error {
	f := views.JobForm{
		Type: c.FormValue("type"), Query: c.FormValue("query"), MethodName: strings.TrimSpace(c.FormValue("method")),
		MethodPayload: c.FormValue("methodPayload"), Patch: c.FormValue("patch"), MessageBody: c.FormValue("message"),
		StartAt: c.FormValue("startAt"), MaxConcurrency: c.FormValue("maxConcurrency"), TimeoutSeconds: c.FormValue("timeoutInSeconds"),
	}
	spec, err := jobSpec(f)
	if err == nil {
		var j db.Job
		if j, err = s.jobs.Create(c.Request().Context(), actor(c), spec); err == nil {
			return s.redirectWith(c, "/jobs/"+j.ID, fmt.Sprintf("Job %s created for %d devices.", j.ID, j.Total), false)
		}
	}
	var inv *jobs.InvalidError
	switch qe := queryError(err); {
	case qe != nil:
		f.Error = "Query: " + qe.Error
	case errors.As(err, &inv):
		f.Error = inv.Reason
	case errors.Is(err, jobs.ErrTooManyJobs):
		f.Error = err.Error()
	default:
		return err
	}
	return s.renderJobs(c, http.StatusUnprocessableEntity, f)
}

func (s *Server) showJob(c echo.Context) error {
	ctx := c.Request().Context()
	status, err := statusParam(c, jobDeviceStatuses)
	if err != nil {
		return err
	}
	j, err := s.jobs.Job(ctx, c.Param("id"))
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "job %s not found", c.Param("id"))
	}
	if err != nil {
		return err
	}
	const pageSize = 100
	after := c.QueryParam("after")
	devs, err := s.jobs.Devices(ctx, j.ID, db.JobDeviceFilter{Status: status, After: after, Limit: pageSize + 1})
	if err != nil {
		return err
	}
	p, _ := principal(c)
	m := views.JobPage{Page: s.page(c, "Job "+j.ID, views.NavJobs), Job: jobRow(j), Payload: string(j.Payload),
		Filter: status, After: after, CanEdit: p.CanCommand()}
	if s.live != nil {
		m.LiveURL = "/api/v1/jobs/events"
	}
	if len(devs) > pageSize {
		devs = devs[:pageSize]
		m.Next = devs[pageSize-1].DeviceID
	}
	for _, d := range devs {
		row := views.JobDeviceRow{DeviceID: d.DeviceID, Status: d.Status, Result: string(d.Result), Error: d.Error,
			Done: !d.FinishedAt.IsZero()}
		if row.Done && !d.StartedAt.IsZero() {
			row.Duration = d.FinishedAt.Sub(d.StartedAt)
		}
		m.Devices = append(m.Devices, row)
	}
	return s.render(c, http.StatusOK, views.JobView(m))
}

func (s *Server) cancelJob(c echo.Context) error {
	id := c.Param("id")
	_, err := s.jobs.Cancel(c.Request().Context(), actor(c), id)
	switch {
	case errors.Is(err, storage.ErrConflict):
		return s.redirectWith(c, "/jobs/"+id, "The job has finished already.", true)
	case err != nil:
		return err
	}
	return s.redirectWith(c, "/jobs/"+id, fmt.Sprintf("Job %s cancelled.", id), false)
}

// jobSpec reads the Jobs page's form.
func jobSpec(f views.JobForm) (jobs.Spec, error) {
	spec := jobs.Spec{Type: f.Type, Query: f.Query}
	var err error
	if spec.MaxConcurrency, err = formInt("At once", f.MaxConcurrency); err != nil {
		return spec, err
	}
	var timeout int
	if timeout, err = formInt("Timeout per device", f.TimeoutSeconds); err != nil {
		return spec, err
	}
	if timeout < 0 || timeout > int(jobs.MaxDeviceTimeout/time.Second) {
		return spec, &jobs.InvalidError{Reason: fmt.Sprintf("Timeout per device must be from %d to %d seconds", int(jobs.MinDeviceTimeout/time.Second), int(jobs.MaxDeviceTimeout/time.Second))}
	}
	spec.DeviceTimeout = time.Duration(timeout) * time.Second
	if v := strings.TrimSpace(f.StartAt); v != "" {
		t, err := time.Parse(startAtLayout, v)
		if err != nil {
			return spec, &jobs.InvalidError{Reason: "Start at is not a date and time (YYYY-MM-DDTHH:MM, UTC)"}
		}
		spec.StartAt = t
	}
	switch f.Type {
	case db.JobMethod:
		payload := strings.TrimSpace(f.MethodPayload)
		if payload != "" && !json.Valid([]byte(payload)) {
			return spec, &jobs.InvalidError{Reason: "The method's payload is not valid JSON (a string needs quotes)"}
		}
		spec.Method = &jobs.Method{Name: f.MethodName, Payload: json.RawMessage(payload)}
	case db.JobTwin:
		spec.Patch = json.RawMessage(strings.TrimSpace(f.Patch))
		if len(spec.Patch) > 0 && !json.Valid(spec.Patch) {
			return spec, &jobs.InvalidError{Reason: "The patch is not valid JSON"}
		}
	case db.JobC2D:
		spec.Message = &jobs.Message{Body: f.MessageBody}
	}
	return spec, nil
}

func formInt(label, v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &jobs.InvalidError{Reason: label + " must be a whole number"}
	}
	return n, nil
}
