package telemetry

import (
	"slices"
	"time"
)

type seriesKey struct {
	device int64 // DeviceRow.ID
	name   string
}

// series is one metric's in-memory state.
type series struct {
	metricID      int64
	key           seriesKey
	deviceCreated int64 // DeviceRow.Created; a device recreated under a reused id differs
	nextChunk     int64 // number of the open chunk
	open          chunkEncoder
	openDirty     bool // the open chunk has points not yet stored
	sealed        []Chunk
	lastValue     float64
	lastTS        int64
	hasLast       bool
	lastDirty     bool
	touched       time.Time // wall time of the last reading, for IdleSeal
	forgotten     bool      // no longer indexed; set by the writer only
	adds          int64     // readings added so far: tells a checkpoint whether its snapshot is still current
	through       int64     // during recovery: stored chunks hold its readings of messages up to this id
	// pending is what readings added since the last checkpoint snapshot add
	// to the stored rollups; writing, the snapshots a checkpoint is writing.
	pending *rollupDelta
	writing []rollupPiece
}

// seriesOf is the in-memory state of a stored metric: its stored chunks
// are not loaded, the next reading opens a new one.
func seriesOf(m MetricRow) *series {
	s := &series{
		metricID: m.ID, key: seriesKey{m.Device.ID, m.Name}, deviceCreated: m.Device.Created,
		nextChunk: m.LastChunk + 1, through: m.Through,
	}
	if m.HasLast {
		s.lastValue, s.lastTS, s.hasLast = m.Last.Value, m.Last.TS, true
	}
	return s
}

func (c *chunkEncoder) snapshot(no int64) Chunk {
	// The encoder only ever appends, so sharing the prefix with readers is safe.
	return Chunk{No: no, Start: c.startTS, End: c.endTS, N: c.n, Min: c.min, Max: c.max, Sum: c.sum, Data: c.data[:len(c.data):len(c.data)]}
}

func (s *series) add(ts int64, v float64, now time.Time, cut rollupCut) {
	s.adds++
	if s.pending == nil {
		s.pending = &rollupDelta{}
	}
	s.pending.add(ts, v, cut)
	s.open.add(ts, v)
	s.openDirty = true
	s.touched = now
	if !s.hasLast || ts >= s.lastTS {
		s.lastValue, s.lastTS, s.hasLast, s.lastDirty = v, ts, true, true
	}
	if s.open.full() {
		s.seal()
	}
}

// seal moves the open chunk to the sealed list; the next reading opens a new one.
func (s *series) seal() {
	if s.open.n == 0 {
		return
	}
	s.sealed = append(s.sealed, s.open.snapshot(s.nextChunk))
	s.nextChunk++
	s.open = chunkEncoder{}
	s.openDirty = false
}

// memChunks returns the series' chunks still only in memory (possibly also
// stored, in an older version) that overlap [from, to].
func (s *series) memChunks(from, to int64) []Chunk {
	var out []Chunk
	for _, c := range s.sealed {
		if c.End >= from && c.Start <= to {
			out = append(out, c)
		}
	}
	if s.open.n > 0 && s.open.endTS >= from && s.open.startTS <= to {
		out = append(out, s.open.snapshot(s.nextChunk))
	}
	return out
}

// snapshot takes the series' unstored chunks and last value as of now. Its
// open chunk is sealed first when idle for IdleSeal. Caller holds Store.mu.
func (s *series) snapshot(now time.Time) checkpointWork {
	if s.open.n > 0 && now.Sub(s.touched) >= IdleSeal {
		s.seal()
	}
	w := checkpointWork{s: s, chunks: slices.Clone(s.sealed), last: s.lastDirty, lastValue: s.lastValue, lastTS: s.lastTS, adds: s.adds}
	if s.openDirty {
		// The encoder only appends: the snapshot shares its prefix.
		w.chunks = append(w.chunks, s.open.snapshot(s.nextChunk))
	}
	return w
}

// dirty reports whether the series has something a checkpoint must write.
func (s *series) dirty(now time.Time) bool {
	return s.openDirty || len(s.sealed) > 0 || s.lastDirty || (s.open.n > 0 && now.Sub(s.touched) >= IdleSeal)
}

// index is the in-memory series by key and by metric id, with the number of
// metrics of each device. Store.mu guards it.
type index struct {
	byKey     map[seriesKey]*series
	byID      map[int64]*series
	perDevice map[int64]int // metrics per DeviceRow.ID
	// forgets counts the series forgotten so far (deviceRef.sameShape).
	forgets uint64
}

func newIndex() index {
	return index{byKey: map[seriesKey]*series{}, byID: map[int64]*series{}, perDevice: map[int64]int{}}
}

// add indexes a series, replacing one of the same key.
func (x *index) add(s *series) {
	if old, ok := x.byKey[s.key]; ok {
		x.forget(old)
	}
	x.byKey[s.key], x.byID[s.metricID] = s, s
	x.perDevice[s.key.device]++
}

// forget drops a series whose metric row is gone.
func (x *index) forget(s *series) {
	if s == nil || x.byKey[s.key] != s {
		return
	}
	s.forgotten = true
	x.forgets++
	delete(x.byKey, s.key)
	delete(x.byID, s.metricID)
	if x.perDevice[s.key.device]--; x.perDevice[s.key.device] <= 0 {
		delete(x.perDevice, s.key.device)
	}
}
