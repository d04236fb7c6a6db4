package handlers

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/serviceapi"
)

// Jobs v2 of the service API, backed by Fieldhub's jobs: they run, show
// and can be cancelled on the Jobs page like any other.

func (s *Server) svcCreateJob(c echo.Context) error {
	body, err := readServiceBody(c, serviceapi.MaxJobBody)
	if err != nil {
		return err
	}
	spec, err := serviceapi.ParseJob(body, c.Param("id"))
	if err != nil {
		return err
	}
	j, err := s.jobs.Create(c.Request().Context(), serviceActor(c), spec)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewJobResponse(j, 0))
}

func (s *Server) svcGetJob(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := s.jobs.Job(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewJobResponse(j, s.runningJobDevices(ctx, j)))
}

// runningJobDevices counts the devices whose call is under way (at most
// the job's concurrency); 0 when the count fails, since it is a figure to
// show, not a reason to fail the request.
func (s *Server) runningJobDevices(ctx context.Context, j db.Job) int {
	if j.Status != db.JobRunning {
		return 0
	}
	devs, err := s.jobs.Devices(ctx, j.ID, db.JobDeviceFilter{Status: db.JobDeviceRunning, Limit: jobs.MaxConcurrency})
	if err != nil {
		s.log.Warn("count a job's running devices", "job", j.ID, "err", err)
		return 0
	}
	return len(devs)
}

func (s *Server) svcCancelJob(c echo.Context) error {
	j, err := s.jobs.Cancel(c.Request().Context(), serviceActor(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewJobResponse(j, 0))
}

// svcQueryJobs lists jobs, newest first, filtered by jobType and
// jobStatus, a page (x-ms-max-item-count) at a time (x-ms-continuation).
func (s *Server) svcQueryJobs(c echo.Context) error {
	typ, status, err := serviceapi.JobFilter(c.QueryParam("jobType"), c.QueryParam("jobStatus"))
	if err != nil {
		return err
	}
	size, err := serviceapi.PageSize(c.Request().Header.Get("x-ms-max-item-count"))
	if err != nil {
		return err
	}
	offset, err := serviceapi.ParseJobContinuation(c.Request().Header.Get("x-ms-continuation"))
	if err != nil {
		return err
	}
	// The hub keeps a bounded number of jobs, so the list is read whole
	// and filtered here.
	list, err := s.jobs.Jobs(c.Request().Context(), db.JobFilter{Status: status, Limit: serviceapi.MaxJobOffset})
	if err != nil {
		return err
	}
	matched := list[:0]
	for _, j := range list {
		if typ == "" || j.Type == typ {
			matched = append(matched, j)
		}
	}
	offset = min(offset, len(matched))
	end := min(offset+size, len(matched))
	out := make([]serviceapi.JobResponse, 0, end-offset)
	for _, j := range matched[offset:end] {
		out = append(out, serviceapi.NewJobResponse(j, 0))
	}
	h := c.Response().Header()
	h.Set("x-ms-item-type", serviceapi.ItemJobResponse)
	if end < len(matched) {
		h.Set("x-ms-continuation", serviceapi.JobContinuation(end))
	}
	return c.JSON(http.StatusOK, out)
}
