// Package jobs runs a command on many devices at once: a direct method, a
// desired-twin patch or a cloud-to-device message on every device a fleet
// query selects, now or at a scheduled time, at most MaxConcurrency at a
// time, each within a per-device timeout. Jobs go through the command
// services (commands.Invoker, Twins, CloudQueue), so their limits and
// audit entries are the same as for one device. A job and every device's
// outcome are stored (Store; db/storetest.RunJobs): a restarted hub
// resumes the pending devices of running jobs and the schedule of the
// others, and gives devices whose call was under way when it stopped the
// outcome failed, since nobody knows whether they acted on it — a call is
// never sent twice. Progress goes to the live jobs stream (Publisher).
package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
)

// Bounds of jobs.
const (
	// MaxDevices is the most devices one job may select.
	MaxDevices = 50_000
	// MaxActive is the most jobs scheduled or running at once.
	MaxActive = 10
	// DefaultConcurrency and MaxConcurrency bound the devices one job
	// works on at once.
	DefaultConcurrency = 10
	MaxConcurrency     = 200
	// DefaultDeviceTimeout bounds each device's call; MinDeviceTimeout and
	// MaxDeviceTimeout the value a job may set.
	DefaultDeviceTimeout = 30 * time.Second
	MinDeviceTimeout     = 5 * time.Second
	MaxDeviceTimeout     = 300 * time.Second
	// MaxScheduleAhead is how far ahead a job may be scheduled.
	MaxScheduleAhead = 30 * 24 * time.Hour
	// Retention is how long finished jobs are kept; KeepFinished the most
	// finished jobs kept whatever their age.
	Retention    = 30 * 24 * time.Hour
	KeepFinished = 1000
	// MaxIDLength bounds a job id a client chooses.
	MaxIDLength = 128
)

// Store keeps jobs and their devices' outcomes (*db.DB; every store passes
// db/storetest.RunJobs), and selects the devices (fleet queries).
type Store interface {
	CreateJob(ctx context.Context, j db.Job) (db.Job, error)
	Job(ctx context.Context, id string) (db.Job, error)
	Jobs(ctx context.Context, f db.JobFilter) ([]db.Job, error)
	ActiveJobs(ctx context.Context) ([]db.Job, error)
	StartJob(ctx context.Context, id string, deviceIDs []string) (db.Job, error)
	ClaimJobDevices(ctx context.Context, id string, n int) ([]string, error)
	FinishJobDevice(ctx context.Context, id string, out db.JobDevice) error
	FinishJob(ctx context.Context, id, status, why string) (db.Job, error)
	CancelJob(ctx context.Context, id string) (db.Job, error)
	InterruptJobDevices(ctx context.Context, why string) (int64, error)
	JobDevices(ctx context.Context, id string, f db.JobDeviceFilter) ([]db.JobDevice, error)
	PruneJobs(ctx context.Context, cutoff time.Time, keep int) (int64, error)
	QueryDevices(ctx context.Context, q db.DeviceQuery) ([]db.QueriedDevice, error)
	RecordAudit(ctx context.Context, e db.AuditEntry) error
}

// Methods invokes direct methods (*commands.Invoker).
type Methods interface {
	Invoke(ctx context.Context, actor, deviceID string, call commands.MethodCall) (commands.MethodResult, error)
}

// Twins patches desired properties (*commands.Twins).
type Twins interface {
	PatchDesired(ctx context.Context, actor, deviceID string, patch json.RawMessage, ifVersion int64) (db.Twin, error)
}

// CloudMessages queues cloud-to-device messages (*commands.CloudQueue).
type CloudMessages interface {
	Send(ctx context.Context, actor, deviceID string, m commands.Message) (db.CloudMessage, error)
}

// Publisher shows jobs' progress live (*live.Hub). It must not block.
type Publisher interface {
	PublishJob(v View)
}

// Config is what a Service needs; Store and the three command services are
// required.
type Config struct {
	Store     Store
	Methods   Methods
	Twins     Twins
	Cloud     CloudMessages
	Publisher Publisher
	Logger    *slog.Logger
	Now       func() time.Time
	// MaxDevices, MaxActive: the bounds above; zero takes them.
	MaxDevices int
	MaxActive  int
	// ResumeDelay is how long a restarted hub waits before it resumes
	// running jobs, so that devices have reconnected (default 30 s).
	ResumeDelay time.Duration
	// ProgressInterval is how often a running job's counts go live (default 250 ms).
	ProgressInterval time.Duration
}

// Service creates, runs and cancels jobs.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger

	create sync.Mutex // the MaxActive check and the insert, together

	mu      sync.Mutex
	ctx     context.Context // the runners' parent; cancelled by Close
	stop    context.CancelFunc
	running map[string]*runner
	dirty   map[string]bool // jobs whose progress is not yet published
	wg      sync.WaitGroup
}

// runner is one job's goroutine.
type runner struct {
	cancel context.CancelFunc // stops dispatching (cancel) or everything (Close)
	done   chan struct{}
}

// New builds a Service; Start resumes stored jobs and runs new ones.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = MaxDevices
	}
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = MaxActive
	}
	if cfg.ResumeDelay <= 0 {
		cfg.ResumeDelay = 30 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 250 * time.Millisecond
	}
	if cfg.Publisher == nil {
		cfg.Publisher = nopPublisher{}
	}
	return &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger, running: map[string]*runner{}, dirty: map[string]bool{}}
}

type nopPublisher struct{}

func (nopPublisher) PublishJob(View) {}

// Audit actions of jobs. Each device's call is audited by its command
// service, with the actor job:<id>.
const (
	ActionCreate = "job.create"
	ActionCancel = "job.cancel"
	ActionFinish = "job.finish"
)

// interrupted is the outcome of a device whose call was under way when the
// hub stopped.
const interrupted = "interrupted: the hub stopped while this device's call was under way; whether the device acted on it is unknown, so it was not sent again"

// Start resumes the stored jobs: devices whose call was under way fail
// (interrupted), running jobs go on with their pending devices, scheduled
// ones wait for their time. It also prunes old finished jobs.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Unlock()
	if n, err := s.store.InterruptJobDevices(ctx, interrupted); err != nil {
		return err
	} else if n > 0 {
		s.log.Warn("jobs: calls under way when the hub stopped are recorded as failed, not sent again", "devices", n)
	}
	s.prune(ctx)
	active, err := s.store.ActiveJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range active {
		s.launch(j, s.cfg.ResumeDelay)
	}
	s.wg.Add(1)
	go s.progressLoop()
	return nil
}

// Started reports whether Start ran.
func (s *Service) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx != nil
}

// Close stops every job's runner and waits for them: calls under way are
// abandoned and, at the next start, recorded as interrupted.
func (s *Service) Close() {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
}

func (s *Service) prune(ctx context.Context) {
	if n, err := s.store.PruneJobs(ctx, s.cfg.Now().Add(-Retention), KeepFinished); err != nil {
		s.log.Error("jobs: prune finished jobs", "err", err)
	} else if n > 0 {
		s.log.Info("jobs: pruned finished jobs", "jobs", n)
	}
}

// launch starts a job's runner; a running job resumes after delay.
func (s *Service) launch(j db.Job, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return // not started, or closing: the next start resumes it
	}
	if _, ok := s.running[j.ID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &runner{cancel: cancel, done: make(chan struct{})}
	s.running[j.ID] = r
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		defer cancel()
		s.run(ctx, j, delay)
		s.mu.Lock()
		delete(s.running, j.ID)
		s.mu.Unlock()
	}()
}

// markDirty asks the progress loop to publish a job's counts.
func (s *Service) markDirty(id string) {
	s.mu.Lock()
	s.dirty[id] = true
	s.mu.Unlock()
}

// publish sends a job's state live now.
func (s *Service) publish(j db.Job) {
	s.cfg.Publisher.PublishJob(NewView(j))
}

// progressLoop publishes the counts of jobs that changed, at most every
// ProgressInterval, so that 1,000 outcomes a second are a few events.
func (s *Service) progressLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ProgressInterval)
	defer t.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-prune.C:
			s.prune(s.ctx)
		case <-t.C:
			s.mu.Lock()
			ids := make([]string, 0, len(s.dirty))
			for id := range s.dirty {
				ids = append(ids, id)
			}
			clear(s.dirty)
			s.mu.Unlock()
			for _, id := range ids {
				j, err := s.store.Job(s.ctx, id)
				if err != nil {
					continue
				}
				s.publish(j)
			}
		}
	}
}

// audit records an action; a failure is logged, since the action stands.
func (s *Service) audit(ctx context.Context, e db.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.RecordAudit(ctx, e); err != nil {
		s.log.Error("record audit", "action", e.Action, "target", e.Target, "err", err)
	}
}

// Job reads a job.
func (s *Service) Job(ctx context.Context, id string) (db.Job, error) { return s.store.Job(ctx, id) }

// Jobs lists jobs, newest first.
func (s *Service) Jobs(ctx context.Context, f db.JobFilter) ([]db.Job, error) {
	return s.store.Jobs(ctx, f)
}

// Devices lists a page of a job's devices with their outcomes.
func (s *Service) Devices(ctx context.Context, id string, f db.JobDeviceFilter) ([]db.JobDevice, error) {
	return s.store.JobDevices(ctx, id, f)
}

// Cancel cancels a scheduled or running job on behalf of actor: no device
// is started after it; calls under way end within the per-device timeout
// and keep their real outcome.
func (s *Service) Cancel(ctx context.Context, actor, id string) (db.Job, error) {
	j, err := s.store.CancelJob(ctx, id)
	if err != nil {
		return db.Job{}, err
	}
	s.mu.Lock()
	r := s.running[id]
	s.mu.Unlock()
	if r != nil {
		r.cancel()
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionCancel, Target: "job:" + id,
		Detail: fmt.Sprintf("%d succeeded, %d failed, %d cancelled of %d", j.Succeeded, j.Failed, j.Cancelled, j.Total)})
	s.publish(j)
	return j, nil
}
