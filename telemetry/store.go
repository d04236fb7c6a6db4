// Package telemetry owns device-to-cloud messages once they are accepted:
// the message model, the message log, and the time series its numeric
// fields become (Flatten), packed into compressed chunks (chunk.go), kept in
// memory while they fill and written at checkpoints, rebuilt after a crash
// from the log, pruned by age and queried by range or downsampled.
//
// The engine (Store) holds no SQL: it runs on a Storage, whose SQLite
// implementation is package telemetry/sqlite; package telemetrytest is the
// suite every implementation passes.
package telemetry

import (
	"context"
	"fieldhub/storage"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"
)

// Time series live in two places. Stored chunks hold every reading of the
// messages up to the watermark, and of each metric's messages up to its own
// Through. The readings of later messages are in memory: the open chunk of
// each metric and chunks sealed since the last checkpoint. A checkpoint cycle
// snapshots what is dirty, writes it a few metrics per transaction (each with
// its Through, so that no transaction holds the writer long, however many
// metrics there are) and moves the watermark with the last one; after a
// crash Open rebuilds memory from the message log. Queries merge both, so a
// reading is visible as soon as its message committed.

// MaxMetricsPerDevice bounds the metrics one device can create, so that a
// device sending ever new key names cannot exhaust memory; readings of further
// new names are dropped (their messages are still logged).
const MaxMetricsPerDevice = 1000

// IdleSeal is how long a metric may go without readings before its open chunk
// is sealed at the next checkpoint, releasing its memory.
const IdleSeal = 10 * time.Minute

// replayPage bounds the messages recovery reads at once: a long query would
// hold the connection for all of it.
const replayPage = 5000

// Store is the telemetry engine. Writes (Append, CheckpointStep, Checkpoint,
// Prune) come from one goroutine, the ingest pipeline's writer; queries come
// from anywhere.
type Store struct {
	storage Storage
	log     *slog.Logger
	now     func() time.Time
	// retention is how long each kind is kept: Prune deletes by it, the
	// rollups skip readings older than they keep, and queries pick the tier.
	retention Retention

	// write serialises the writer-side methods: they assume one caller at a time.
	write sync.Mutex
	// mu guards the index and the series' contents against concurrent queries.
	mu          sync.RWMutex
	idx         index
	lastApplied int64            // newest message id whose readings are in memory
	folded      int64            // watermark as last stored
	cycle       *checkpointCycle // the checkpoint in progress; nil between cycles. Writer-side only.

	devices deviceCache  // writer-side only
	scratch batchScratch // writer-side only
}

// Options tune Open; zero values take the defaults.
type Options struct {
	// Logger receives what the writer notices about devices (one that
	// reached MaxMetricsPerDevice) and what recovery did; nil discards it.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Retention is how long messages, raw readings and rollups are kept
	// (zero values take the defaults).
	Retention Retention
}

// Open loads the stored metrics and rebuilds the in-memory chunks from the
// messages committed after the last checkpoint.
func Open(ctx context.Context, st Storage, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Retention.defaults()
	s := &Store{storage: st, log: opts.Logger, now: opts.Now, retention: opts.Retention, idx: newIndex(), devices: newDeviceCache()}
	watermark, metrics, err := st.Recovery(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover telemetry: %w", err)
	}
	for _, m := range metrics {
		s.idx.add(seriesOf(m))
	}
	s.folded, s.lastApplied = watermark, watermark
	n, err := s.replay(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover telemetry: %w", err)
	}
	if n > 0 {
		s.log.Info("rebuilt time series from the message log", "messages", n)
	}
	return s, nil
}

// replay adds the readings of the messages after the watermark, page by
// page, and returns how many messages it read.
func (s *Store) replay(ctx context.Context) (int, error) {
	replayed := 0
	now := s.now()
	cut := s.rollupCut(now)
	for {
		page, err := s.storage.MessagesAfter(ctx, s.lastApplied, replayPage)
		if err != nil {
			return replayed, fmt.Errorf("read messages: %w", err)
		}
		if len(page) == 0 {
			return replayed, nil
		}
		s.mu.Lock()
		for _, m := range page {
			rec := NewRecord(Message{EnqueuedAt: m.EnqueuedAt, Body: m.Body})
			ts := rec.Time.UnixMilli()
			for _, r := range rec.Readings {
				// Metrics commit with the first message naming them, so a
				// missing one was refused (MaxMetricsPerDevice) at ingest.
				// A metric written by a checkpoint cycle that did not finish
				// already has the readings up to its Through.
				if sr, ok := s.idx.byKey[seriesKey{m.Device, r.Metric}]; ok && m.ID > sr.through && isFinite(r.Value) {
					sr.add(ts, r.Value, now, cut)
				}
			}
			s.lastApplied = m.ID
		}
		s.mu.Unlock()
		replayed += len(page)
	}
}

// inTx runs fn in a write transaction: begin, defer rollback, commit.
func (s *Store) inTx(ctx context.Context, fn func(tx Tx) error) error {
	return inTxFrom(ctx, s.storage.Begin, fn)
}

// inRebuildableTx is inTx for what recovery rebuilds from the message log:
// its commit need not wait for the disk where the storage allows it.
func (s *Store) inRebuildableTx(ctx context.Context, fn func(tx Tx) error) error {
	if l, ok := s.storage.(LazyCommitter); ok {
		return inTxFrom(ctx, l.BeginLazy, fn)
	}
	return s.inTx(ctx, fn)
}

func inTxFrom(ctx context.Context, begin func(context.Context) (Tx, error), fn func(tx Tx) error) error {
	tx, err := begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Prune deletes, as of now, up to limit rows of each kind past its
// retention: messages (only ones already folded into stored chunks), raw
// chunks whose newest reading is older, and rollup rows. more says whether
// another call may find more. Small steps keep the single writer free for
// ingest in between.
func (s *Store) Prune(ctx context.Context, now time.Time, limit int) (deleted int, more bool, err error) {
	if limit <= 0 {
		return 0, false, storage.Invalid("limit", "must be positive")
	}
	s.write.Lock()
	defer s.write.Unlock()
	s.mu.RLock()
	folded := s.folded
	s.mu.RUnlock()
	r := s.retention
	err = s.inTx(ctx, func(tx Tx) error {
		count := func(n int, err error) error {
			deleted += n
			more = more || n == limit
			return err
		}
		if r.Messages >= 0 {
			if err := count(tx.DeleteMessages(ctx, now.Add(-r.Messages), folded, limit)); err != nil {
				return fmt.Errorf("delete old messages: %w", err)
			}
		}
		if r.Raw >= 0 {
			if err := count(tx.DeleteChunks(ctx, cutoff(now, r.Raw), limit)); err != nil {
				return fmt.Errorf("delete old chunks: %w", err)
			}
		}
		for _, t := range []Tier{TierMinute, TierHour} {
			if d := r.of(t); d >= 0 {
				// A bucket goes once its whole width is past the cutoff.
				if err := count(tx.DeleteRollups(ctx, t, cutoff(now, d)-t.Width()+1, limit)); err != nil {
					return fmt.Errorf("delete old %s rollups: %w", t, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("prune telemetry: %w", err)
	}
	return deleted, more, nil
}

// IndexMessages writes one step of the message log's per-device index when
// the storage keeps one out of the commit (MessageIndexer), at most limit
// messages, and returns how many it indexed; 0 for any other storage.
// Until a step covers them, listings scan the newest messages of the log.
func (s *Store) IndexMessages(ctx context.Context, limit int) (int, error) {
	ix, ok := s.storage.(MessageIndexer)
	if !ok {
		return 0, nil
	}
	if limit <= 0 {
		return 0, storage.Invalid("limit", "must be positive")
	}
	s.write.Lock()
	defer s.write.Unlock()
	n, err := ix.IndexMessages(ctx, limit)
	if err != nil {
		return n, fmt.Errorf("index the message log: %w", err)
	}
	return n, nil
}

// Retention is how long the store keeps each kind of telemetry.
func (s *Store) Retention() Retention { return s.retention }

// isFinite reports whether v can be stored as a reading.
func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
