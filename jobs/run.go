package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/storage"
)

// run is one job's life: wait for its start, select its devices if it was
// scheduled, then keep up to MaxConcurrency devices' calls under way until
// none is pending. ctx ends on cancel and on Close; calls under way run on
// the service's context, so a cancel lets them finish and Close does not.
func (s *Service) run(ctx context.Context, j db.Job, resumeDelay time.Duration) {
	if j.Status == db.JobRunning && resumeDelay > 0 && !sleep(ctx, resumeDelay) {
		return
	}
	if j.Status == db.JobScheduled {
		if !sleep(ctx, j.StartAt.Sub(s.cfg.Now())) {
			return
		}
		var err error
		if j, err = s.begin(ctx, j); err != nil || j.Status != db.JobRunning {
			return
		}
	}
	s.dispatch(ctx, j)
	if s.stopping() {
		return
	}
	fin, err := s.store.FinishJob(context.WithoutCancel(ctx), j.ID, db.JobCompleted, "")
	if err != nil {
		s.log.Error("jobs: finish", "job", j.ID, "err", err)
		return
	}
	if fin.Status == db.JobCompleted {
		s.audit(ctx, db.AuditEntry{Actor: "job:" + j.ID, Action: ActionFinish, Target: "job:" + j.ID,
			Detail: fmt.Sprintf("%d succeeded, %d failed of %d in %s", fin.Succeeded, fin.Failed, fin.Total,
				fin.FinishedAt.Sub(fin.StartedAt).Round(time.Millisecond))})
	}
	s.publish(fin)
}

// begin selects a scheduled job's devices and starts it; a job selecting
// too many fails with why.
func (s *Service) begin(ctx context.Context, j db.Job) (db.Job, error) {
	cond, err := ParseQuery(j.Query)
	var devices []string
	if err == nil {
		devices, err = s.selectDevices(ctx, cond)
	}
	if err != nil {
		if s.stopping() || errors.Is(err, context.Canceled) {
			return j, err
		}
		var inv *InvalidError
		why := "selecting the devices failed; the details are in the server log"
		if errors.As(err, &inv) {
			why = inv.Reason
		} else {
			s.log.Error("jobs: select devices", "job", j.ID, "err", err)
		}
		fin, ferr := s.store.FinishJob(context.WithoutCancel(ctx), j.ID, db.JobFailed, why)
		if ferr == nil {
			s.audit(ctx, db.AuditEntry{Actor: "job:" + j.ID, Action: ActionFinish, Target: "job:" + j.ID, Outcome: "failed", Detail: why})
			s.publish(fin)
		}
		return fin, err
	}
	started, err := s.store.StartJob(ctx, j.ID, devices)
	if err != nil {
		if !errors.Is(err, storage.ErrConflict) { // cancelled meanwhile: nothing to do
			s.log.Error("jobs: start", "job", j.ID, "err", err)
		}
		return j, err
	}
	s.publish(started)
	return started, nil
}

func (s *Service) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx.Err() != nil
}

// dispatch keeps up to MaxConcurrency calls under way, claiming pending
// devices in batches as slots free up, until none is pending and none
// under way, or ctx ends (then it waits for the calls under way).
func (s *Service) dispatch(ctx context.Context, j db.Job) {
	n := j.MaxConcurrency
	free := make(chan struct{}, n)
	for range n {
		free <- struct{}{}
	}
	callCtx := s.ctx
	defer func() {
		// Wait for the calls under way: every slot back.
		for range n {
			<-free
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-free:
		}
		take := 1
		for take < n {
			select {
			case <-free:
				take++
				continue
			default:
			}
			break
		}
		ids, err := s.store.ClaimJobDevices(ctx, j.ID, take)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("jobs: claim devices", "job", j.ID, "err", err)
			}
			for range take {
				free <- struct{}{}
			}
			return
		}
		for range take - len(ids) {
			free <- struct{}{}
		}
		if len(ids) == 0 {
			if len(free) == n {
				return // nothing pending, nothing under way
			}
			// Wait for a call to end: it may leave the job done.
			select {
			case <-ctx.Done():
				return
			case <-free:
				free <- struct{}{}
			}
			continue
		}
		for _, id := range ids {
			go func() {
				defer func() { free <- struct{}{} }()
				out := s.runDevice(callCtx, j, id)
				if callCtx.Err() != nil {
					return // the hub is stopping: the next start records it interrupted
				}
				if err := s.store.FinishJobDevice(context.WithoutCancel(callCtx), j.ID, out); err != nil {
					s.log.Error("jobs: record outcome", "job", j.ID, "device", id, "err", err)
				}
				s.markDirty(j.ID)
			}()
		}
	}
}

// runDevice runs the job's command on one device within the per-device
// timeout and says how it went.
func (s *Service) runDevice(ctx context.Context, j db.Job, deviceID string) db.JobDevice {
	ctx, cancel := context.WithTimeout(ctx, j.DeviceTimeout)
	defer cancel()
	actor := "job:" + j.ID
	out := db.JobDevice{DeviceID: deviceID, Status: db.JobDeviceSucceeded}
	var result any
	var err error
	switch j.Type {
	case db.JobMethod:
		var m Method
		if err = json.Unmarshal(j.Payload, &m); err != nil {
			break
		}
		call := m.call()
		if call.ResponseTimeout == 0 {
			call.ResponseTimeout = j.DeviceTimeout
		}
		var res commands.MethodResult
		if res, err = s.cfg.Methods.Invoke(ctx, actor, deviceID, call); err == nil {
			result = res
			if res.Status < 200 || res.Status > 299 {
				out.Status, out.Error = db.JobDeviceFailed, fmt.Sprintf("the device answered status %d", res.Status)
			}
		}
	case db.JobTwin:
		var tw db.Twin
		if tw, err = s.cfg.Twins.PatchDesired(ctx, actor, deviceID, j.Payload, 0); err == nil {
			result = map[string]int64{"desiredVersion": tw.DesiredVersion}
		}
	case db.JobC2D:
		var m Message
		if err = json.Unmarshal(j.Payload, &m); err != nil {
			break
		}
		var msg db.CloudMessage
		if msg, err = s.cfg.Cloud.Send(ctx, actor, deviceID, m.message()); err == nil {
			result = map[string]string{"messageId": msg.MessageID}
		}
	}
	if result != nil {
		out.Result, _ = json.Marshal(result)
	}
	if err != nil {
		out.Status, out.Error = db.JobDeviceFailed, s.explain(j, deviceID, err)
	}
	return out
}

// explain says why a device's call failed, in words safe to show.
func (s *Service) explain(j db.Job, deviceID string, err error) string {
	var inv *storage.InvalidError
	var minv *commands.InvalidMethodError
	switch {
	case errors.Is(err, commands.ErrDeviceNotConnected):
		return "not connected: the device has no live connection that takes direct methods"
	case errors.Is(err, commands.ErrTimeout):
		return "timed out: the device did not answer in time"
	case errors.Is(err, context.Canceled):
		return interrupted
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after the job's per-device timeout of %s", j.DeviceTimeout)
	case errors.Is(err, storage.ErrNotFound):
		return "the device no longer exists"
	case errors.Is(err, db.ErrQueueFull):
		return fmt.Sprintf("the device's cloud-to-device queue is full (%d messages waiting)", commands.MaxCloudQueue)
	case errors.As(err, &inv):
		return inv.Error()
	case errors.As(err, &minv):
		return minv.Reason
	}
	s.log.Error("jobs: device call failed", "job", j.ID, "device", deviceID, "err", err)
	return "the call failed; the details are in the server log"
}

// sleep waits for d, or less when ctx ends (false then).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
