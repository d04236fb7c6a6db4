package serviceapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/jobs"
)

// MethodRequest is a direct method call as IoT Hub's service API takes it
// (POST /twins/{id}/methods, a job's cloudToDeviceMethod).
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// MaxMethodBody bounds POST /twins/{id}/methods: the largest payload and
// room for the rest.
const MaxMethodBody = commands.MaxMethodPayload + 4*1024

// ParseMethod reads the body of POST /twins/{id}/methods. The limits
// (name, payload size, timeouts) are checked by the command service.
func ParseMethod(body []byte) (commands.MethodCall, error) {
	var m MethodRequest
	if err := decodeJSON(body, &m); err != nil {
		return commands.MethodCall{}, err
	}
	return m.call()
}

func (m MethodRequest) call() (commands.MethodCall, error) {
	if m.MethodName == "" {
		return commands.MethodCall{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "methodName is required")
	}
	if m.ResponseTimeoutInSeconds < 0 || m.ConnectTimeoutInSeconds < 0 {
		return commands.MethodCall{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "responseTimeoutInSeconds and connectTimeoutInSeconds cannot be negative")
	}
	// Bounded here so that the multiplication below cannot overflow; the
	// command service applies the real limits.
	if m.ResponseTimeoutInSeconds > 86400 || m.ConnectTimeoutInSeconds > 86400 {
		return commands.MethodCall{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "responseTimeoutInSeconds must be from %d to %d and connectTimeoutInSeconds from 0 to %d",
			int(commands.MinResponseTimeout/time.Second), int(commands.MaxResponseTimeout/time.Second), int(commands.MaxConnectTimeout/time.Second))
	}
	return commands.MethodCall{Name: m.MethodName, Payload: m.Payload,
		ResponseTimeout: time.Duration(m.ResponseTimeoutInSeconds) * time.Second,
		ConnectTimeout:  time.Duration(m.ConnectTimeoutInSeconds) * time.Second}, nil
}

// MethodResponse is a device's answer, as IoT Hub returns it.
type MethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// Job types of jobs v2.
const (
	JobTypeMethod  = "scheduleDeviceMethod"
	JobTypeTwin    = "scheduleUpdateTwin"
	jobTypeUnknown = "unknown" // Fieldhub's cloud-to-device jobs, which IoT Hub has not
)

// JobRequest is the body of PUT /jobs/v2/{id}.
type JobRequest struct {
	JobID                     string         `json:"jobId"`
	Type                      string         `json:"type"`
	CloudToDeviceMethod       *MethodRequest `json:"cloudToDeviceMethod"`
	UpdateTwin                *TwinInput     `json:"updateTwin"`
	QueryCondition            string         `json:"queryCondition"`
	StartTime                 *string        `json:"startTime"`
	MaxExecutionTimeInSeconds int64          `json:"maxExecutionTimeInSeconds"`
}

// MaxJobBody bounds PUT /jobs/v2/{id}: a twin patch or a method payload,
// a query and the rest.
const MaxJobBody = MaxTwinBody

// MaxExecutionTime bounds maxExecutionTimeInSeconds (IoT Hub's bound too).
const MaxExecutionTime = 48 * 3600

// ParseJob reads the body of PUT /jobs/v2/{id} into a Fieldhub job. The
// job's limits (query, payload, concurrency, schedule) are checked by the
// jobs service when it is created.
func ParseJob(body []byte, pathID string) (jobs.Spec, error) {
	var r JobRequest
	if err := decodeJSON(body, &r); err != nil {
		return jobs.Spec{}, err
	}
	if r.JobID != "" && r.JobID != pathID {
		return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "jobId %q in the body does not match %q in the path", clip(r.JobID), clip(pathID))
	}
	spec := jobs.Spec{ID: pathID, Query: r.QueryCondition}
	if strings.TrimSpace(r.QueryCondition) == "" {
		return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "queryCondition is required (a condition such as deviceId IN ['a','b'] or tags.site = 'north')")
	}
	if r.MaxExecutionTimeInSeconds < 0 || r.MaxExecutionTimeInSeconds > MaxExecutionTime {
		return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "maxExecutionTimeInSeconds must be from 0 to %d", MaxExecutionTime)
	}
	if r.StartTime != nil && *r.StartTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *r.StartTime)
		if err != nil {
			return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "startTime %q is not an ISO 8601 time like 2026-01-02T03:04:05Z", clip(*r.StartTime))
		}
		spec.StartAt = t
	}
	switch {
	case strings.EqualFold(r.Type, JobTypeMethod):
		if r.CloudToDeviceMethod == nil {
			return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "a scheduleDeviceMethod job needs cloudToDeviceMethod")
		}
		call, err := r.CloudToDeviceMethod.call()
		if err != nil {
			return jobs.Spec{}, err
		}
		spec.Type = db.JobMethod
		spec.Method = &jobs.Method{Name: call.Name, Payload: call.Payload,
			ResponseTimeoutInSeconds: int(call.ResponseTimeout / time.Second), ConnectTimeoutInSeconds: int(call.ConnectTimeout / time.Second)}
		// Each device's call gets its response and connect timeouts, within
		// the jobs' bounds.
		timeout := call.ResponseTimeout + call.ConnectTimeout
		if call.ResponseTimeout == 0 {
			timeout += commands.DefaultResponseTimeout
		}
		spec.DeviceTimeout = min(max(timeout+5*time.Second, jobs.MinDeviceTimeout), jobs.MaxDeviceTimeout)
	case strings.EqualFold(r.Type, JobTypeTwin):
		if r.UpdateTwin == nil {
			return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "a scheduleUpdateTwin job needs updateTwin")
		}
		in, err := parseJobTwin(r.UpdateTwin)
		if err != nil {
			return jobs.Spec{}, err
		}
		if len(in.Tags) > 0 {
			return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "a Fieldhub twin job sets desired properties only, updateTwin.tags must be empty (change tags with PATCH /twins/{id})")
		}
		patch, err := in.DesiredPatch(nil, false)
		if err != nil {
			return jobs.Spec{}, err
		}
		if patch == nil {
			return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "updateTwin.properties.desired is required: the desired properties to set")
		}
		spec.Type, spec.Patch = db.JobTwin, patch
	default:
		return jobs.Spec{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "type must be %s or %s, not %q", JobTypeMethod, JobTypeTwin, clip(r.Type))
	}
	return spec, nil
}

// parseJobTwin checks updateTwin as ParseTwin checks a twin body.
func parseJobTwin(t *TwinInput) (TwinInput, error) {
	b, err := json.Marshal(struct {
		Tags       map[string]json.RawMessage `json:"tags,omitempty"`
		Properties any                        `json:"properties,omitempty"`
	}{t.Tags, t.Properties})
	if err != nil {
		return TwinInput{}, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "updateTwin: %s", clip(err.Error()))
	}
	return ParseTwin(b)
}

// JobResponse is a job as jobs v2 shows it.
type JobResponse struct {
	JobID                     string              `json:"jobId"`
	QueryCondition            string              `json:"queryCondition"`
	CreatedTime               string              `json:"createdTime"`
	StartTime                 string              `json:"startTime"`
	EndTime                   *string             `json:"endTime"`
	MaxExecutionTimeInSeconds int64               `json:"maxExecutionTimeInSeconds"`
	Type                      string              `json:"type"`
	CloudToDeviceMethod       *MethodRequest      `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *JobTwin            `json:"updateTwin,omitempty"`
	Status                    string              `json:"status"`
	FailureReason             string              `json:"failureReason,omitempty"`
	StatusMessage             string              `json:"statusMessage,omitempty"`
	DeviceJobStatistics       DeviceJobStatistics `json:"deviceJobStatistics"`
}

// JobTwin is a twin job's patch, as IoT Hub shows it back.
type JobTwin struct {
	ETag       string `json:"etag"`
	Properties struct {
		Desired json.RawMessage `json:"desired"`
	} `json:"properties"`
}

// DeviceJobStatistics are a job's counts.
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// JobStatus is a job's status as jobs v2 names it.
func JobStatus(status string) string {
	switch status {
	case db.JobScheduled:
		return "scheduled"
	case db.JobRunning, db.JobCompleted, db.JobCancelled, db.JobFailed:
		return status
	}
	return "unknown"
}

// JobType is a job's type as jobs v2 names it.
func JobType(t string) string {
	switch t {
	case db.JobMethod:
		return JobTypeMethod
	case db.JobTwin:
		return JobTypeTwin
	}
	return jobTypeUnknown
}

// NewJobResponse shows a job as jobs v2 does; running is how many of its
// devices' calls are under way.
func NewJobResponse(j db.Job, running int) JobResponse {
	out := JobResponse{
		JobID: j.ID, QueryCondition: j.Query, CreatedTime: Time(j.CreatedAt), StartTime: Time(j.StartAt),
		Type: JobType(j.Type), Status: JobStatus(j.Status),
		DeviceJobStatistics: DeviceJobStatistics{
			DeviceCount: j.Total, FailedCount: j.Failed + j.Cancelled, SucceededCount: j.Succeeded,
			RunningCount: running, PendingCount: max(j.Pending()-running, 0),
		},
	}
	if !j.FinishedAt.IsZero() {
		end := Time(j.FinishedAt)
		out.EndTime = &end
	}
	if j.Status == db.JobFailed {
		out.FailureReason = j.Error
	}
	if j.Status == db.JobCancelled {
		out.StatusMessage = "cancelled"
	}
	switch j.Type {
	case db.JobMethod:
		var m jobs.Method
		if json.Unmarshal(j.Payload, &m) == nil {
			out.CloudToDeviceMethod = &MethodRequest{MethodName: m.Name, Payload: m.Payload,
				ResponseTimeoutInSeconds: m.ResponseTimeoutInSeconds, ConnectTimeoutInSeconds: m.ConnectTimeoutInSeconds}
		}
	case db.JobTwin:
		t := &JobTwin{ETag: "*"}
		t.Properties.Desired = j.Payload
		out.UpdateTwin = t
	}
	return out
}

// JobFilter reads the jobType and jobStatus of GET /jobs/v2/query into
// Fieldhub's type and status ("" for any).
func JobFilter(jobType, jobStatus string) (typ, status string, err error) {
	switch {
	case jobType == "":
	case strings.EqualFold(jobType, JobTypeMethod):
		typ = db.JobMethod
	case strings.EqualFold(jobType, JobTypeTwin):
		typ = db.JobTwin
	default:
		return "", "", Errorf(http.StatusBadRequest, CodeArgumentInvalid, "jobType must be %s or %s, not %q", JobTypeMethod, JobTypeTwin, clip(jobType))
	}
	switch s := strings.ToLower(jobStatus); s {
	case "":
	case "scheduled", "queued", "enqueued":
		status = db.JobScheduled
	case db.JobRunning, db.JobCompleted, db.JobCancelled, db.JobFailed:
		status = s
	default:
		return "", "", Errorf(http.StatusBadRequest, CodeArgumentInvalid, "jobStatus must be one of scheduled, queued, running, completed, failed, cancelled, not %q", clip(jobStatus))
	}
	return typ, status, nil
}

// Paging of the service API's lists.
const (
	// DefaultPageSize and MaxPageSize bound x-ms-max-item-count.
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// MaxContinuation bounds an x-ms-continuation header.
	MaxContinuation = 1024
	// MaxJobOffset is the furthest a job list pages: more jobs than the hub
	// keeps (jobs.KeepFinished finished, jobs.MaxActive active).
	MaxJobOffset = 2 * jobs.KeepFinished
)

// PageSize reads x-ms-max-item-count: "" is DefaultPageSize.
func PageSize(header string) (int, error) {
	if header == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(header)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "x-ms-max-item-count must be a whole number from 1 to %d", MaxPageSize)
	}
	return n, nil
}

// CheckContinuation bounds an x-ms-continuation header before anything
// reads it.
func CheckContinuation(header string) error {
	if len(header) > MaxContinuation {
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "x-ms-continuation is longer than %d bytes: send back the token the hub gave", MaxContinuation)
	}
	return nil
}

const jobContinuationPrefix = "jobs:"

// JobContinuation is the token of the job list page starting at offset.
func JobContinuation(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(jobContinuationPrefix + strconv.Itoa(offset)))
}

// ParseJobContinuation reads a token of JobContinuation ("" is the first
// page, offset 0).
func ParseJobContinuation(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	bad := Errorf(http.StatusBadRequest, CodeArgumentInvalid, "x-ms-continuation is not a token this hub gave for a job list")
	if len(token) > 64 {
		return 0, bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil {
		return 0, bad
	}
	digits, ok := strings.CutPrefix(string(b), jobContinuationPrefix)
	if !ok {
		return 0, bad
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || n > MaxJobOffset || strconv.Itoa(n) != digits {
		return 0, bad
	}
	return n, nil
}
