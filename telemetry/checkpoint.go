package telemetry

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// CheckpointStats says what a checkpoint (or one step of it) wrote.
type CheckpointStats struct {
	Chunks    int   // chunks written (sealed and partial)
	Metrics   int   // metrics whose last value was updated
	Rollups   int   // rollup rows added to
	Watermark int64 // every message up to this id is now in stored chunks
}

// checkpointCycle is a checkpoint in progress: the series that were dirty when
// it began, still to be written.
type checkpointCycle struct {
	watermark int64     // newest message in memory when the cycle began
	todo      []*series // in metric id order, so that writes touch neighbouring pages
	activity  []activityWrite
}

// checkpointWork is one series' snapshot; a step writes it in one transaction
// with the metric's Through, so that the two agree after any crash.
type checkpointWork struct {
	s         *series
	chunks    []Chunk
	last      bool
	lastValue float64
	lastTS    int64
	adds      int64        // s.adds at the snapshot
	rollups   *rollupDelta // added to the stored rollups; nil: none
}

// checkpointStep is what one step writes.
type checkpointStep struct {
	work     []checkpointWork
	through  int64 // every snapshot in work holds the readings up to here
	nSeries  int   // series of the cycle's todo the step covers
	activity []activityWrite
	last     bool // the step finishes the cycle
	gone     []*series
}

// startCycle lists the series with something to write and the pending last
// activities. Snapshots are taken step by step, so that starting a cycle
// costs little however many series there are.
func (s *Store) startCycle(now time.Time) *checkpointCycle {
	c := &checkpointCycle{}
	s.mu.RLock()
	for _, sr := range s.idx.byID {
		if sr.dirty(now) {
			c.todo = append(c.todo, sr)
		}
	}
	c.watermark = s.lastApplied
	s.mu.RUnlock()
	slices.SortFunc(c.todo, func(a, b *series) int { return compareInt(a.metricID, b.metricID) })
	for dev := range s.devices.pending {
		c.activity = append(c.activity, activityWrite{dev, dev.activity})
	}
	return c
}

// CheckpointStep writes part of a checkpoint in one transaction. It begins a
// cycle when none is in progress, covering every series with readings not
// yet stored, then snapshots and writes whole series until about maxRows rows
// are written (maxRows <= 0: all of them), each with the message id its
// stored chunks are now complete through. The step that writes the last one
// moves the watermark to the newest message at the cycle's start and reports
// done. Bounded steps keep the writer free for ingest in between.
func (s *Store) CheckpointStep(ctx context.Context, maxRows int) (done bool, st CheckpointStats, err error) {
	s.write.Lock()
	defer s.write.Unlock()
	now := s.now()
	if s.cycle == nil {
		s.cycle = s.startCycle(now)
	}
	c := s.cycle
	step := s.nextStep(c, now, maxRows)
	if len(step.work) == 0 && len(step.activity) == 0 && (!step.last || c.watermark == s.folded) {
		c.todo = c.todo[step.nSeries:]
		if step.last {
			s.cycle = nil
		}
		st.Watermark = s.folded
		return step.last, st, nil
	}
	err = s.inRebuildableTx(ctx, func(tx Tx) error { return step.write(ctx, tx, c.watermark, &st) })
	if err != nil {
		// The series stay to do; their snapshots are taken again, with
		// the rollup deltas given back.
		s.mu.Lock()
		for _, w := range step.work {
			if w.rollups != nil {
				w.s.rollupsFailed(w.rollups)
			}
		}
		s.mu.Unlock()
		return false, CheckpointStats{}, fmt.Errorf("checkpoint telemetry: %w", err)
	}
	s.devices.written(step.activity)
	c.todo, c.activity = c.todo[step.nSeries:], c.activity[len(step.activity):]
	s.stepWritten(step, c.watermark)
	if step.last {
		s.cycle = nil
	}
	st.Watermark = s.folded
	return step.last, st, nil
}

// nextStep snapshots the next whole series of the cycle (a series' chunks
// and Through commit together) and the last activities, up to about
// maxRows rows.
func (s *Store) nextStep(c *checkpointCycle, now time.Time, maxRows int) *checkpointStep {
	step := &checkpointStep{}
	rows := 0
	s.mu.Lock()
	step.through = s.lastApplied
	for step.nSeries < len(c.todo) && (maxRows <= 0 || rows < maxRows) {
		sr := c.todo[step.nSeries]
		step.nSeries++
		if sr.forgotten {
			continue // its metric is gone
		}
		w := sr.snapshot(now)
		if len(w.chunks) > 0 || w.last {
			w.rollups = sr.takeRollups(step.through)
			step.work = append(step.work, w)
			rows += len(w.chunks) + 1 + w.rollups.size()
		}
	}
	s.mu.Unlock()
	nAct := len(c.activity)
	if maxRows > 0 {
		nAct = min(nAct, max(maxRows-rows, 0))
	}
	step.activity = c.activity[:nAct]
	step.last = step.nSeries == len(c.todo) && nAct == len(c.activity)
	return step
}

// write is the step's transaction: its series, its last activities and, for
// the cycle's last step, the watermark.
func (step *checkpointStep) write(ctx context.Context, tx Tx, watermark int64, st *CheckpointStats) error {
	step.gone = nil
	for _, w := range step.work {
		ok, err := w.write(ctx, tx, step.through, st)
		if err != nil {
			return err
		}
		if !ok {
			step.gone = append(step.gone, w.s)
		}
	}
	if err := writeActivity(ctx, tx, step.activity); err != nil {
		return err
	}
	if !step.last {
		return nil
	}
	if err := tx.SetWatermark(ctx, watermark); err != nil {
		return fmt.Errorf("move the watermark: %w", err)
	}
	return nil
}

// write stores one series' chunks, last value and Through; ok is false when
// its metric is gone (deleted with its device).
func (w *checkpointWork) write(ctx context.Context, tx Tx, through int64, st *CheckpointStats) (ok bool, err error) {
	id := w.s.metricID
	for _, c := range w.chunks {
		ok, err := tx.PutChunk(ctx, id, c)
		if err != nil {
			return false, fmt.Errorf("write chunk %d of metric %d: %w", c.No, id, err)
		}
		if !ok {
			return false, nil
		}
		st.Chunks++
	}
	if !w.rollups.empty() {
		for _, t := range []Tier{TierMinute, TierHour} {
			rows := w.rollups.rows(t)
			if len(rows) == 0 {
				continue
			}
			ok, err := tx.AddRollups(ctx, id, t, rows)
			if err != nil {
				return false, fmt.Errorf("add %d %s rollups of metric %d: %w", len(rows), t, id, err)
			}
			if !ok {
				return false, nil
			}
			st.Rollups += len(rows)
		}
	}
	var last *Point // nil keeps the stored one
	if w.last {
		last = &Point{TS: w.lastTS, Value: w.lastValue}
	}
	if ok, err = tx.UpdateMetric(ctx, id, through, last); err != nil {
		return false, fmt.Errorf("update metric %d: %w", id, err)
	}
	if ok && w.last {
		st.Metrics++
	}
	return ok, nil
}

// stepWritten makes memory follow a committed step.
func (s *Store) stepWritten(step *checkpointStep, watermark int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range step.work {
		written := func(sc Chunk) bool {
			return slices.ContainsFunc(w.chunks, func(wc Chunk) bool { return wc.No == sc.No && wc.N == sc.N })
		}
		// A chunk sealed since the snapshot has more points than was written:
		// it stays, for the next cycle.
		w.s.sealed = slices.DeleteFunc(w.s.sealed, written)
		if w.rollups != nil {
			w.s.rollupsWritten(w.rollups)
		}
		if w.s.adds == w.adds {
			w.s.openDirty, w.s.lastDirty = false, false
		}
	}
	for _, sr := range step.gone {
		s.idx.forget(sr)
	}
	if step.last {
		s.folded = watermark
	}
}

// Checkpoint writes everything in memory as of now — finishing the cycle in
// progress, if any, first — and moves the watermark to the newest message
// in memory. Open chunks idle for IdleSeal are sealed. Without a cycle in
// progress it is one transaction; at shutdown that is what is wanted.
func (s *Store) Checkpoint(ctx context.Context) (CheckpointStats, error) {
	var total CheckpointStats
	s.write.Lock()
	pending := s.cycle != nil
	s.write.Unlock()
	for {
		done, st, err := s.CheckpointStep(ctx, 0)
		if err != nil {
			return total, err
		}
		total.Chunks += st.Chunks
		total.Metrics += st.Metrics
		total.Rollups += st.Rollups
		total.Watermark = st.Watermark
		if !done {
			continue
		}
		if !pending {
			return total, nil
		}
		// That cycle covered only the series dirty when it began.
		pending = false
	}
}
