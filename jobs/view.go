package jobs

import (
	"encoding/json"
	"time"

	"fieldhub/db"
)

// View is a job as the API, the live jobs stream and the Jobs page show it.
type View struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Query  string `json:"query"`
	Status string `json:"status"`
	Actor  string `json:"createdBy"`
	// Method, Patch or Message: what it runs, by Type.
	Method           json.RawMessage `json:"method,omitempty"`
	Patch            json.RawMessage `json:"patch,omitempty"`
	Message          json.RawMessage `json:"message,omitempty"`
	MaxConcurrency   int             `json:"maxConcurrency"`
	TimeoutInSeconds int             `json:"timeoutInSeconds"`
	CreatedAt        time.Time       `json:"createdAt"`
	StartAt          time.Time       `json:"startAt"`
	StartedAt        *time.Time      `json:"startedAt"`
	FinishedAt       *time.Time      `json:"finishedAt"`
	// DurationMs is how long it ran (so far, while it runs).
	DurationMs *int64 `json:"durationMs"`
	Counts     Counts `json:"counts"`
	Error      string `json:"error,omitempty"`
}

// Counts are a job's devices by outcome; pending includes calls under way.
type Counts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// NewView shows a job; now is the time a running job's duration runs to.
func NewView(j db.Job) View {
	v := View{ID: j.ID, Type: j.Type, Query: j.Query, Status: j.Status, Actor: j.Actor,
		MaxConcurrency: j.MaxConcurrency, TimeoutInSeconds: int(j.DeviceTimeout / time.Second),
		CreatedAt: j.CreatedAt, StartAt: j.StartAt, Error: j.Error,
		Counts: Counts{Total: j.Total, Pending: j.Pending(), Succeeded: j.Succeeded, Failed: j.Failed, Cancelled: j.Cancelled}}
	switch j.Type {
	case db.JobMethod:
		v.Method = j.Payload
	case db.JobTwin:
		v.Patch = j.Payload
	case db.JobC2D:
		v.Message = j.Payload
	}
	if !j.StartedAt.IsZero() {
		t := j.StartedAt
		v.StartedAt = &t
		end := time.Now()
		if !j.FinishedAt.IsZero() {
			end = j.FinishedAt
		}
		d := end.Sub(j.StartedAt).Milliseconds()
		v.DurationMs = &d
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		v.FinishedAt = &t
	}
	return v
}

// DeviceView is one device's outcome in a job.
type DeviceView struct {
	DeviceID   string          `json:"deviceId"`
	Status     string          `json:"status"`
	StartedAt  *time.Time      `json:"startedAt,omitempty"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
	DurationMs *int64          `json:"durationMs,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// NewDeviceView shows a device's outcome.
func NewDeviceView(d db.JobDevice) DeviceView {
	v := DeviceView{DeviceID: d.DeviceID, Status: d.Status, Result: d.Result, Error: d.Error}
	if !d.StartedAt.IsZero() {
		t := d.StartedAt
		v.StartedAt = &t
	}
	if !d.FinishedAt.IsZero() {
		t := d.FinishedAt
		v.FinishedAt = &t
		if !d.StartedAt.IsZero() {
			ms := d.FinishedAt.Sub(d.StartedAt).Milliseconds()
			v.DurationMs = &ms
		}
	}
	return v
}
