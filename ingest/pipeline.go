// Package ingest takes device-to-cloud messages from the device endpoints
// to storage: it reads the Azure IoT Hub wire formats (HTTP headers and
// batches; the MQTT broker builds its own), bounds their size, and stores
// them through a queue and one writer that group-commits into the telemetry
// store, answering each sender only once its messages committed, then hands
// them to the live streams.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Errors returned by Submit.
var (
	// ErrOverloaded means the queue is full; the device should retry later
	// (HTTP 503 with Retry-After).
	ErrOverloaded = errors.New("ingest queue is full")
	// ErrClosed means the pipeline is shutting down.
	ErrClosed = errors.New("ingest pipeline is closed")
	// ErrDeviceGone means the device was deleted before its message committed.
	ErrDeviceGone = errors.New("device no longer exists")
	// ErrStorage means the commit failed (a full disk, an I/O error): the
	// message is not stored and the device should retry later (HTTP 503
	// with Retry-After; over MQTT, no PUBACK).
	ErrStorage = errors.New("storage failed")
)

// The kinds of write the pipeline reports to storage.Health.
const (
	opMessages   = "storing device messages"
	opCheckpoint = "writing telemetry checkpoints"
	opRetention  = "deleting old telemetry"
	opIndex      = "indexing device messages"
)

// Store is the telemetry store the pipeline writes to (*telemetry.Store).
type Store interface {
	Append(ctx context.Context, recs []telemetry.Record) ([]int64, error)
	CheckpointStep(ctx context.Context, maxRows int) (bool, telemetry.CheckpointStats, error)
	Checkpoint(ctx context.Context) (telemetry.CheckpointStats, error)
	Prune(ctx context.Context, now time.Time, limit int) (int, bool, error)
	HungUp(ctx context.Context, deviceID string) error
	IndexMessages(ctx context.Context, limit int) (int, error)
}

// Publisher receives every batch after it committed, each record with its
// Message.ID set (it increases with commit order), on the pipeline's writer
// goroutine. It must return at once and never block (queue and drop per
// subscriber instead): ingest waits for it.
type Publisher interface {
	Committed(batch []telemetry.Record)
}

// Options tune the pipeline; zero values take the defaults.
type Options struct {
	// QueueMessages and QueueBytes bound what waits for the writer; beyond
	// either Submit returns ErrOverloaded. Defaults 5,000 and 16 MiB:
	// a few hundred milliseconds of the writer's work, so a full queue also
	// bounds how long an acknowledgement waits.
	QueueMessages int
	QueueBytes    int64
	// MaxBatch bounds the messages of one transaction (default 2,000).
	MaxBatch int
	// MaxDelay is how long the writer waits for more messages once the queue
	// is empty before committing a small batch (default 1ms; fsync dominates).
	MaxDelay time.Duration
	// CheckpointEvery and CheckpointMessages bound how much of the message log
	// is replayed after a crash (defaults 30s and 200,000 messages).
	CheckpointEvery    time.Duration
	CheckpointMessages int
	// CheckpointStepRows bounds the rows a checkpoint writes in one
	// transaction between batches (default 256), so that a checkpoint delays
	// no batch by more than a few milliseconds, however many series there are.
	CheckpointStepRows int
	// IndexEvery, IndexStepRows and IndexStepTime pace the message log's
	// per-device index where the store keeps it out of the commit
	// (telemetry.MessageIndexer): every IndexEvery (default 2s) the writer
	// indexes the messages committed since, in steps of at most
	// IndexStepRows (default 20,000), one step per turn between batches
	// while a backlog remains. Within that bound a step's rows follow the
	// fastest time per row of the last steps, so that a step holds the
	// writer about IndexStepTime on an unloaded machine (default 10ms; at
	// least 1,000 rows, or IndexStepRows if smaller): every message that
	// arrives during a step waits for it. A step rewrites the newest
	// bucket's pages of the devices it touches, so smaller steps write more
	// per message (bench/README.md, issue 10, fourth, seventh and eighth
	// rounds). Listings scan what is not indexed yet, so a longer interval
	// costs reads, never results. The writer looks at least once a second,
	// and after every batch.
	IndexEvery    time.Duration
	IndexStepRows int
	IndexStepTime time.Duration
	// PruneEvery is how often telemetry past its retention (the store's
	// own) is deleted (default 10 minutes).
	PruneEvery time.Duration
	// Health receives the outcome of every commit (default: one of its own,
	// which only logs).
	Health *storage.Health
	Logger *slog.Logger
	Now    func() time.Time
}

func (o *Options) defaults() {
	if o.QueueMessages <= 0 {
		o.QueueMessages = 5000
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 16 << 20
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 2000
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = time.Millisecond
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 30 * time.Second
	}
	if o.CheckpointMessages <= 0 {
		o.CheckpointMessages = 200000
	}
	if o.CheckpointStepRows <= 0 {
		o.CheckpointStepRows = 256
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = 2 * time.Second
	}
	if o.IndexStepRows <= 0 {
		o.IndexStepRows = 20000
	}
	if o.IndexStepTime <= 0 {
		o.IndexStepTime = 10 * time.Millisecond
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Health == nil {
		o.Health = storage.NewHealth(o.Logger, nil, nil)
	}
}

// Pipeline takes device-to-cloud messages from any number of goroutines and
// stores them through one writer goroutine that commits whatever is waiting
// in one transaction (group commit), so that the cost of a durable commit is
// shared by every message in it.
type Pipeline struct {
	store  Store
	pub    Publisher
	opts   Options
	log    *slog.Logger
	health *storage.Health
	// names shares metric name strings between messages (telemetry.Names).
	names *telemetry.Names

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	queue  chan *request

	queuedMsgs  atomic.Int64
	queuedBytes atomic.Int64
	roomMu      sync.Mutex
	room        chan struct{} // closed when room is made; nil while nobody waits
	stats       struct{ committed, batches, overloaded atomic.Int64 }
	byProtocol  [len(Protocols)]protocolStats
	commitTime  latency
	stepTime    [NumSteps]latency // by StepIndex and the rest
	indexPace   indexPace         // the writer's own
	refusals    Refusals

	done     chan struct{}
	closeErr error

	// requests are the single messages' requests of Submit and
	// EnqueueFunc, used again once their outcome is reported (a request,
	// its one record and its channel were three allocations a message).
	requests sync.Pool
	// recs is the writer's batch of records, used again by every commit.
	recs []telemetry.Record
}

type request struct {
	recs  []telemetry.Record
	bytes int64
	// The outcome goes to done, or to notify when it is set (EnqueueFunc).
	done   chan error
	notify func(error)
	// pool is where a request goes back once finished; nil: nowhere (its
	// sender may still hold it).
	pool *sync.Pool
	// one holds a single message's record, so that it needs no slice of
	// its own.
	one [1]telemetry.Record
}

// finish reports the request's outcome, once. A request of EnqueueFunc
// from the pool goes back to it: the writer does not touch it after this.
func (r *request) finish(err error) {
	if r.notify != nil {
		notify := r.notify
		r.recycle()
		notify(err)
		return
	}
	r.done <- err
}

// recycle returns a pooled request to its pool, its record cleared so that
// the pool holds no message.
func (r *request) recycle() {
	if r.pool == nil {
		return
	}
	pool := r.pool
	r.one[0] = telemetry.Record{}
	r.recs, r.notify, r.bytes = nil, nil, 0
	pool.Put(r)
}

// New starts the writer. pub may be nil.
func New(store Store, pub Publisher, opts Options) *Pipeline {
	opts.defaults()
	p := &Pipeline{
		store: store, pub: pub, opts: opts, log: opts.Logger, health: opts.Health,
		names:     telemetry.NewNames(),
		queue:     make(chan *request, opts.QueueMessages),
		done:      make(chan struct{}),
		indexPace: newIndexPace(opts.IndexStepRows, opts.IndexStepTime),
	}
	go p.run()
	return p
}

// Submit stores msgs and returns once they are committed (durably, with the
// database's synchronous=FULL), or with an error: ErrOverloaded when the queue
// is full, ErrClosed during shutdown, ErrDeviceGone, ErrStorage, or
// ctx's error (the messages may still commit). Every message must carry the
// authenticated DeviceID; a zero EnqueuedAt is set to now.
func (p *Pipeline) Submit(ctx context.Context, msgs ...telemetry.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	req, err := p.prepare(msgs)
	if err != nil {
		return err
	}
	if req.done == nil {
		req.done = make(chan error, 1)
	}
	if err := p.enqueue(req); err != nil {
		if errors.Is(err, ErrOverloaded) {
			p.stats.overloaded.Add(1)
		}
		req.recycle() // never queued
		return err
	}
	select {
	case err := <-req.done:
		// The writer sent the outcome and is done with req.
		req.recycle()
		return err
	case <-ctx.Done():
		// The writer still holds req and will send on its channel: it is
		// not used again.
		return fmt.Errorf("submit: %w", ctx.Err())
	}
}

// HungUp tells the store that the device's live connection closed and the
// close is recorded, so that the device's next message shows it online at
// once (telemetry.Store.HungUp).
func (p *Pipeline) HungUp(ctx context.Context, deviceID string) error {
	return p.store.HungUp(ctx, deviceID)
}

// Enqueue queues msgs and returns without waiting for the commit: the
// returned channel receives its outcome (nil once committed) exactly once.
// Unlike Submit it waits for room when the queue is full, for at most wait
// (0: no bound of its own) and until ctx ends, so that a caller that can
// hold its sender back (an MQTT connection stops reading) does so instead
// of refusing. A wait that runs out is context.DeadlineExceeded; the timer
// exists only once the queue was found full, as it rarely is. Errors are
// those of Submit.
func (p *Pipeline) Enqueue(ctx context.Context, wait time.Duration, msgs ...telemetry.Message) (<-chan error, error) {
	done := make(chan error, 1)
	if len(msgs) == 0 {
		done <- nil
		return done, nil
	}
	req, err := p.prepare(msgs)
	if err != nil {
		return nil, err
	}
	// The caller keeps the channel: this request is not used again.
	req.pool = nil
	req.done = done
	if err := p.enqueueWaiting(ctx, wait, req); err != nil {
		return nil, err
	}
	return done, nil
}

// EnqueueFunc is Enqueue with a function in place of the channel: unless
// it returns an error, done is called exactly once with the outcome, on the
// writer's goroutine right after the commit (before Committed), and the
// calls of one goroutine's EnqueueFunc come in the order those returned.
// done must return at once and never block: the rest of the batch and the
// next commit wait for it. It spares a caller that answers many senders per
// commit a goroutine woken per message (the MQTT broker's PUBACKs,
// mqtt/acks.go). It takes one message, by value: a variadic list called
// through an interface escaped to the heap, a copy of every publish.
func (p *Pipeline) EnqueueFunc(ctx context.Context, wait time.Duration, done func(error), msg telemetry.Message) error {
	msgs := [1]telemetry.Message{msg}
	req, err := p.prepare(msgs[:])
	if err != nil {
		return err
	}
	req.notify = done
	if err := p.enqueueWaiting(ctx, wait, req); err != nil {
		req.recycle() // never queued
		return err
	}
	return nil
}

// enqueueWaiting queues req, waiting for room as Enqueue says.
func (p *Pipeline) enqueueWaiting(ctx context.Context, wait time.Duration, req *request) error {
	var timeout <-chan time.Time
	for {
		// Take the signal before trying, so that room made in between is
		// not missed.
		room := p.roomSignal()
		err := p.enqueue(req)
		if !errors.Is(err, ErrOverloaded) {
			return err
		}
		if timeout == nil && wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-timeout:
			return fmt.Errorf("wait for room in the ingest queue: %w", context.DeadlineExceeded)
		case <-ctx.Done():
			return fmt.Errorf("wait for room in the ingest queue: %w", ctx.Err())
		}
	}
}

// prepare checks msgs and parses their readings, on the caller's goroutine,
// so that the single writer only writes. A single message's request comes
// from the pool (its record in the request itself), a batch's is new.
func (p *Pipeline) prepare(msgs []telemetry.Message) (*request, error) {
	now := p.opts.Now()
	for i := range msgs {
		m := &msgs[i]
		if m.DeviceID == "" {
			return nil, fmt.Errorf("submit message %d: no device id", i)
		}
		if err := CheckSize(m); err != nil {
			return nil, fmt.Errorf("submit message %d: %w", i, err)
		}
		if m.EnqueuedAt.IsZero() {
			m.EnqueuedAt = now
		}
	}
	var req *request
	if len(msgs) == 1 {
		req, _ = p.requests.Get().(*request)
		if req == nil {
			req = &request{pool: &p.requests}
		}
		req.recs = req.one[:]
	} else {
		req = &request{recs: make([]telemetry.Record, len(msgs))}
	}
	for i := range msgs {
		req.recs[i] = p.names.NewRecord(msgs[i])
		req.bytes += int64(msgs[i].Size()) + 256
	}
	return req, nil
}

// roomSignal returns a channel closed the next time the writer frees room
// in the queue (or the pipeline closes).
func (p *Pipeline) roomSignal() <-chan struct{} {
	p.roomMu.Lock()
	defer p.roomMu.Unlock()
	if p.room == nil {
		p.room = make(chan struct{})
	}
	return p.room
}

// roomMade wakes the callers waiting for room.
func (p *Pipeline) roomMade() {
	p.roomMu.Lock()
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.roomMu.Unlock()
}

// Busy reports whether the queue is full, so that a caller can refuse work
// before spending memory and CPU on reading and decoding it.
func (p *Pipeline) Busy() bool {
	return p.queuedMsgs.Load() >= int64(p.opts.QueueMessages) || p.queuedBytes.Load() >= p.opts.QueueBytes
}

func (p *Pipeline) enqueue(req *request) error {
	msgs, bytes := p.queuedMsgs.Add(int64(len(req.recs))), p.queuedBytes.Add(req.bytes)
	if msgs > int64(p.opts.QueueMessages) || bytes > p.opts.QueueBytes {
		p.release(req)
		return ErrOverloaded
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.release(req)
		return ErrClosed
	}
	select {
	case p.queue <- req:
		return nil
	default: // cannot happen while the counters hold, but never block a caller
		p.release(req)
		return ErrOverloaded
	}
}

func (p *Pipeline) release(req *request) {
	p.queuedMsgs.Add(-int64(len(req.recs)))
	p.queuedBytes.Add(-req.bytes)
}

// Stats are counters for logs and benchmarks.
type Stats struct {
	Committed  int64 // messages
	Batches    int64 // transactions
	Overloaded int64 // submissions refused with ErrOverloaded (Enqueue waits instead)
	Queued     int64 // messages waiting or being written now
	// ByProtocol is what committed, by protocol, in the order of Protocols.
	ByProtocol [len(Protocols)]Ingested
	// CommitSeconds is the latency of the writer's transactions (failed
	// ones too: a failing disk is when it matters).
	CommitSeconds Latency
	// StepSeconds is the latency of the writer's steps between batches,
	// by StepIndex and the rest (Steps): the time commits waited for them.
	StepSeconds [NumSteps]Latency
	// Refused are the device messages the endpoints refused, by protocol
	// (as ByProtocol) and Reason.
	Refused [len(Protocols)][NumReasons]int64
}

// Refusals is where the device endpoints count what they refuse; Stats
// reports it.
func (p *Pipeline) Refusals() *Refusals { return &p.refusals }

// Stats returns the counters so far.
func (p *Pipeline) Stats() Stats {
	st := Stats{
		Committed: p.stats.committed.Load(), Batches: p.stats.batches.Load(),
		Overloaded: p.stats.overloaded.Load(), Queued: p.queuedMsgs.Load(),
		CommitSeconds: p.commitTime.snapshot(),
	}
	for i := range st.StepSeconds {
		st.StepSeconds[i] = p.stepTime[i].snapshot()
	}
	for i := range st.ByProtocol {
		b := &p.byProtocol[i]
		st.ByProtocol[i] = Ingested{Messages: b.messages.Load(), Readings: b.readings.Load(), Bytes: b.bytes.Load()}
	}
	for i := range st.Refused {
		for r := range st.Refused[i] {
			st.Refused[i][r] = p.refusals.n[i][r].Load()
		}
	}
	return st
}

// Close stops accepting messages, commits everything already queued, writes a
// checkpoint and stops the writer. Call it after the listeners stopped and
// before the database closes.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	p.roomMade()
	select {
	case <-p.done:
		return p.closeErr
	case <-ctx.Done():
		return fmt.Errorf("close ingest: %w", ctx.Err())
	}
}

// run is the writer goroutine.
func (p *Pipeline) run() {
	defer close(p.done)
	ctx := context.Background()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// While a checkpoint is in progress the loop does not wait for messages:
	// it writes one step of the checkpoint after each batch, or on its own.
	noWait := make(chan time.Time)
	close(noWait)
	var (
		sinceCheckpoint int
		lastCheckpoint  = p.opts.Now()
		checkpointing   bool
		stepAfter       time.Time                       // after a failed step, not before this
		nextPrune       = p.opts.Now().Add(time.Minute) // not while starting up
		pruning         bool
		nextIndex       = p.opts.Now()
		indexing        bool // a backlog remains to index
	)
	for {
		var first *request
		idle := tick.C
		if indexing || checkpointing && !p.opts.Now().Before(stepAfter) {
			idle = noWait
		}
		select {
		case req, ok := <-p.queue:
			if !ok {
				_, err := p.store.Checkpoint(ctx)
				p.health.Record(opCheckpoint, err)
				if err != nil {
					// Nothing is lost: recovery replays the message log.
					p.log.Warn("final telemetry checkpoint failed; the next start rebuilds it from the message log", "err", err)
				}
				return
			}
			first = req
		case <-idle:
		}
		if first != nil {
			sinceCheckpoint += p.commit(ctx, p.collect(first))
		}
		now := p.opts.Now()
		if !checkpointing && (sinceCheckpoint >= p.opts.CheckpointMessages || (sinceCheckpoint > 0 && now.Sub(lastCheckpoint) >= p.opts.CheckpointEvery)) {
			// The cycle covers the messages committed so far.
			checkpointing, sinceCheckpoint, lastCheckpoint = true, 0, now
		}
		if checkpointing && !now.Before(stepAfter) {
			start := time.Now()
			done, _, err := p.store.CheckpointStep(ctx, p.opts.CheckpointStepRows)
			p.stepTime[StepCheckpoint].observe(time.Since(start))
			p.health.Record(opCheckpoint, err)
			if err != nil {
				stepAfter = now.Add(time.Second) // rather than retry in a tight loop
			}
			checkpointing = !done
		}
		if indexing || !now.Before(nextIndex) {
			indexing, nextIndex = p.indexStep(ctx, now)
		}
		if pruning || now.After(nextPrune) {
			// One small step per turn so ingest keeps the writer.
			start := time.Now()
			_, more, err := p.store.Prune(ctx, now, 2000)
			p.stepTime[StepPrune].observe(time.Since(start))
			p.health.Record(opRetention, err)
			pruning = more && err == nil
			switch {
			case err != nil:
				// Soon, so that a fault it reported clears soon after its cause.
				nextPrune = now.Add(min(time.Minute, p.opts.PruneEvery))
			case !pruning:
				nextPrune = now.Add(p.opts.PruneEvery)
			}
		}
	}
}

// indexStep writes one step of the message log's per-device index, of the
// rows its pace allows. more says a backlog remains: the next step follows
// on the next turn (one step per turn, so ingest keeps the writer);
// otherwise it is due at next.
func (p *Pipeline) indexStep(ctx context.Context, now time.Time) (more bool, next time.Time) {
	limit := p.indexPace.rows
	start := p.opts.Now()
	n, err := p.store.IndexMessages(ctx, limit)
	took := p.opts.Now().Sub(start)
	p.stepTime[StepIndex].observe(took)
	p.health.Record(opIndex, err)
	if err != nil {
		return false, now.Add(p.opts.IndexEvery)
	}
	p.indexPace.observe(n, took)
	return n == limit, now.Add(p.opts.IndexEvery)
}

// collect gathers what is waiting, up to MaxBatch messages, waiting at most
// MaxDelay for more once the queue runs dry.
func (p *Pipeline) collect(first *request) []*request {
	batch := []*request{first}
	n := len(first.recs)
	var deadline <-chan time.Time
	for n < p.opts.MaxBatch {
		select {
		case req, ok := <-p.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
			n += len(req.recs)
			continue
		default:
		}
		if p.opts.MaxDelay < 0 {
			return batch
		}
		if deadline == nil {
			deadline = time.After(p.opts.MaxDelay)
		}
		select {
		case req, ok := <-p.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
			n += len(req.recs)
		case <-deadline:
			return batch
		}
	}
	return batch
}

// keepBatchRecords bounds the writer's batch buffer kept between commits:
// single messages' commits (hundreds) reuse it, the SDK batches' commits of
// MaxBatch allocate theirs, so that idle memory does not hold one (peak RSS
// is a target of its own).
const keepBatchRecords = 1024

// commit stores a batch in one transaction, wakes its waiters and publishes
// what committed. It returns how many messages committed.
func (p *Pipeline) commit(ctx context.Context, batch []*request) int {
	n := 0
	for _, req := range batch {
		n += len(req.recs)
	}
	// The writer's buffer, used again: neither Append nor the publisher
	// keeps the slice (Publisher.Committed returns at once), and it is
	// cleared after each commit so that it holds no message meanwhile.
	recs := p.recs[:0]
	if cap(recs) < n {
		recs = make([]telemetry.Record, 0, n)
	}
	for _, req := range batch {
		recs = append(recs, req.recs...)
	}
	defer func() {
		clear(recs[:n])
		p.recs = recs[:0]
		if cap(recs) > keepBatchRecords {
			p.recs = nil // a rare large batch's buffer is not held
		}
	}()
	start := time.Now()
	ids, err := p.store.Append(ctx, recs)
	p.commitTime.observe(time.Since(start))
	for _, req := range batch {
		p.release(req)
	}
	p.roomMade()
	// Health logs the first failure and the recovery; each failed batch
	// only at debug level, or a full disk would flood the log.
	p.health.Record(opMessages, err)
	if err != nil {
		p.log.Debug("store messages", "messages", len(recs), "err", err)
		for _, req := range batch {
			req.finish(fmt.Errorf("store messages: %w: %w", ErrStorage, err))
		}
		return 0
	}
	// The committed records, with their ids, keep their places in recs.
	// The counters are summed here and added once per protocol, before any
	// sender hears of its commit.
	var counts [len(Protocols)]struct{ messages, readings, bytes int64 }
	committed := 0
	for i := range recs {
		if ids[i] == 0 {
			continue
		}
		c := &counts[protocolIndex(recs[i].Message.Protocol)]
		c.messages++
		c.readings += int64(len(recs[i].Readings))
		c.bytes += int64(recs[i].Message.Size())
		recs[committed] = recs[i]
		recs[committed].Message.ID = ids[i]
		committed++
	}
	for k, c := range counts {
		if c.messages > 0 {
			b := &p.byProtocol[k]
			b.messages.Add(c.messages)
			b.readings.Add(c.readings)
			b.bytes.Add(c.bytes)
		}
	}
	i := 0
	for _, req := range batch {
		var reqErr error
		for k := range req.recs {
			if ids[i] == 0 {
				reqErr = fmt.Errorf("device %q: %w", req.recs[k].Message.DeviceID, ErrDeviceGone)
			}
			i++
		}
		req.finish(reqErr)
	}
	p.stats.committed.Add(int64(committed))
	p.stats.batches.Add(1)
	if p.pub != nil && committed > 0 {
		p.pub.Committed(recs[:committed])
	}
	return committed
}
