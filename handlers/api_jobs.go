package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/live"
	"fieldhub/storage"
)

// createJobRequest is the body of POST /api/v1/jobs.
type createJobRequest struct {
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Query            string          `json:"query"`
	Method           *jobs.Method    `json:"method"`
	Patch            json.RawMessage `json:"patch"`
	Message          *jobs.Message   `json:"message"`
	StartAt          *time.Time      `json:"startAt"`
	MaxConcurrency   int             `json:"maxConcurrency"`
	TimeoutInSeconds int             `json:"timeoutInSeconds"`
}

func (r createJobRequest) spec() jobs.Spec {
	spec := jobs.Spec{ID: r.ID, Type: r.Type, Query: r.Query, Method: r.Method, Patch: r.Patch, Message: r.Message,
		MaxConcurrency: r.MaxConcurrency, DeviceTimeout: time.Duration(r.TimeoutInSeconds) * time.Second}
	if string(r.Patch) == "null" {
		spec.Patch = nil
	}
	if r.StartAt != nil {
		spec.StartAt = *r.StartAt
	}
	return spec
}

func (s *Server) apiCreateJob(c echo.Context) error {
	var req createJobRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := checkRange("timeoutInSeconds", req.TimeoutInSeconds, 0, int(jobs.MaxDeviceTimeout/time.Second), ""); err != nil {
		return err
	}
	j, err := s.jobs.Create(c.Request().Context(), actor(c), req.spec())
	if err != nil {
		return jobError(c, err)
	}
	return c.JSON(http.StatusCreated, jobs.NewView(j))
}

// jobError answers a refused job: 422 with where a query mistake is, 429
// when too many jobs are active.
func jobError(c echo.Context, err error) error {
	var inv *jobs.InvalidError
	switch {
	case errors.As(err, &inv):
		return errorf(http.StatusUnprocessableEntity, "%s", inv.Reason)
	case errors.Is(err, jobs.ErrTooManyJobs):
		return &Error{Status: http.StatusTooManyRequests, Message: err.Error(), RetryAfter: 60}
	}
	if qe := queryError(err); qe != nil {
		return c.JSON(http.StatusUnprocessableEntity, qe)
	}
	return err
}

var jobStatuses = []string{db.JobScheduled, db.JobRunning, db.JobCompleted, db.JobCancelled, db.JobFailed}

var jobDeviceStatuses = []string{db.JobDevicePending, db.JobDeviceRunning, db.JobDeviceSucceeded, db.JobDeviceFailed, db.JobDeviceCancelled}

func statusParam(c echo.Context, allowed []string) (string, error) {
	v := c.QueryParam("status")
	if v == "" {
		return "", nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", errorf(http.StatusBadRequest, "status must be one of %v", allowed)
}

func (s *Server) apiListJobs(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, jobs.KeepFinished+jobs.MaxActive)
	if err != nil {
		return err
	}
	status, err := statusParam(c, jobStatuses)
	if err != nil {
		return err
	}
	list, err := s.jobs.Jobs(c.Request().Context(), db.JobFilter{Status: status, Limit: limit})
	if err != nil {
		return err
	}
	out := make([]jobs.View, len(list))
	for i, j := range list {
		out[i] = jobs.NewView(j)
	}
	return c.JSON(http.StatusOK, map[string]any{"jobs": out})
}

// maxJobDevicesPage bounds a page of a job's devices.
const maxJobDevicesPage = 1000

func (s *Server) apiShowJob(c echo.Context) error {
	ctx := c.Request().Context()
	limit, err := intParam(c, "limit", 100, 1, maxJobDevicesPage)
	if err != nil {
		return err
	}
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
	devs, err := s.jobs.Devices(ctx, j.ID, db.JobDeviceFilter{Status: status, After: c.QueryParam("after"), Limit: limit + 1})
	if err != nil {
		return err
	}
	out := map[string]any{"job": jobs.NewView(j)}
	if len(devs) > limit {
		devs = devs[:limit]
		out["next"] = devs[limit-1].DeviceID
	}
	views := make([]jobs.DeviceView, len(devs))
	for i, d := range devs {
		views[i] = jobs.NewDeviceView(d)
	}
	out["devices"] = views
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiCancelJob(c echo.Context) error {
	j, err := s.jobs.Cancel(c.Request().Context(), actor(c), c.Param("id"))
	switch {
	case errors.Is(err, storage.ErrConflict):
		return errorf(http.StatusConflict, "job %s has finished already; only a scheduled or running job can be cancelled", c.Param("id"))
	case errors.Is(err, storage.ErrNotFound):
		return errorf(http.StatusNotFound, "job %s not found", c.Param("id"))
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, jobs.NewView(j))
}

// streamJobs serves jobs' progress (GET /api/v1/jobs/events).
func (s *Server) streamJobs(c echo.Context) error {
	if s.live == nil {
		return errorf(http.StatusServiceUnavailable, "live streams are not running")
	}
	last, err := live.LastEventID(c.Request())
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	s.endStream(c, s.live.ServeJobs(c.Response(), c.Request(), last))
	return nil
}
