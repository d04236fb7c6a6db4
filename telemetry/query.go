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
		if sr, ok := s.idx.byID[m.ID]; ok && sr.hasLast {
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

// Readings downsamples a metric over [from, to] into at most points buckets
// of equal width, returning the non-empty ones in time order. Chunks that fall
// inside one bucket are folded from their stored summaries without decoding.
func (s *Store) Readings(ctx context.Context, deviceID, metric string, from, to time.Time, points int) ([]Bucket, error) {
	if points < 1 || points > MaxBuckets {
		return nil, storage.Invalid("points", "must be between 1 and %d, got %d", MaxBuckets, points)
	}
	if to.Before(from) {
		return nil, storage.Invalid("to", "is before from")
	}
	metricID, err := s.storage.MetricID(ctx, deviceID, metric)
	if err != nil {
		return nil, err
	}
	return s.downsample(ctx, metricID, from.UnixMilli(), to.UnixMilli(), points)
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
