package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/internal/testkit"
)

type jobJSON struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	Counts struct {
		Total, Pending, Succeeded, Failed, Cancelled int
	} `json:"counts"`
	Patch     json.RawMessage `json:"patch"`
	CreatedBy string          `json:"createdBy"`
	Error     string          `json:"error"`
}

type jobPage struct {
	Job     jobJSON `json:"job"`
	Devices []struct {
		DeviceID   string          `json:"deviceId"`
		Status     string          `json:"status"`
		Result     json.RawMessage `json:"result"`
		Error      string          `json:"error"`
		DurationMs *int64          `json:"durationMs"`
	} `json:"devices"`
	Next string `json:"next"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return v
}

func TestJobsAPI(t *testing.T) {
	h := queryHub(t)
	body := `{"type": "twin", "query": "tags.site = 'berlin'", "patch": {"intervalSeconds": 30}, "maxConcurrency": 4}`
	if resp := h.call(db.RoleViewer, http.MethodPost, "/api/v1/jobs", body); resp.status != http.StatusForbidden {
		t.Errorf("viewer creates a job: %d", resp.status)
	}
	resp := h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs", body)
	if resp.status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.status, resp.body)
	}
	j := decode[jobJSON](t, resp)
	if j.Type != "twin" || j.Counts.Total != 9 || j.CreatedBy != "token:operator-token" || string(j.Patch) != `{"intervalSeconds":30}` {
		t.Errorf("created %+v", j)
	}
	var page jobPage
	testkit.WaitFor(t, "the job completes", func() bool {
		page = decode[jobPage](t, h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs/"+j.ID+"?limit=4", ""))
		return page.Job.Status == db.JobCompleted
	})
	if page.Job.Counts.Succeeded != 9 || len(page.Devices) != 4 || page.Next != "q-09" || page.Devices[0].DeviceID != "q-00" {
		t.Errorf("page 1: %+v", page)
	}
	if d := page.Devices[0]; d.Status != db.JobDeviceSucceeded || string(d.Result) != `{"desiredVersion":2}` || d.DurationMs == nil {
		t.Errorf("q-00 outcome %+v", d)
	}
	page = decode[jobPage](t, h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs/"+j.ID+"?limit=4&after="+page.Next, ""))
	if len(page.Devices) != 4 || page.Devices[0].DeviceID != "q-12" {
		t.Errorf("page 2: %+v", page.Devices)
	}
	tw, _ := h.db.Twin(context.Background(), "q-03")
	if fmt.Sprint(tw.Desired["intervalSeconds"]) != "30" {
		t.Errorf("q-03 desired = %v", tw.Desired)
	}

	// Scheduled, listed, cancelled.
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	resp = h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs",
		`{"id": "later-1", "type": "method", "query": "", "method": {"name": "reboot"}, "startAt": "`+start+`"}`)
	if resp.status != http.StatusCreated || decode[jobJSON](t, resp).Status != db.JobScheduled {
		t.Fatalf("scheduled: %d %s", resp.status, resp.body)
	}
	list := decode[struct{ Jobs []jobJSON }](t, h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs", ""))
	if len(list.Jobs) != 2 || list.Jobs[0].ID != "later-1" {
		t.Errorf("list = %+v", list)
	}
	list = decode[struct{ Jobs []jobJSON }](t, h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs?status=completed", ""))
	if len(list.Jobs) != 1 || list.Jobs[0].ID != j.ID {
		t.Errorf("completed = %+v", list)
	}
	if resp := h.call(db.RoleViewer, http.MethodPost, "/api/v1/jobs/later-1/cancel", ""); resp.status != http.StatusForbidden {
		t.Errorf("viewer cancels: %d", resp.status)
	}
	resp = h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs/later-1/cancel", "")
	if resp.status != http.StatusOK || decode[jobJSON](t, resp).Status != db.JobCancelled {
		t.Errorf("cancel: %d %s", resp.status, resp.body)
	}
	for path, want := range map[string]int{
		"/api/v1/jobs/later-1/cancel": http.StatusConflict,
		"/api/v1/jobs/nope/cancel":    http.StatusNotFound,
	} {
		if resp := h.call(db.RoleOperator, http.MethodPost, path, ""); resp.status != want {
			t.Errorf("POST %s: %d %s, want %d", path, resp.status, resp.body, want)
		}
	}
	if resp := h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs/nope", ""); resp.status != http.StatusNotFound {
		t.Errorf("unknown job: %d", resp.status)
	}
	// A job's end is audited after its status changes: awaited.
	actions := map[string]int{}
	testkit.WaitFor(t, "the finished job in the audit log", func() bool {
		entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Limit: 100})
		clear(actions)
		for _, e := range entries {
			actions[e.Action]++
		}
		return actions["job.finish"] > 0
	})
	if actions["job.create"] != 2 || actions["job.cancel"] != 1 || actions["job.finish"] != 1 || actions["twin.desired"] != 9 {
		t.Errorf("audit actions %v", actions)
	}
}

func TestJobsAPIRefusals(t *testing.T) {
	h := queryHub(t)
	tests := []struct {
		name, body string
		status     int
		contains   string
	}{
		{"unknown type", `{"type": "reboot", "method": {"name": "x"}}`, 422, "type must be"},
		{"no payload", `{"type": "method"}`, 422, "one thing"},
		{"query mistake", `{"type": "method", "query": "tags.site = ", "method": {"name": "x"}}`, 422, "column"},
		{"bad concurrency", `{"type": "method", "method": {"name": "x"}, "maxConcurrency": 1000}`, 422, "maxConcurrency"},
		{"bad timeout", `{"type": "method", "method": {"name": "x"}, "timeoutInSeconds": 100000}`, 422, "timeoutInSeconds"},
		{"unknown field", `{"type": "method", "method": {"name": "x"}, "devices": []}`, 400, "devices"},
		{"bad start", `{"type": "method", "method": {"name": "x"}, "startAt": "tomorrow"}`, 400, "JSON"},
		{"bad status filter", ``, 400, "status must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp response
			if tt.body == "" {
				resp = h.call(db.RoleViewer, http.MethodGet, "/api/v1/jobs?status=done", "")
			} else {
				resp = h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs", tt.body)
			}
			if resp.status != tt.status || !strings.Contains(string(resp.body), tt.contains) {
				t.Errorf("%d %s, want %d about %q", resp.status, resp.body, tt.status, tt.contains)
			}
		})
	}
	// At most 10 active jobs: the eleventh is 429 with Retry-After.
	for i := range 10 {
		resp := h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs",
			fmt.Sprintf(`{"type": "c2d", "message": {"body": "x"}, "startAt": "%s"}`, time.Now().Add(time.Duration(i+1)*time.Hour).UTC().Format(time.RFC3339)))
		if resp.status != http.StatusCreated {
			t.Fatalf("job %d: %d %s", i, resp.status, resp.body)
		}
	}
	resp := h.call(db.RoleOperator, http.MethodPost, "/api/v1/jobs", `{"type": "c2d", "message": {"body": "x"}}`)
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" {
		t.Errorf("eleventh job: %d %s", resp.status, resp.body)
	}
}
