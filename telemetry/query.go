package telemetry

import (
	"context"
	"fieldhub/storage"
	"fmt"
	"slices"
	"time"
)

// Metric is a device's metric with its newest reading.
type Metric struct {
	ID        int64
	Name      string
	LastValue float64
	LastTime  time.Time // zero when the metric has no reading yet
}

// Metrics lists a device's metrics by name, with the newest reading of each.
func (s *Store) Metrics(ctx context.Context, deviceID string) ([]Metric, error) {
	out, err := s.storage.Metrics(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	for i, m := range out {
		// This writer's newest reading, unless the storage has a newer one
		// (another writer's, on a shared storage).
		if sr, ok := s.idx.byID[m.ID]; ok && sr.hasLast && (m.LastTime.IsZero() || sr.lastTS >= m.LastTime.UnixMilli()) {
			out[i].LastValue, out[i].LastTime = sr.lastValue, time.UnixMilli(sr.lastTS).UTC()
		}
	}
	s.mu.RUnlock()
	return out, nil
}

// MessageFilter pages through a device's message log, newest first.
type MessageFilter struct {
	Limit  int   // 1..MaxMessagePage; 0 means 50
	Before int64 // only messages with a smaller id; 0 means from the newest
}

// MaxMessagePage bounds MessageFilter.Limit.
const MaxMessagePage = 1000

// Messages lists a device's messages, newest first.
func (s *Store) Messages(ctx context.Context, deviceID string, f MessageFilter) ([]Message, error) {
	switch {
	case f.Limit == 0:
		f.Limit = 50
	case f.Limit < 0 || f.Limit > MaxMessagePage:
		return nil, storage.Invalid("limit", "must be between 1 and %d, got %d", MaxMessagePage, f.Limit)
	}
	if f.Before < 0 {
		return nil, storage.Invalid("before", "must be a message id, got %d", f.Before)
	}
	if f.Before == 0 {
		f.Before = 1<<63 - 1
	}
	return s.storage.Messages(ctx, deviceID, f)
}

// Bucket summarises the readings in [Time, Time+Width).
type Bucket struct {
	Time  time.Time
	Min   float64
	Max   float64
	Avg   float64
	Count int
}

// MaxBuckets bounds Readings' points.
const MaxBuckets = 10000

// Downsampled is a metric's range cut into buckets, and the tier they were
// read from.
type Downsampled struct {
	Tier    Tier
	Buckets []Bucket
}

// Readings downsamples a metric over [from, to] into at most points buckets
// of equal width, returning the non-empty ones in time order, from the tier
// ChooseTier picks for the range.
func (s *Store) Readings(ctx context.Context, deviceID, metric string, from, to time.Time, points int) (Downsampled, error) {
	return s.ReadingsAt(ctx, deviceID, metric, from, to, points, s.ChooseTier(from, to, points))
}

// ReadingsAt is Readings from tier t. From raw readings, chunks that fall
// inside one bucket are folded from their stored summaries without
// decoding; from a rollup tier, each rollup row counts in the bucket its
// start falls in (the first bucket for one that starts before from).
func (s *Store) ReadingsAt(ctx context.Context, deviceID, metric string, from, to time.Time, points int, t Tier) (Downsampled, error) {
	out := Downsampled{Tier: t}
	if points < 1 || points > MaxBuckets {
		return out, storage.Invalid("points", "must be between 1 and %d, got %d", MaxBuckets, points)
	}
	if to.Before(from) {
		return out, storage.Invalid("to", "is before from")
	}
	metricID, err := s.storage.MetricID(ctx, deviceID, metric)
	if err != nil {
		return out, err
	}
	if t == TierRaw {
		out.Buckets, err = s.downsample(ctx, metricID, from.UnixMilli(), to.UnixMilli(), points)
	} else {
		out.Buckets, err = s.downsampleRollups(ctx, metricID, t, from.UnixMilli(), to.UnixMilli(), points)
	}
	return out, err
}

// rangeSlack is how far a range's start may lie before a tier's cutoff
// for the tier to still answer it: 1% of the range, at most a day.
func rangeSlack(from, to time.Time) int64 {
	return min(max(to.Sub(from), 0)/100, 24*time.Hour).Milliseconds()
}

// ChooseTier picks the tier a chart of [from, to] in points buckets reads:
// raw readings while they still reach back to from, give or take 1% of the
// range (exact, and a week of a
// 1 Hz metric charts within the target); beyond them the coarsest rollup
// tier that reaches back to from and whose buckets fit in the chart's, else
// the finest that reaches back, else the hour tier, the longest kept.
func (s *Store) ChooseTier(from, to time.Time, points int) Tier {
	now, lo := s.now(), from.UnixMilli()
	slack := rangeSlack(from, to)
	if s.retention.covers(TierRaw, now, lo, slack) {
		return TierRaw
	}
	width := (to.UnixMilli() - lo + 1) / int64(max(points, 1))
	var finest Tier
	for _, t := range []Tier{TierHour, TierMinute} {
		if !s.retention.covers(t, now, lo, slack) {
			continue
		}
		if t.Width() <= width {
			return t
		}
		finest = t
	}
	if finest != 0 {
		return finest
	}
	return TierHour
}

// ExportTier picks the tier an export of [from, to] reads: the finest
// that still reaches back to from, else the hour tier.
func (s *Store) ExportTier(from, to time.Time) Tier {
	now, lo := s.now(), from.UnixMilli()
	for _, t := range Tiers {
		if s.retention.covers(t, now, lo, rangeSlack(from, to)) {
			return t
		}
	}
	return TierHour
}

// bucketFold accumulates the readings of one bucket.
type bucketFold struct {
	n             int
	min, max, sum float64
}

func (a *bucketFold) fold(n int, lo, hi, sum float64) {
	if a.n == 0 {
		a.min, a.max = lo, hi
	} else {
		a.min, a.max = min(a.min, lo), max(a.max, hi)
	}
	a.n += n
	a.sum += sum
}

func (s *Store) downsample(ctx context.Context, metricID, from, to int64, points int) ([]Bucket, error) {
	span := to - from + 1
	width := (span + int64(points) - 1) / int64(points)
	aggs := make([]bucketFold, (span+width-1)/width)
	chunks, err := s.chunksInRange(ctx, metricID, from, to, true)
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if c.Start >= from && c.End <= to && (c.Start-from)/width == (c.End-from)/width {
			aggs[(c.Start-from)/width].fold(c.N, c.Min, c.Max, c.Sum)
			continue
		}
		err := decodeChunk(c.Data, c.N, func(ts int64, v float64) {
			if ts >= from && ts <= to {
				aggs[(ts-from)/width].fold(1, v, v, v)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("metric %d chunk %d: %w", metricID, c.No, err)
		}
	}
	var out []Bucket
	for i, a := range aggs {
		if a.n > 0 {
			out = append(out, Bucket{Time: time.UnixMilli(from + int64(i)*width).UTC(), Min: a.min, Max: a.max, Avg: a.sum / float64(a.n), Count: a.n})
		}
	}
	return out, nil
}

func (s *Store) downsampleRollups(ctx context.Context, metricID int64, t Tier, from, to int64, points int) ([]Bucket, error) {
	span := to - from + 1
	width := (span + int64(points) - 1) / int64(points)
	aggs := make([]bucketFold, (span+width-1)/width)
	rows, err := s.rollupsInRange(ctx, metricID, t, floorTo(from, t.Width()), to)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		aggs[max(r.Bucket-from, 0)/width].fold(r.N, r.Min, r.Max, r.Sum)
	}
	var out []Bucket
	for i, a := range aggs {
		if a.n > 0 {
			out = append(out, Bucket{Time: time.UnixMilli(from + int64(i)*width).UTC(), Min: a.min, Max: a.max, Avg: a.sum / float64(a.n), Count: a.n})
		}
	}
	return out, nil
}

// exportPage bounds the rollup rows RollupReadings reads at once.
const exportPage = 10000

// RollupReadings calls fn for every rollup row of tier t (TierMinute or
// TierHour) of a metric whose bucket starts in [from, to], in bucket order,
// a page at a time so that an export of any length needs little memory. An
// error from fn stops the walk and is returned.
func (s *Store) RollupReadings(ctx context.Context, deviceID, metric string, t Tier, from, to time.Time, fn func(Rollup) error) error {
	if t != TierMinute && t != TierHour {
		return storage.Invalid("tier", "must be 1m or 1h, got %s", t)
	}
	if to.Before(from) {
		return storage.Invalid("to", "is before from")
	}
	metricID, err := s.storage.MetricID(ctx, deviceID, metric)
	if err != nil {
		return err
	}
	w := t.Width()
	for lo, hi := floorTo(from.UnixMilli(), w), to.UnixMilli(); lo <= hi; lo += exportPage * w {
		rows, err := s.rollupsInRange(ctx, metricID, t, lo, min(hi, lo+exportPage*w-1))
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollupsInRange returns a metric's rollup rows of tier t whose bucket
// starts in [from, to], stored and in memory, in bucket order. Each delta in
// memory is added unless the stored rows hold it already: the storage
// answers the rows and the metric's Through as of one instant, and a delta
// is stored exactly when that Through reached its upto. Memory is read
// first, so a delta that leaves memory meanwhile is in the rows.
func (s *Store) rollupsInRange(ctx context.Context, metricID int64, t Tier, from, to int64) ([]Rollup, error) {
	s.mu.RLock()
	var mem []rollupPiece
	if sr, ok := s.idx.byID[metricID]; ok {
		mem = sr.memRollups(s.lastApplied)
	}
	s.mu.RUnlock()
	through, rows, err := s.storage.Rollups(ctx, metricID, t, from, to)
	if err != nil {
		return nil, fmt.Errorf("read %s rollups of metric %d: %w", t, metricID, err)
	}
	added := false
	var at map[int64]int
	for _, p := range mem {
		if through >= p.upto {
			continue
		}
		if at == nil {
			at = make(map[int64]int, len(rows))
			for i, r := range rows {
				at[r.Bucket] = i
			}
		}
		for _, r := range p.delta.rows(t) {
			if r.Bucket < from || r.Bucket > to {
				continue
			}
			if i, ok := at[r.Bucket]; ok {
				rows[i].fold(r)
				continue
			}
			at[r.Bucket] = len(rows)
			rows = append(rows, r)
			added = true
		}
	}
	if added {
		slices.SortFunc(rows, func(a, b Rollup) int { return compareInt(a.Bucket, b.Bucket) })
	}
	return rows, nil
}

// RawReadings calls fn for every reading of a metric in [from, to], chunk by
// chunk so that an export of any length needs little memory. Readings come in
// time order within a chunk and chunks in order of their first reading (device
// timestamps that jump backwards can make chunks overlap). An error from fn
// stops the walk and is returned.
func (s *Store) RawReadings(ctx context.Context, deviceID, metric string, from, to time.Time, fn func(t time.Time, v float64) error) error {
	if to.Before(from) {
		return storage.Invalid("to", "is before from")
	}
	metricID, err := s.storage.MetricID(ctx, deviceID, metric)
	if err != nil {
		return err
	}
	lo, hi := from.UnixMilli(), to.UnixMilli()
	// Summaries first, then one chunk's data at a time.
	chunks, err := s.chunksInRange(ctx, metricID, lo, hi, false)
	if err != nil {
		return err
	}
	var pts []Point
	for _, c := range chunks {
		data := c.Data
		if data == nil {
			if data, err = s.chunkData(ctx, metricID, c); err != nil {
				return err
			}
		}
		pts = pts[:0]
		if err := decodeChunk(data, c.N, func(ts int64, v float64) {
			if ts >= lo && ts <= hi {
				pts = append(pts, Point{ts, v})
			}
		}); err != nil {
			return fmt.Errorf("metric %d chunk %d: %w", metricID, c.No, err)
		}
		slices.SortStableFunc(pts, func(a, b Point) int { return compareInt(a.TS, b.TS) })
		for _, p := range pts {
			if err := fn(time.UnixMilli(p.TS).UTC(), p.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunksInRange returns the chunks of a metric that overlap [from, to] (Unix
// ms, inclusive), stored and in memory, each once, ordered by start time.
func (s *Store) chunksInRange(ctx context.Context, metricID, from, to int64, withData bool) ([]Chunk, error) {
	// Memory first: a checkpoint removes chunks from memory only after they are
	// stored, so whatever leaves memory after this point is in the query below.
	s.mu.RLock()
	var mem []Chunk
	if sr, ok := s.idx.byID[metricID]; ok {
		mem = sr.memChunks(from, to)
	}
	s.mu.RUnlock()
	out, err := s.storage.Chunks(ctx, metricID, from, to, withData)
	if err != nil {
		return nil, fmt.Errorf("read chunks of metric %d: %w", metricID, err)
	}
	// A chunk in both places: the version with more points is the newer one.
	for _, m := range mem {
		i := slices.IndexFunc(out, func(c Chunk) bool { return c.No == m.No })
		switch {
		case i < 0:
			out = append(out, m)
		case m.N > out[i].N:
			out[i] = m
		}
	}
	slices.SortFunc(out, func(a, b Chunk) int { return compareInt(a.Start, b.Start) })
	return out, nil
}

// chunkData reads one stored chunk's data. A checkpoint may have rewritten
// it with more points since its summary was read: a longer version starts
// with the same bytes, so decoding c.N points of it yields exactly the
// points the summary counted.
func (s *Store) chunkData(ctx context.Context, metricID int64, c Chunk) ([]byte, error) {
	n, data, err := s.storage.ChunkData(ctx, metricID, c.No)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d of metric %d: %w", c.No, metricID, err)
	}
	if n < c.N {
		return nil, fmt.Errorf("read chunk %d of metric %d: has %d points, want %d", c.No, metricID, n, c.N)
	}
	return data, nil
}
