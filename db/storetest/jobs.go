package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunJobs tests jobs and their devices' outcomes.
func RunJobs(t *testing.T, b Backend) {
	cases(t, b,
		test{"Lifecycle", testJobLifecycle},
		test{"Cancel", testJobCancel},
		test{"InterruptedByRestart", testJobInterrupted},
		test{"Prune", testJobPrune},
	)
}

func newJob(id string) db.Job {
	return db.Job{ID: id, Type: db.JobMethod, Query: "tags.site = 'berlin'", Payload: json.RawMessage(`{"name":"reboot"}`),
		Actor: "user:op", MaxConcurrency: 4, DeviceTimeout: 30 * time.Second, StartAt: T0}
}

func jobDeviceIDs(t *testing.T, s Store, id string, f db.JobDeviceFilter) ([]string, []db.JobDevice) {
	t.Helper()
	devs, err := s.JobDevices(context.Background(), id, f)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	return ids, devs
}

func testJobLifecycle(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	j, err := s.CreateJob(ctx, newJob("j1"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobScheduled || !j.CreatedAt.Equal(T0) {
		t.Errorf("created %+v", j)
	}
	if _, err := s.CreateJob(ctx, newJob("j1")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate id: err = %v, want ErrConflict", err)
	}
	if _, err := s.Job(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown job: err = %v, want ErrNotFound", err)
	}
	got, err := s.Job(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != db.JobMethod || got.Query != "tags.site = 'berlin'" || string(got.Payload) != `{"name":"reboot"}` ||
		got.Actor != "user:op" || got.MaxConcurrency != 4 || got.DeviceTimeout != 30*time.Second || !got.StartAt.Equal(T0) {
		t.Errorf("read back %+v", got)
	}

	clk.Advance(time.Second)
	j, err = s.StartJob(ctx, "j1", []string{"d3", "d1", "d2", "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobRunning || j.Total != 3 || j.Pending() != 3 || !j.StartedAt.Equal(T0.Add(time.Second)) {
		t.Errorf("started %+v", j)
	}
	if _, err := s.StartJob(ctx, "j1", nil); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("start twice: err = %v, want ErrConflict", err)
	}
	claimed, err := s.ClaimJobDevices(ctx, "j1", 2)
	if err != nil || !slices.Equal(claimed, []string{"d1", "d2"}) {
		t.Fatalf("claim 2 = %v, %v; want d1, d2", claimed, err)
	}
	if ids, _ := jobDeviceIDs(t, s, "j1", db.JobDeviceFilter{Status: db.JobDeviceRunning}); !slices.Equal(ids, claimed) {
		t.Errorf("running = %v, want %v", ids, claimed)
	}
	clk.Advance(250 * time.Millisecond)
	if err := s.FinishJobDevice(ctx, "j1", db.JobDevice{DeviceID: "d1", Status: db.JobDeviceSucceeded,
		Result: json.RawMessage(`{"status":200,"payload":null}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJobDevice(ctx, "j1", db.JobDevice{DeviceID: "d2", Status: db.JobDeviceFailed, Error: "not connected"}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJobDevice(ctx, "j1", db.JobDevice{DeviceID: "d2", Status: db.JobDeviceSucceeded}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("second outcome: err = %v, want ErrConflict", err)
	}
	var inv *storage.InvalidError
	if err := s.FinishJobDevice(ctx, "j1", db.JobDevice{DeviceID: "d3", Status: "maybe"}); !errors.As(err, &inv) {
		t.Errorf("unknown outcome: err = %v, want InvalidError", err)
	}
	claimed, err = s.ClaimJobDevices(ctx, "j1", 10)
	if err != nil || !slices.Equal(claimed, []string{"d3"}) {
		t.Fatalf("claim rest = %v, %v; want d3", claimed, err)
	}
	if claimed, _ := s.ClaimJobDevices(ctx, "j1", 10); len(claimed) != 0 {
		t.Errorf("claim with none pending = %v", claimed)
	}
	if err := s.FinishJobDevice(ctx, "j1", db.JobDevice{DeviceID: "d3", Status: db.JobDeviceSucceeded}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	j, err = s.FinishJob(ctx, "j1", db.JobCompleted, "")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobCompleted || j.Succeeded != 2 || j.Failed != 1 || j.Pending() != 0 || !j.FinishedAt.Equal(T0.Add(2250*time.Millisecond)) {
		t.Errorf("finished %+v", j)
	}
	ids, devs := jobDeviceIDs(t, s, "j1", db.JobDeviceFilter{})
	if !slices.Equal(ids, []string{"d1", "d2", "d3"}) {
		t.Fatalf("devices = %v", ids)
	}
	if d := devs[0]; string(d.Result) != `{"status":200,"payload":null}` || d.FinishedAt.Sub(d.StartedAt) != 250*time.Millisecond {
		t.Errorf("d1 = %+v", d)
	}
	if d := devs[1]; d.Status != db.JobDeviceFailed || d.Error != "not connected" || d.Result != nil {
		t.Errorf("d2 = %+v", d)
	}
	if ids, _ := jobDeviceIDs(t, s, "j1", db.JobDeviceFilter{After: "d1", Limit: 1}); !slices.Equal(ids, []string{"d2"}) {
		t.Errorf("page after d1 = %v, want d2", ids)
	}
	if _, err := s.JobDevices(ctx, "nope", db.JobDeviceFilter{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("devices of an unknown job: err = %v", err)
	}

	for i := 2; i <= 4; i++ {
		clk.Advance(time.Second)
		if _, err := s.CreateJob(ctx, newJob(fmt.Sprintf("j%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Jobs(ctx, db.JobFilter{Limit: 3})
	if err != nil || len(list) != 3 || list[0].ID != "j4" || list[2].ID != "j2" {
		t.Errorf("newest 3 = %v, %v", list, err)
	}
	list, _ = s.Jobs(ctx, db.JobFilter{Status: db.JobCompleted})
	if len(list) != 1 || list[0].ID != "j1" {
		t.Errorf("completed = %v", list)
	}
	active, _ := s.ActiveJobs(ctx)
	if len(active) != 3 {
		t.Errorf("active = %d jobs, want 3", len(active))
	}
}

func testJobCancel(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	if _, err := s.CreateJob(ctx, newJob("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartJob(ctx, "c1", []string{"a", "b", "c", "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimJobDevices(ctx, "c1", 1); err != nil {
		t.Fatal(err)
	}
	j, err := s.CancelJob(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != db.JobCancelled || j.Cancelled != 3 || j.Pending() != 1 || j.FinishedAt.IsZero() {
		t.Errorf("cancelled %+v", j)
	}
	if claimed, _ := s.ClaimJobDevices(ctx, "c1", 10); len(claimed) != 0 {
		t.Errorf("a cancelled job gives devices: %v", claimed)
	}
	// The call under way keeps its real outcome.
	if err := s.FinishJobDevice(ctx, "c1", db.JobDevice{DeviceID: "a", Status: db.JobDeviceSucceeded}); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.FinishJob(ctx, "c1", db.JobCompleted, ""); j.Status != db.JobCancelled || j.Succeeded != 1 || j.Pending() != 0 {
		t.Errorf("after the last outcome %+v, want cancelled with 1 succeeded", j)
	}
	if _, err := s.CancelJob(ctx, "c1"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("cancel twice: err = %v, want ErrConflict", err)
	}
	if _, err := s.CancelJob(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("cancel unknown: err = %v, want ErrNotFound", err)
	}
	// A scheduled job cancelled before it starts never starts.
	if _, err := s.CreateJob(ctx, newJob("c2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartJob(ctx, "c2", []string{"a"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("start after cancel: err = %v, want ErrConflict", err)
	}
}

func testJobInterrupted(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	if _, err := s.CreateJob(ctx, newJob("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartJob(ctx, "r1", []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimJobDevices(ctx, "r1", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJobDevice(ctx, "r1", db.JobDevice{DeviceID: "a", Status: db.JobDeviceSucceeded}); err != nil {
		t.Fatal(err)
	}
	s = b.Reopen(t, s, clk.Now)
	n, err := s.InterruptJobDevices(ctx, "interrupted")
	if err != nil || n != 1 {
		t.Fatalf("interrupted %d, %v; want 1", n, err)
	}
	active, err := s.ActiveJobs(ctx)
	if err != nil || len(active) != 1 || active[0].ID != "r1" || active[0].Status != db.JobRunning {
		t.Fatalf("active after restart = %v, %v", active, err)
	}
	if j := active[0]; j.Succeeded != 1 || j.Failed != 1 || j.Pending() != 1 {
		t.Errorf("counts after restart %+v", j)
	}
	_, devs := jobDeviceIDs(t, s, "r1", db.JobDeviceFilter{})
	if devs[1].Status != db.JobDeviceFailed || devs[1].Error != "interrupted" || devs[2].Status != db.JobDevicePending {
		t.Errorf("devices after restart %+v", devs)
	}
	if claimed, _ := s.ClaimJobDevices(ctx, "r1", 5); !slices.Equal(claimed, []string{"c"}) {
		t.Errorf("resumed claim = %v, want c", claimed)
	}
}

func testJobPrune(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	for i := range 5 {
		id := fmt.Sprintf("p%d", i)
		if _, err := s.CreateJob(ctx, newJob(id)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.StartJob(ctx, id, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			if _, err := s.FinishJob(ctx, id, db.JobCompleted, ""); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(time.Hour)
	}
	// p0 finished before the cutoff; of the rest, the newest 2 finished stay; p4 runs.
	n, err := s.PruneJobs(ctx, T0.Add(30*time.Minute), 2)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	list, _ := s.Jobs(ctx, db.JobFilter{})
	var ids []string
	for _, j := range list {
		ids = append(ids, j.ID)
	}
	if !slices.Equal(ids, []string{"p4", "p3", "p2"}) {
		t.Errorf("kept %v, want p4 p3 p2", ids)
	}
	if _, err := s.JobDevices(ctx, "p0", db.JobDeviceFilter{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("devices of a pruned job: %v", err)
	}
}
