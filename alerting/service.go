// Package alerting runs the hub's alerts: it feeds package alert's
// evaluator from the committed message stream, twin updates and registry
// changes, stores the alerts it raises (alerts.go), serves the rules
// (rules.go), and delivers webhooks from a durable outbox (webhooks.go).
// Ingest hands it each committed batch through a bounded queue, so
// evaluation never slows an acknowledgement.
package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/live"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Store keeps rules and alerts; *db.DB implements it, and every store
// passes db/storetest's RunAlerts.
type Store interface {
	AlertRules(ctx context.Context) ([]alert.Rule, error)
	AlertRule(ctx context.Context, id int64) (alert.Rule, error)
	CreateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error)
	UpdateAlertRule(ctx context.Context, r alert.Rule) (alert.Rule, error)
	DeleteAlertRule(ctx context.Context, id int64) error

	Alerts(ctx context.Context, f db.AlertFilter) ([]alert.Alert, error)
	Alert(ctx context.Context, id int64) (alert.Alert, error)
	OpenAlertCounts(ctx context.Context) (map[alert.Severity]int, error)
	InsertAlert(ctx context.Context, a alert.Alert) (alert.Alert, error)
	UpdateAlert(ctx context.Context, a alert.Alert) error
	SaveAlerts(ctx context.Context, batch []alert.Alert) (saved []alert.Alert, errs []error, err error)
	PruneAlerts(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// The evaluator's timers and baselines across restarts.
	Setting(ctx context.Context, key, def string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Fleet is what the service reads of the registry: every device's tags and
// last activity at start, and a device after a change.
type Fleet interface {
	Devices(ctx context.Context, f db.DeviceFilter) ([]db.Device, int, error)
	Device(ctx context.Context, deviceID string) (db.Device, error)
}

// Auditor records operators' acknowledgements, clears and rule changes.
type Auditor interface {
	RecordAudit(ctx context.Context, e db.AuditEntry) error
}

// Publisher announces alert changes live (*live.Hub).
type Publisher interface {
	PublishAlert(ev live.AlertEvent)
}

// RuleAnnouncer tells the other instances of a cluster that a rule was
// created, changed or deleted (*bus.Bus), so that they reload it
// (Service.RuleChanged).
type RuleAnnouncer interface {
	AnnounceRule(id int64)
}

// ClusterLock is the lock of a cluster's instances on silence evaluation
// (*postgres.SessionLock): the instance that holds it watches every device
// for silence rules, from the devices' stored activity; the others raise
// no silence alert, since they see only the messages they stored.
type ClusterLock interface {
	// Hold takes the lock, or checks that it is still held: true while
	// this instance holds it.
	Hold(ctx context.Context) (bool, error)
	// Release gives it up.
	Release()
}

// Latest reads a device's metrics with their last values, for the rules'
// preview (*telemetry.Store).
type Latest interface {
	Metrics(ctx context.Context, deviceID string) ([]telemetry.Metric, error)
}

// Audit actions.
const (
	ActionRuleCreate  = "alert-rule.create"
	ActionRuleUpdate  = "alert-rule.update"
	ActionRuleDelete  = "alert-rule.delete"
	ActionAcknowledge = "alert.acknowledge"
	ActionClear       = "alert.clear"
	ActionHookCreate  = "webhook.create"
	ActionHookUpdate  = "webhook.update"
	ActionHookDelete  = "webhook.delete"
	ActionHookDisable = "webhook.disable" // by the hub, after failing for a day
)

// SettingSnapshot is the setting that holds the evaluator's timers and
// baselines (alert.Snapshot without what the tables hold). An instance of
// a cluster keeps its own under SettingSnapshot + "@" + its node name:
// each evaluates the devices whose messages it stores, so one shared
// setting would hold whichever instance saved last, and another's timers
// would come back at a restart.
const SettingSnapshot = "alert_evaluator"

// Config is what the service needs; Store, Fleet, Audit are required.
type Config struct {
	Store    Store
	Webhooks WebhookStore // nil: no webhooks
	Fleet    Fleet
	Audit    Auditor
	Live     Publisher // nil announces nothing
	Latest   Latest    // nil previews threshold rules as active nowhere
	// Retention is how long cleared alerts are kept (default 90 days).
	Retention time.Duration
	// QueueBatches bounds the committed batches waiting for evaluation
	// (default 4,096). Beyond it batches are dropped and counted: ingest
	// never waits for alerting.
	QueueBatches int
	// Silence is the cluster's lock on silence evaluation; nil for one
	// instance, which watches its devices for silence by the messages it
	// stores.
	Silence ClusterLock
	// SilenceSync is how often the instance holding Silence reads the
	// devices' stored activity (default 5 s), and the others try to take
	// it; a silence timer that runs out reads it too first.
	SilenceSync time.Duration
	// Rules announces rule changes made here to the other instances of a
	// cluster; nil for one instance.
	Rules RuleAnnouncer
	// Node names this instance of a cluster (its --node); "" for one
	// instance. It keys the saved evaluator state (SettingSnapshot).
	Node string
	// RuleReload is how often every rule is read again from the store
	// (default 30 s): the safety net for an announcement that was lost, or
	// a rule changed by another process.
	RuleReload time.Duration
	// BaseURL is the dashboard's address for links in webhooks ("" for none).
	BaseURL string
	// Delivery tunes webhook delivery.
	Delivery DeliveryOptions
	Now      func() time.Time
	Logger   *slog.Logger
}

// Service is the running alerting.
type Service struct {
	cfg Config
	log *slog.Logger
	ev  atomic.Pointer[alert.Evaluator] // replaced when taking silence over

	// leading: this instance holds Config.Silence (always false without).
	leading  atomic.Bool
	lastSync time.Time // of the stored activity; the evaluation loop's

	in      chan *inputs
	spare   chan *inputs // evaluated, emptied, for Committed to fill again
	dropped atomic.Int64

	// mu orders every change to stored alerts: transitions of the
	// evaluator and operators' actions.
	mu     sync.Mutex
	open   map[alert.Key]alert.Alert
	counts map[alert.Severity]int
	byDev  map[string]*[6]int // open alerts of each device by severity rank
	names  map[int64]string   // rule names for events
	silent map[int64]bool     // the silence rules

	hooks *deliverer

	// ruleMu orders the changes of rules in the evaluator: an operator's
	// here and reloads from the store, each read and applied under it, so
	// that a reload never puts back an older version. rules is what the
	// evaluator has.
	ruleMu  sync.Mutex
	rules   map[int64]alert.Rule
	reloads chan int64 // rule ids announced by other instances

	// known are the devices whose tags the evaluator has; another process
	// (the CLI) may add a device or change its tags behind the registry's
	// back, so an unknown device is read on its first message, and tags
	// are compared with the registry every TagRefresh.
	knownMu sync.Mutex
	known   map[string]map[string]string

	stop      context.CancelFunc
	wg        sync.WaitGroup
	evaluated chan struct{} // closed when the evaluation loop ends
	closed    atomic.Bool
}

// input is one event for the evaluator, copied out of what ingest or the
// registry handed over.
type input struct {
	deviceID string
	at       time.Time
	samples  []alert.Sample
	reported map[string]any // a twin's reported properties; nil for a message
}

// inputs is a queued batch of events. Committed's come back to it once
// evaluated (recycle): a commit's events and samples were about a ninth
// of the bytes the hub allocated with single messages (bench/README.md,
// issue 10, eighth round).
type inputs struct {
	in     []input
	arrays [][]alert.Sample // what in's samples are parts of, in order
}

// array is the batch's k-th samples array (they are taken in order),
// empty with room for n: the one it keeps when large enough, else a new
// one that it keeps instead, with room to spare for the next commits, up
// to keptArrays.
func (b *inputs) array(k, n int) []alert.Sample {
	if k < len(b.arrays) && cap(b.arrays[k]) >= n {
		return b.arrays[k][:0]
	}
	if k < len(b.arrays) {
		n = max(n, min(arraySamples, 2*cap(b.arrays[k])))
	}
	a := make([]alert.Sample, 0, n)
	switch {
	case k < len(b.arrays):
		b.arrays[k] = a
	case k < keptArrays:
		b.arrays = append(b.arrays, a)
	}
	return a
}

// spareInputs is how many evaluated batches wait to be filled again: the
// evaluator gives one back per commit, Committed takes one.
const spareInputs = 4

// A kept batch has at most keptInputs events and keptArrays samples arrays
// of at most arraySamples (24 KB each, under Go's large-object size, which
// a commit of SDK batches would otherwise take a fresh span for): a commit
// of single messages fits, SDK batches' commits of thousands allocate what
// does not.
const (
	keptInputs   = 1024
	keptArrays   = 4
	arraySamples = 1024
)

// New recovers the evaluator (rules, devices, open alerts and the saved
// snapshot) and starts the evaluation loop, the pruner and the webhook
// deliverer.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Fleet == nil || cfg.Audit == nil {
		return nil, errors.New("alerting.New: Config needs Store, Fleet and Audit")
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	if cfg.QueueBatches <= 0 {
		cfg.QueueBatches = 4096
	}
	if cfg.SilenceSync <= 0 {
		cfg.SilenceSync = 5 * time.Second
	}
	if cfg.RuleReload <= 0 {
		cfg.RuleReload = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, silent: map[int64]bool{},
		in: make(chan *inputs, cfg.QueueBatches), spare: make(chan *inputs, spareInputs),
		open: map[alert.Key]alert.Alert{}, counts: map[alert.Severity]int{}, byDev: map[string]*[6]int{},
		known: map[string]map[string]string{}, names: map[int64]string{},
		rules: map[int64]alert.Rule{}, reloads: make(chan int64, reloadQueue),
	}
	if cfg.Silence != nil {
		held, err := cfg.Silence.Hold(ctx)
		if err != nil {
			s.log.Warn("take the cluster's silence lock", "err", err)
		}
		s.leading.Store(held)
	}
	if err := s.recover(ctx); err != nil {
		if cfg.Silence != nil {
			cfg.Silence.Release()
		}
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	if cfg.Webhooks != nil {
		s.hooks = newDeliverer(cfg.Webhooks, cfg.Audit, cfg.Delivery, cfg.Now, s.log)
		s.run(func() { s.hooks.run(runCtx) })
	}
	s.evaluated = make(chan struct{})
	s.run(func() { defer close(s.evaluated); s.evaluate(runCtx) })
	s.run(func() { s.prune(runCtx) })
	s.run(func() { s.reloadRules(runCtx) })
	return s, nil
}

func (s *Service) run(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Close stops the loops (what is queued for evaluation is evaluated first)
// and saves the evaluator's timers and baselines.
func (s *Service) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.in)
	// The loop evaluates what is queued, then ends; the rest stop after it.
	select {
	case <-s.evaluated:
	case <-ctx.Done():
	}
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop alerting: %w", ctx.Err())
	}
	if s.cfg.Silence != nil {
		s.cfg.Silence.Release()
	}
	return s.saveSnapshot(ctx)
}

// recover loads the rules, the fleet, the open alerts and the saved
// snapshot into a fresh evaluator, advancing it to now: timers that ran
// out while the hub was down fire at their own time.
func (s *Service) recover(ctx context.Context) error {
	now := s.cfg.Now()
	ev := alert.New(alert.Options{})
	rules, err := s.cfg.Store.AlertRules(ctx)
	if err != nil {
		return err
	}
	clear(s.rules)
	for _, r := range rules {
		s.mu.Lock()
		s.names[r.ID] = r.Name
		s.silent[r.ID] = r.Condition.Kind == alert.Silence
		s.mu.Unlock()
		s.rules[r.ID] = r
		if _, err := ev.SetRule(r, now); err != nil {
			return fmt.Errorf("load alert rule %d: %w", r.ID, err)
		}
	}
	var snap alert.Snapshot
	if saved, err := s.cfg.Store.Setting(ctx, s.snapshotKey(), ""); err != nil {
		return err
	} else if saved != "" {
		if err := json.Unmarshal([]byte(saved), &snap); err != nil {
			s.log.Warn("the saved alert timers are unreadable; pending timers start again", "err", err)
			snap = alert.Snapshot{}
		}
	}
	snap.Devices, snap.Open = nil, nil // from the registry and the alerts table, which are current
	for offset := 0; ; {
		page, _, err := s.cfg.Fleet.Devices(ctx, db.DeviceFilter{Offset: offset, Limit: 1000})
		if err != nil {
			return err
		}
		for _, d := range page {
			snap.Devices = append(snap.Devices, alert.DeviceState{ID: d.DeviceID, Tags: d.Tags, LastSeen: d.LastActivity})
			s.knownMu.Lock()
			s.known[d.DeviceID] = d.Tags
			s.knownMu.Unlock()
		}
		if len(page) < 1000 {
			break
		}
		offset += len(page)
	}
	for before := int64(0); ; {
		page, err := s.cfg.Store.Alerts(ctx, db.AlertFilter{State: "open", BeforeID: before, Limit: db.MaxAlertsListed})
		if err != nil {
			return err
		}
		s.mu.Lock()
		for _, a := range page {
			k := alert.Key{RuleID: a.RuleID, DeviceID: a.DeviceID}
			s.open[k] = a
			s.count(a, 1)
			snap.Open = append(snap.Open, alert.OpenAlert{RuleID: a.RuleID, DeviceID: a.DeviceID, Severity: a.Severity,
				FirstAt: a.FirstAt, LastAt: a.LastAt, Count: a.Count, Value: a.Value})
			before = a.ID
		}
		s.mu.Unlock()
		if len(page) < db.MaxAlertsListed {
			break
		}
	}
	trs, err := ev.Restore(snap, now)
	if err != nil {
		return err
	}
	s.ev.Store(ev)
	s.apply(ctx, trs)
	s.log.Info("alerting recovered", "rules", len(rules), "devices", len(snap.Devices), "open alerts", len(s.open))
	return nil
}

func (s *Service) saveSnapshot(ctx context.Context) error {
	snap := s.eval().Snapshot()
	snap.Devices, snap.Open = nil, nil
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	return s.cfg.Store.SetSetting(ctx, s.snapshotKey(), string(b))
}

func (s *Service) snapshotKey() string {
	if s.cfg.Node == "" {
		return SettingSnapshot
	}
	return SettingSnapshot + "@" + s.cfg.Node
}

// Committed takes a committed batch from ingest (ingest.Publisher, called
// on the pipeline's writer after the senders were answered). It copies
// what evaluation needs and queues it without waiting; a full queue drops
// the batch, counted by Dropped and logged.
func (s *Service) Committed(batch []telemetry.Record) {
	if len(batch) == 0 || s.closed.Load() {
		return
	}
	// The batch's samples in a few arrays, each input a part of one (the
	// evaluator reads them and keeps none), rather than a slice a message;
	// kept from one commit to the next (inputs.array).
	left := 0
	for i := range batch {
		left += len(batch[i].Readings)
	}
	b := s.spareInputs()
	b.in = slices.Grow(b.in[:0], len(batch))[:len(batch)]
	var all []alert.Sample
	arrays := 0
	for i := range batch {
		r := &batch[i]
		b.in[i] = input{deviceID: r.Message.DeviceID, at: r.Message.EnqueuedAt}
		if len(r.Readings) == 0 {
			continue
		}
		if cap(all)-len(all) < len(r.Readings) {
			all = b.array(arrays, max(min(left, arraySamples), len(r.Readings)))
			arrays++
		}
		start := len(all)
		for _, rd := range r.Readings {
			all = append(all, alert.Sample{Metric: rd.Metric, Value: rd.Value})
		}
		left -= len(r.Readings)
		b.in[i].samples = all[start:len(all):len(all)]
	}
	s.enqueue(b)
}

// spareInputs is an evaluated batch to fill again, or a new one.
func (s *Service) spareInputs() *inputs {
	select {
	case b := <-s.spare:
		return b
	default:
		return &inputs{}
	}
}

// recycle empties an evaluated (or dropped) batch, so that it holds no
// device, metric name or reported properties, and keeps it for Committed
// unless it is large or enough are kept.
func (s *Service) recycle(b *inputs) {
	if cap(b.in) > keptInputs {
		return
	}
	clear(b.in[:cap(b.in)])
	b.in = b.in[:0]
	for _, a := range b.arrays {
		clear(a[:cap(a)])
	}
	select {
	case s.spare <- b:
	default:
	}
}

// Reported takes a device's reported properties after a twin update.
func (s *Service) Reported(deviceID string, reported map[string]any, at time.Time) {
	if s.closed.Load() {
		return
	}
	s.enqueue(&inputs{in: []input{{deviceID: deviceID, at: at, reported: reported}}})
}

func (s *Service) enqueue(b *inputs) {
	defer func() {
		// Close may have closed the queue between the check and the send.
		_ = recover()
	}()
	select {
	case s.in <- b:
	default:
		in := b.in
		if s.dropped.Add(int64(len(in))) == int64(len(in)) {
			s.log.Warn("alert evaluation queue is full; messages are not evaluated", "queue batches", cap(s.in))
		}
		s.recycle(b)
	}
}

// Dropped is how many messages were not evaluated because the queue was full.
func (s *Service) Dropped() int64 { return s.dropped.Load() }

// QueueDepth is how many batches wait for evaluation.
func (s *Service) QueueDepth() int { return len(s.in) }

// evaluate is the evaluation loop: queued messages, and the evaluator's
// timers (forSeconds and silence).
func (s *Service) evaluate(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var sync <-chan time.Time // the cluster's silence: take the lock, read the stored activity
	if s.cfg.Silence != nil {
		t := time.NewTicker(s.cfg.SilenceSync)
		defer t.Stop()
		sync = t.C
	}
	for {
		if next, ok := s.eval().NextDeadline(); ok {
			timer.Reset(max(next.Sub(s.cfg.Now()), 0))
		} else {
			timer.Stop()
		}
		select {
		case batch, ok := <-s.in:
			if !ok {
				return
			}
			for _, in := range batch.in {
				s.learn(ctx, in.deviceID)
				var trs []alert.Transition
				if in.reported != nil {
					trs = s.eval().Reported(in.deviceID, nil, in.at, in.reported)
				} else {
					trs = s.eval().Reading(in.deviceID, nil, in.at, in.samples)
				}
				s.apply(ctx, trs)
			}
			s.recycle(batch)
		case <-s.eval().Wake():
		case <-timer.C:
			s.tick(ctx)
		case <-sync:
			s.tick(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) eval() *alert.Evaluator { return s.ev.Load() }

// tick fires the evaluator's timers due. In a cluster, the instance that
// holds the silence lock first reads the devices' stored activity, so
// that a device heard by another instance is not found silent; one that
// takes the lock over rebuilds its evaluator from the store, so that it
// continues from the stored activity and open alerts.
func (s *Service) tick(ctx context.Context) {
	if s.cfg.Silence != nil {
		s.watchSilence(ctx)
	}
	s.apply(ctx, s.eval().Tick(s.cfg.Now()))
}

func (s *Service) watchSilence(ctx context.Context) {
	held, err := s.cfg.Silence.Hold(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("take the cluster's silence lock", "err", err)
	}
	switch was := s.leading.Load(); {
	case held && !was:
		s.leading.Store(true) // before the rebuild, which may raise
		s.ruleMu.Lock()
		s.mu.Lock()
		s.open, s.counts, s.byDev = map[alert.Key]alert.Alert{}, map[alert.Severity]int{}, map[string]*[6]int{}
		s.mu.Unlock()
		err := s.recover(ctx)
		s.ruleMu.Unlock()
		if err != nil {
			s.log.Error("take silence rules over", "err", err)
		}
		s.log.Info("this instance now watches the cluster's devices for silence rules")
	case !held && was:
		s.leading.Store(false)
		s.log.Warn("this instance no longer holds the cluster's silence lock; another watches the devices for silence")
	}
	if now := s.cfg.Now(); held && now.Sub(s.lastSync) >= time.Second {
		// A minute's margin for activity stored late (it is written
		// lazily, about a second after the message).
		since := s.lastSync.Add(-time.Minute)
		s.lastSync = now
		s.syncActivity(ctx, since)
	}
}

// syncActivity tells the evaluator the stored last activity of the
// devices heard since since, newest first, so that a sync costs what the
// fleet sent since the last one rather than the fleet's size (the
// evaluator was given every device's activity when this instance took the
// lock). A device heard again while the pages are read may be passed
// over; the next sync's margin takes it.
func (s *Service) syncActivity(ctx context.Context, since time.Time) {
	for offset := 0; ; {
		page, _, err := s.cfg.Fleet.Devices(ctx, db.DeviceFilter{Sort: db.DeviceSortLastActivity, Desc: true, Offset: offset, Limit: 1000})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("read the devices' activity for silence rules", "err", err)
			}
			return
		}
		ev := s.eval()
		for _, d := range page {
			if d.LastActivity.IsZero() || d.LastActivity.Before(since) {
				return
			}
			s.apply(ctx, ev.Heard(d.DeviceID, d.LastActivity))
		}
		if len(page) < 1000 {
			return
		}
		offset += len(page)
	}
}

// DeviceChanged tells the evaluator a device's tags after a registry change
// (registry.Watcher).
func (s *Service) DeviceChanged(ctx context.Context, d db.Device) {
	s.knownMu.Lock()
	s.known[d.DeviceID] = d.Tags
	s.knownMu.Unlock()
	s.apply(ctx, s.eval().DeviceChanged(d.DeviceID, d.Tags, s.cfg.Now()))
}

// DeviceDeleted clears a deleted device's alerts (registry.Watcher).
func (s *Service) DeviceDeleted(ctx context.Context, deviceID string) {
	s.knownMu.Lock()
	delete(s.known, deviceID)
	s.knownMu.Unlock()
	s.apply(ctx, s.eval().DeviceDeleted(deviceID, s.cfg.Now()))
}

// learn reads a device the evaluator does not know yet (added by another
// process) before its first message is evaluated.
func (s *Service) learn(ctx context.Context, deviceID string) {
	s.knownMu.Lock()
	_, ok := s.known[deviceID]
	s.knownMu.Unlock()
	if ok {
		return
	}
	d, err := s.cfg.Fleet.Device(ctx, deviceID)
	if err != nil {
		return // deleted meanwhile; the evaluator sees it without tags
	}
	s.DeviceChanged(ctx, d)
}

// refreshTags compares every device's tags with what the evaluator has,
// for changes made by another process; the registry reports its own.
func (s *Service) refreshTags(ctx context.Context) {
	seen := map[string]bool{}
	for offset := 0; ; {
		page, _, err := s.cfg.Fleet.Devices(ctx, db.DeviceFilter{Offset: offset, Limit: 1000})
		if err != nil {
			return
		}
		for _, d := range page {
			seen[d.DeviceID] = true
			s.knownMu.Lock()
			tags, ok := s.known[d.DeviceID]
			s.knownMu.Unlock()
			if !ok || !maps.Equal(tags, d.Tags) {
				s.DeviceChanged(ctx, d)
			}
		}
		if len(page) < 1000 {
			break
		}
		offset += len(page)
	}
	s.knownMu.Lock()
	var gone []string
	for id := range s.known {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	s.knownMu.Unlock()
	for _, id := range gone { // unless it was added after its page was read
		if _, err := s.cfg.Fleet.Device(ctx, id); errors.Is(err, storage.ErrNotFound) {
			s.DeviceDeleted(ctx, id)
		}
	}
}

// prune deletes cleared alerts past the retention, and finished webhook
// deliveries past theirs, saves the evaluator's timers and compares the
// fleet's tags, every minute.
func (s *Service) prune(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		s.pruneOnce(ctx)
		s.saveSnapshotLogged(ctx)
		s.refreshTags(ctx)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// pruneOnce deletes in steps, so that no step holds the writer long.
func (s *Service) pruneOnce(ctx context.Context) {
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	for {
		n, err := s.cfg.Store.PruneAlerts(ctx, cutoff, 1000)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("prune alert history", "err", err)
			}
			return
		}
		if n < 1000 {
			break
		}
	}
	if s.hooks != nil {
		s.hooks.prune(ctx, s.cfg.Now().Add(-s.cfg.Retention))
	}
}

func (s *Service) saveSnapshotLogged(ctx context.Context) {
	if err := s.saveSnapshot(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("save alert timers", "err", err)
	}
}

// storeTimeout bounds a write that must finish even when shutting down.
const storeTimeout = 10 * time.Second

// storeCtx is a context for writes that must not be cut short by a
// request that went away.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}
