package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/query"
)

// Spec is a job to create.
type Spec struct {
	ID    string // "" for a generated one
	Type  string // db.JobMethod, db.JobTwin or db.JobC2D
	Query string // a condition, or SELECT * FROM devices [WHERE …]
	// One of these, by Type.
	Method         *Method
	Patch          json.RawMessage // a desired-properties patch (JSON object)
	Message        *Message
	StartAt        time.Time     // zero: now
	MaxConcurrency int           // 0: DefaultConcurrency
	DeviceTimeout  time.Duration // 0: DefaultDeviceTimeout
}

// Method is a job's direct method call, stored as the job's payload.
type Method struct {
	Name                     string          `json:"name"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// Message is a job's cloud-to-device message, stored as the job's payload.
type Message struct {
	Body       string            `json:"body"` // sent as its UTF-8 bytes
	Properties map[string]string `json:"properties,omitempty"`
	TTLSeconds int               `json:"ttlSeconds,omitempty"`
}

func (m Method) call() commands.MethodCall {
	return commands.MethodCall{Name: m.Name, Payload: m.Payload,
		ResponseTimeout: time.Duration(m.ResponseTimeoutInSeconds) * time.Second,
		ConnectTimeout:  time.Duration(m.ConnectTimeoutInSeconds) * time.Second}
}

func (m Message) message() commands.Message {
	return commands.Message{Body: []byte(m.Body), Properties: m.Properties, TTL: time.Duration(m.TTLSeconds) * time.Second}
}

// InvalidError says what is wrong with a job; the API answers 422.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalid(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

// ErrTooManyJobs refuses a job while MaxActive are scheduled or running.
var ErrTooManyJobs = errors.New("too many jobs are scheduled or running")

// ParseQuery reads a job's query: a condition (what follows WHERE), or a
// whole SELECT * FROM devices [WHERE …]; "" selects every device. Mistakes
// are *query.Error with their place.
func ParseQuery(text string) (query.Cond, error) {
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return nil, nil
	}
	if len(trimmed) >= 6 && strings.EqualFold(trimmed[:6], "SELECT") {
		q, err := query.Parse(text)
		if err != nil {
			return nil, err
		}
		if n := query.Terms(q.Where); n > query.MaxTerms {
			return nil, invalid("the condition has %d terms (comparisons, functions, IN lists); at most %d are allowed", n, query.MaxTerms)
		}
		if !q.Star || q.Aggregate() || q.Top >= 0 {
			return nil, invalid("a job's query selects devices: SELECT * FROM devices WHERE …, without TOP, columns, COUNT() or GROUP BY (or only the condition)")
		}
		return q.Where, nil
	}
	c, err := query.ParseCondition(text)
	if err != nil {
		return nil, err
	}
	if n := query.Terms(c); n > query.MaxTerms {
		return nil, invalid("the condition has %d terms (comparisons, functions, IN lists); at most %d are allowed", n, query.MaxTerms)
	}
	return c, nil
}

// Create checks a job, stores it and starts it (now, or at its StartAt) on
// behalf of actor. A job to start now selects its devices at once, so that
// one selecting more than MaxDevices is refused before it is stored;
// a scheduled job selects them when it starts.
func (s *Service) Create(ctx context.Context, actor string, spec Spec) (db.Job, error) {
	j, cond, err := s.check(spec)
	if err != nil {
		return db.Job{}, err
	}
	j.Actor = actor
	now := s.cfg.Now()
	startNow := !j.StartAt.After(now)
	if startNow {
		j.StartAt = now
	}
	var devices []string
	if startNow {
		if devices, err = s.selectDevices(ctx, cond); err != nil {
			return db.Job{}, err
		}
	}
	s.create.Lock()
	active, err := s.store.ActiveJobs(ctx)
	if err == nil && len(active) >= s.cfg.MaxActive {
		err = fmt.Errorf("%w: %d of %d; wait for one to finish or cancel one", ErrTooManyJobs, len(active), s.cfg.MaxActive)
	}
	if err == nil {
		j, err = s.store.CreateJob(ctx, j)
	}
	s.create.Unlock()
	if err != nil {
		return db.Job{}, err
	}
	if startNow {
		if j, err = s.store.StartJob(ctx, j.ID, devices); err != nil {
			return db.Job{}, err
		}
	}
	detail := fmt.Sprintf("%s on %q", describe(j), j.Query)
	if startNow {
		detail += fmt.Sprintf(", %d devices", j.Total)
	} else {
		detail += ", starts " + j.StartAt.UTC().Format(time.RFC3339)
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionCreate, Target: "job:" + j.ID, Detail: detail})
	s.publish(j)
	s.launch(j, 0)
	go s.prune(context.WithoutCancel(ctx))
	return j, nil
}

// describe names what a job runs, for the audit log.
func describe(j db.Job) string {
	switch j.Type {
	case db.JobMethod:
		var m Method
		_ = json.Unmarshal(j.Payload, &m)
		return "method " + m.Name
	case db.JobTwin:
		return "desired-twin patch"
	}
	return "cloud-to-device message"
}

// check validates a spec against the command limits and the job bounds and
// returns the job to store and its condition.
func (s *Service) check(spec Spec) (db.Job, query.Cond, error) {
	j := db.Job{ID: spec.ID, Type: spec.Type, Query: spec.Query, StartAt: spec.StartAt,
		MaxConcurrency: spec.MaxConcurrency, DeviceTimeout: spec.DeviceTimeout}
	if j.ID == "" {
		j.ID = newID()
	} else if err := checkID(j.ID); err != nil {
		return db.Job{}, nil, err
	}
	if len(spec.Query) > query.MaxLength {
		return db.Job{}, nil, invalid("query is %d bytes; at most %d are allowed", len(spec.Query), query.MaxLength)
	}
	cond, err := ParseQuery(spec.Query)
	if err != nil {
		return db.Job{}, nil, err
	}
	given := 0
	for _, set := range []bool{spec.Method != nil, len(spec.Patch) > 0, spec.Message != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		return db.Job{}, nil, invalid("a job runs one thing: give method (type method), patch (type twin) or message (type c2d)")
	}
	switch spec.Type {
	case db.JobMethod:
		if spec.Method == nil {
			return db.Job{}, nil, invalid("a method job needs method: {\"name\": …}")
		}
		call := spec.Method.call()
		if err := call.Validate(); err != nil {
			return db.Job{}, nil, invalid("method: %v", err)
		}
		if len(spec.Method.Payload) == 0 {
			spec.Method.Payload = json.RawMessage("null")
		}
		j.Payload, _ = json.Marshal(spec.Method)
	case db.JobTwin:
		if len(spec.Patch) == 0 {
			return db.Job{}, nil, invalid("a twin job needs patch: the desired properties to set")
		}
		if _, err := commands.ParseTwinPatch(spec.Patch); err != nil {
			return db.Job{}, nil, invalid("patch: %v", err)
		}
		j.Payload = spec.Patch
	case db.JobC2D:
		if spec.Message == nil {
			return db.Job{}, nil, invalid("a c2d job needs message: {\"body\": …}")
		}
		if err := spec.Message.message().Validate(); err != nil {
			return db.Job{}, nil, invalid("message: %v", err)
		}
		j.Payload, _ = json.Marshal(spec.Message)
	default:
		return db.Job{}, nil, invalid("type must be method, twin or c2d, not %q", clip(spec.Type))
	}
	if j.MaxConcurrency == 0 {
		j.MaxConcurrency = DefaultConcurrency
	}
	if j.MaxConcurrency < 1 || j.MaxConcurrency > MaxConcurrency {
		return db.Job{}, nil, invalid("maxConcurrency must be from 1 to %d, got %d", MaxConcurrency, j.MaxConcurrency)
	}
	if j.DeviceTimeout == 0 {
		j.DeviceTimeout = DefaultDeviceTimeout
	}
	if j.DeviceTimeout < MinDeviceTimeout || j.DeviceTimeout > MaxDeviceTimeout {
		return db.Job{}, nil, invalid("timeoutInSeconds must be from %d to %d, got %d",
			int(MinDeviceTimeout/time.Second), int(MaxDeviceTimeout/time.Second), int(j.DeviceTimeout/time.Second))
	}
	if spec.Method != nil && time.Duration(spec.Method.ResponseTimeoutInSeconds)*time.Second > j.DeviceTimeout {
		return db.Job{}, nil, invalid("method.responseTimeoutInSeconds (%d) is longer than the job's per-device timeout (%d s)",
			spec.Method.ResponseTimeoutInSeconds, int(j.DeviceTimeout/time.Second))
	}
	if ahead := j.StartAt.Sub(s.cfg.Now()); ahead > MaxScheduleAhead {
		return db.Job{}, nil, invalid("startAt is %d days ahead; a job may be scheduled at most %d days ahead",
			int(ahead.Hours()/24), int(MaxScheduleAhead.Hours()/24))
	}
	return j, cond, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// checkID accepts the characters of device ids, so that a job id is safe
// in a URL path segment and a page.
func checkID(id string) error {
	if len(id) > MaxIDLength {
		return invalid("id is %d characters long; at most %d are allowed", len(id), MaxIDLength)
	}
	if err := db.ValidateDeviceID(id); err != nil {
		return invalid("id: %s", strings.Replace(err.Error(), "device id", "job id", 1))
	}
	return nil
}

func newID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return "job-" + hex.EncodeToString(b)
}

// selectDevices runs the condition and returns the ids of the devices it
// selects, refusing more than MaxDevices.
func (s *Service) selectDevices(ctx context.Context, cond query.Cond) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var ids []string
	after := ""
	for {
		page, err := s.store.QueryDevices(ctx, db.DeviceQuery{Where: cond, After: after, Limit: db.MaxQueryPage})
		if err != nil {
			return nil, err
		}
		for _, qd := range page {
			ids = append(ids, qd.Device.DeviceID)
		}
		if len(ids) > s.cfg.MaxDevices {
			return nil, invalid("the query selects more than %d devices, the most one job may act on; narrow it", s.cfg.MaxDevices)
		}
		if len(page) < db.MaxQueryPage {
			return ids, nil
		}
		after = page[len(page)-1].Device.DeviceID
	}
}
