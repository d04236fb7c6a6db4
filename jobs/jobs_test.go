package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
	"fieldhub/jobs"
	"fieldhub/query"
)

// transport answers direct methods as the test says: it is the MQTT
// broker's place, the layer above the database (commands.MethodTransport).
type transport struct {
	answer   func(ctx context.Context, deviceID string) (int, error)
	inFlight atomic.Int32
	most     atomic.Int32
	calls    atomic.Int32
}

func (tr *transport) InvokeMethod(ctx context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	n := tr.inFlight.Add(1)
	defer tr.inFlight.Add(-1)
	for {
		m := tr.most.Load()
		if n <= m || tr.most.CompareAndSwap(m, n) {
			break
		}
	}
	tr.calls.Add(1)
	status, err := tr.answer(ctx, deviceID)
	return status, json.RawMessage(`{"ok":true}`), err
}

// publisher records the job events.
type publisher struct {
	mu     sync.Mutex
	events []jobs.View
}

func (p *publisher) PublishJob(v jobs.View) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, v)
}

func (p *publisher) last(id string) (jobs.View, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].ID == id {
			return p.events[i], true
		}
	}
	return jobs.View{}, false
}

type env struct {
	t     *testing.T
	db    *db.DB
	tr    *transport
	pub   *publisher
	svc   *jobs.Service
	cloud *commands.CloudQueue
}

// newEnv is a jobs service over a real database and the real command
// services, with n devices dev-00… (site berlin for even ones, paris for odd).
func newEnv(t *testing.T, n int, configure ...func(*jobs.Config)) *env {
	t.Helper()
	d := dbtest.MustOpen(t)
	ctx := context.Background()
	for i := range n {
		site := []string{"berlin", "paris"}[i%2]
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("dev-%02d", i), Tags: map[string]string{"site": site}}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, db: d, pub: &publisher{}}
	e.tr = &transport{answer: func(context.Context, string) (int, error) { return 200, nil }}
	e.cloud = commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now})
	e.svc = e.service(configure...)
	return e
}

// service builds and starts a jobs service over the env's database.
func (e *env) service(configure ...func(*jobs.Config)) *jobs.Service {
	e.t.Helper()
	cfg := jobs.Config{
		Store:     e.db,
		Methods:   commands.NewInvoker(commands.InvokerConfig{Store: e.db, Transport: e.tr}),
		Twins:     commands.NewTwins(commands.TwinsConfig{Store: e.db}),
		Cloud:     e.cloud,
		Publisher: e.pub,
		Now:       e.db.Now,
		// Tests need no time for devices to reconnect after a restart.
		ResumeDelay: time.Nanosecond,
	}
	for _, f := range configure {
		f(&cfg)
	}
	svc := jobs.New(cfg)
	if err := svc.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(svc.Close)
	return svc
}

func (e *env) waitStatus(id, status string) db.Job {
	e.t.Helper()
	var j db.Job
	testkit.WaitFor(e.t, "job "+id+" "+status, func() bool {
		var err error
		j, err = e.db.Job(context.Background(), id)
		return err == nil && j.Status == status
	})
	return j
}

func (e *env) outcomes(id string) map[string]db.JobDevice {
	e.t.Helper()
	devs, err := e.db.JobDevices(context.Background(), id, db.JobDeviceFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]db.JobDevice{}
	for _, d := range devs {
		out[d.DeviceID] = d
	}
	return out
}

func methodSpec(q string, concurrency int) jobs.Spec {
	return jobs.Spec{Type: db.JobMethod, Query: q, Method: &jobs.Method{Name: "reboot", Payload: json.RawMessage(`{"delay":1}`)},
		MaxConcurrency: concurrency}
}

func TestMethodJob(t *testing.T) {
	e := newEnv(t, 20)
	e.tr.answer = func(ctx context.Context, id string) (int, error) {
		time.Sleep(time.Millisecond) // let calls overlap, so the concurrency bound is tested
		switch id {
		case "dev-04":
			return 500, nil
		case "dev-06":
			return 0, commands.ErrDeviceNotConnected
		}
		return 200, nil
	}
	j, err := e.svc.Create(context.Background(), "user:op", methodSpec("SELECT * FROM devices WHERE tags.site = 'berlin'", 3))
	if err != nil {
		t.Fatal(err)
	}
	if j.Total != 10 || j.Status != db.JobRunning {
		t.Fatalf("created %+v, want running on 10 devices", j)
	}
	j = e.waitStatus(j.ID, db.JobCompleted)
	if j.Succeeded != 8 || j.Failed != 2 || j.Pending() != 0 {
		t.Errorf("counts %+v, want 8 succeeded, 2 failed", j)
	}
	if most := e.tr.most.Load(); most > 3 || e.tr.calls.Load() != 10 {
		t.Errorf("%d calls, at most %d at once; want 10, at most 3", e.tr.calls.Load(), most)
	}
	out := e.outcomes(j.ID)
	if d := out["dev-00"]; d.Status != db.JobDeviceSucceeded || string(d.Result) != `{"status":200,"payload":{"ok":true}}` {
		t.Errorf("dev-00 = %+v", d)
	}
	if d := out["dev-04"]; d.Status != db.JobDeviceFailed || d.Error != "the device answered status 500" {
		t.Errorf("dev-04 = %+v", d)
	}
	if d := out["dev-06"]; d.Status != db.JobDeviceFailed || !strings.Contains(d.Error, "not connected") {
		t.Errorf("dev-06 = %+v", d)
	}
	if _, ok := out["dev-01"]; ok {
		t.Error("a paris device is in a berlin job")
	}
	// The audit: the job's creation and end, and each call through the invoker as job:<id>.
	// The end's row is written after the job's status, so it is awaited.
	count := map[string]int{}
	testkit.WaitFor(t, "the job's end in the audit log", func() bool {
		entries, err := e.db.AuditEntries(context.Background(), db.AuditFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		clear(count)
		for _, a := range entries {
			count[a.Action+" "+a.Actor]++
		}
		return count["job.finish job:"+j.ID] > 0
	})
	if count["job.create user:op"] != 1 || count["job.finish job:"+j.ID] != 1 || count["method.invoke job:"+j.ID] != 10 {
		t.Errorf("audit = %v", count)
	}
	testkit.WaitFor(t, "the final event", func() bool {
		v, ok := e.pub.last(j.ID)
		return ok && v.Status == db.JobCompleted && v.Counts.Succeeded == 8
	})
}

func TestTwinAndCloudJobs(t *testing.T) {
	e := newEnv(t, 6)
	ctx := context.Background()
	j, err := e.svc.Create(ctx, "user:op", jobs.Spec{Type: db.JobTwin, Query: "tags.site = 'paris'",
		Patch: json.RawMessage(`{"intervalSeconds": 10}`)})
	if err != nil {
		t.Fatal(err)
	}
	if j = e.waitStatus(j.ID, db.JobCompleted); j.Succeeded != 3 {
		t.Errorf("twin job %+v", j)
	}
	for i := range 6 {
		tw, _ := e.db.Twin(ctx, fmt.Sprintf("dev-%02d", i))
		if _, set := tw.Desired["intervalSeconds"]; set != (i%2 == 1) {
			t.Errorf("dev-%02d desired = %v", i, tw.Desired)
		}
	}
	j, err = e.svc.Create(ctx, "user:op", jobs.Spec{Type: db.JobC2D, Query: "",
		Message: &jobs.Message{Body: "hello", Properties: map[string]string{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if j = e.waitStatus(j.ID, db.JobCompleted); j.Succeeded != 6 {
		t.Errorf("c2d job %+v", j)
	}
	msgs, _ := e.cloud.History(ctx, "dev-05", 10)
	if len(msgs) != 1 || string(msgs[0].Body) != "hello" || msgs[0].Sender != "job:"+j.ID {
		t.Errorf("dev-05 messages = %+v", msgs)
	}
	if d := e.outcomes(j.ID)["dev-05"]; !strings.Contains(string(d.Result), msgs[0].MessageID) {
		t.Errorf("outcome %s does not name message %s", d.Result, msgs[0].MessageID)
	}
}

func TestCancelLetsCallsUnderWayFinish(t *testing.T) {
	e := newEnv(t, 10)
	release := make(chan struct{})
	e.tr.answer = func(ctx context.Context, id string) (int, error) {
		<-release
		return 200, nil
	}
	j, err := e.svc.Create(context.Background(), "user:op", methodSpec("", 2))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "two calls under way", func() bool { return e.tr.inFlight.Load() == 2 })
	j, err = e.svc.Cancel(context.Background(), "user:op", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobCancelled || j.Cancelled != 8 || j.Pending() != 2 {
		t.Errorf("cancelled %+v", j)
	}
	close(release)
	testkit.WaitFor(t, "the calls under way recorded", func() bool {
		j, _ = e.db.Job(context.Background(), j.ID)
		return j.Succeeded == 2
	})
	if j.Status != db.JobCancelled || e.tr.calls.Load() != 2 {
		t.Errorf("after the calls: %+v, %d calls; want cancelled, 2 calls", j, e.tr.calls.Load())
	}
	if _, err := e.svc.Cancel(context.Background(), "user:op", j.ID); err == nil {
		t.Error("cancelling a cancelled job succeeded")
	}
}

// TestRestartResumesPendingDevices stops the service while calls are under
// way: a new service records them interrupted (not sent again) and runs
// the devices still pending.
func TestRestartResumesPendingDevices(t *testing.T) {
	e := newEnv(t, 8)
	e.tr.answer = func(ctx context.Context, id string) (int, error) {
		<-ctx.Done() // never answers before the hub stops
		return 0, ctx.Err()
	}
	j, err := e.svc.Create(context.Background(), "user:op", methodSpec("", 3))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "three calls under way", func() bool { return e.tr.inFlight.Load() == 3 })
	e.svc.Close()

	e.tr.answer = func(context.Context, string) (int, error) { return 200, nil }
	calls := e.tr.calls.Load()
	e.service()
	j = e.waitStatus(j.ID, db.JobCompleted)
	if j.Failed != 3 || j.Succeeded != 5 {
		t.Errorf("after restart %+v, want 3 interrupted and 5 succeeded", j)
	}
	if n := e.tr.calls.Load() - calls; n != 5 {
		t.Errorf("%d calls after the restart, want 5: an interrupted call is not sent again", n)
	}
	for id, d := range e.outcomes(j.ID) {
		if d.Status == db.JobDeviceFailed && !strings.Contains(d.Error, "interrupted") {
			t.Errorf("%s failed with %q", id, d.Error)
		}
	}
}

func TestScheduledJob(t *testing.T) {
	e := newEnv(t, 4)
	clk := testkit.NewClock(time.Now())
	e.svc.Close()
	svc := e.service(func(c *jobs.Config) { c.Now = clk.Now })
	spec := methodSpec("", 2)
	spec.StartAt = clk.Now().Add(time.Hour)
	j, err := svc.Create(context.Background(), "user:op", spec)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobScheduled || j.Total != 0 || e.tr.calls.Load() != 0 {
		t.Fatalf("scheduled job %+v, %d calls", j, e.tr.calls.Load())
	}
	// A hub started after the time runs it at once.
	svc.Close()
	clk.Advance(2 * time.Hour)
	e.service(func(c *jobs.Config) { c.Now = func() time.Time { return clk.Now() } })
	j = e.waitStatus(j.ID, db.JobCompleted)
	if j.Succeeded != 4 {
		t.Errorf("scheduled job ran %+v", j)
	}
}

func TestJobBounds(t *testing.T) {
	e := newEnv(t, 6, func(c *jobs.Config) { c.MaxDevices = 5; c.MaxActive = 2 })
	ctx := context.Background()
	var inv *jobs.InvalidError
	var qe *query.Error
	tests := []struct {
		name string
		spec jobs.Spec
		want string
	}{
		{"too many devices", methodSpec("", 1), "more than 5 devices"},
		{"unknown type", jobs.Spec{Type: "reboot", Query: "tags.site = 'x'"}, "a job runs one thing"},
		{"type and payload disagree", jobs.Spec{Type: db.JobTwin, Method: &jobs.Method{Name: "x"}}, "needs patch"},
		{"two payloads", jobs.Spec{Type: db.JobTwin, Patch: json.RawMessage(`{}`), Method: &jobs.Method{Name: "x"}}, "one thing"},
		{"bad method name", jobs.Spec{Type: db.JobMethod, Method: &jobs.Method{Name: "a b"}}, "method name"},
		{"bad patch", jobs.Spec{Type: db.JobTwin, Patch: json.RawMessage(`{"$x": 1}`)}, "patch"},
		{"message too large", jobs.Spec{Type: db.JobC2D, Message: &jobs.Message{Body: strings.Repeat("x", commands.MaxCloudBody+1)}}, "body"},
		{"concurrency", func() jobs.Spec { s := methodSpec("tags.site = 'x'", jobs.MaxConcurrency+1); return s }(), "maxConcurrency"},
		{"timeout", func() jobs.Spec { s := methodSpec("tags.site = 'x'", 1); s.DeviceTimeout = time.Hour; return s }(), "timeoutInSeconds"},
		{"response beyond timeout", func() jobs.Spec {
			s := methodSpec("tags.site = 'x'", 1)
			s.Method.ResponseTimeoutInSeconds = 60
			return s
		}(), "longer than the job's per-device timeout"},
		{"too far ahead", func() jobs.Spec {
			s := methodSpec("tags.site = 'x'", 1)
			s.StartAt = time.Now().Add(31 * 24 * time.Hour)
			return s
		}(), "days ahead"},
		{"aggregate query", methodSpec("SELECT COUNT() FROM devices", 1), "SELECT * FROM devices WHERE"},
		{"bad id", func() jobs.Spec { s := methodSpec("tags.site = 'x'", 1); s.ID = "a/b"; return s }(), "job id"},
	}
	for _, tt := range tests {
		_, err := e.svc.Create(ctx, "user:op", tt.spec)
		if !errors.As(err, &inv) || !strings.Contains(inv.Reason, tt.want) {
			t.Errorf("%s: err = %v, want InvalidError about %q", tt.name, err, tt.want)
		}
	}
	if _, err := e.svc.Create(ctx, "user:op", methodSpec("tags.site = 'berlin' AN", 1)); !errors.As(err, &qe) || qe.Column != 22 {
		t.Errorf("syntax error: err = %v, want a query.Error at column 22", err)
	}
	// The attack of 10,000 jobs: at most MaxActive at once.
	block := make(chan struct{})
	defer close(block)
	e.tr.answer = func(ctx context.Context, id string) (int, error) { <-block; return 200, nil }
	for i := range 2 {
		if _, err := e.svc.Create(ctx, "user:op", methodSpec(fmt.Sprintf("deviceId = 'dev-0%d'", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		if _, err := e.svc.Create(ctx, "user:op", methodSpec("deviceId = 'dev-05'", 1)); !errors.Is(err, jobs.ErrTooManyJobs) {
			t.Fatalf("a third active job: err = %v, want ErrTooManyJobs", err)
		}
	}
	if list, _ := e.db.Jobs(ctx, db.JobFilter{}); len(list) != 2 {
		t.Errorf("%d jobs stored, want 2", len(list))
	}
}

// TestJobOnTenThousandDevices is the attack of a job on 10,000 devices:
// the selection and its 10,000 rows are stored at once, and a cancel
// settles every device that had not started.
func TestJobOnTenThousandDevices(t *testing.T) {
	testkit.Slow(t, "registers 10,000 devices")
	e := newEnv(t, 0)
	ctx := context.Background()
	tx, err := e.db.Writer().Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		if _, err := tx.Exec(`INSERT INTO devices (device_id, tags, primary_key, secondary_key, created_at, updated_at)
			VALUES (?, '{"site":"big"}', 'k', 'k', 0, 0)`, fmt.Sprintf("big-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	defer close(block)
	e.tr.answer = func(ctx context.Context, id string) (int, error) { <-block; return 200, nil }
	j, err := e.svc.Create(ctx, "user:op", methodSpec("tags.site = 'big'", 1))
	if err != nil {
		t.Fatal(err)
	}
	if j.Total != 10_000 {
		t.Fatalf("total %d, want 10,000", j.Total)
	}
	testkit.WaitFor(t, "the first call", func() bool { return e.tr.inFlight.Load() == 1 })
	j, err = e.svc.Cancel(ctx, "user:op", j.ID)
	if err != nil || j.Cancelled != 9_999 || j.Pending() != 1 {
		t.Errorf("cancelled %+v, %v; want 9,999 cancelled and the call under way pending", j, err)
	}
	page, err := e.svc.Devices(ctx, j.ID, db.JobDeviceFilter{Status: db.JobDeviceCancelled, After: "big-09990", Limit: 100})
	if err != nil || len(page) != 9 {
		t.Errorf("last page of cancelled devices: %d, %v", len(page), err)
	}
}
