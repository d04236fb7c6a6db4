package telemetry

import (
	"fmt"
	"slices"
	"time"
)

// Readings are kept at three resolutions. Raw readings (the chunks) answer
// any question but cost a few bytes each; a 1-minute and a 1-hour rollup
// (count, min, max and sum per bucket) keep long ranges cheap to store and to
// chart: a year of a 1 Hz metric is 8,760 hour rows instead of 31.5 million
// readings.
//
// Rollups are kept incrementally, never by rescanning raw data: every reading
// added to a series also folds into the series' pending rollup delta, and a
// checkpoint writes the delta — added to the stored rows — in the same
// transaction as the metric's chunks and Through. So the stored rollups hold
// exactly the readings of the messages up to the metric's Through, and after
// a crash the replay from Through adds each missing reading once. Queries add
// the deltas still in memory to the stored rows, each exactly once (see
// rollupsInRange).

// Tier is a resolution at which readings are kept.
type Tier int

// The tiers, finest first.
const (
	TierRaw    Tier = iota // every reading, in chunks
	TierMinute             // 1-minute rollups
	TierHour               // 1-hour rollups
)

// Tiers lists the tiers, finest first.
var Tiers = []Tier{TierRaw, TierMinute, TierHour}

// String is the tier's name in the API: raw, 1m or 1h.
func (t Tier) String() string {
	switch t {
	case TierRaw:
		return "raw"
	case TierMinute:
		return "1m"
	case TierHour:
		return "1h"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// RollupTable is the table that holds a rollup tier's rows, the same name in
// every store's schema (both dialects' migration 0014_rollups.sql).
func (t Tier) RollupTable() (string, error) {
	switch t {
	case TierMinute:
		return "rollup_minutes", nil
	case TierHour:
		return "rollup_hours", nil
	}
	return "", fmt.Errorf("no rollup table for tier %s", t)
}

// ParseTier reads a tier's name (raw, 1m, 1h).
func ParseTier(s string) (Tier, bool) {
	for _, t := range Tiers {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// Width is the tier's bucket width in ms; 0 for raw readings.
func (t Tier) Width() int64 {
	switch t {
	case TierMinute:
		return time.Minute.Milliseconds()
	case TierHour:
		return time.Hour.Milliseconds()
	}
	return 0
}

// Rollup summarises a metric's readings in one bucket of a tier.
type Rollup struct {
	Bucket   int64 // start, Unix ms, a multiple of the tier's width
	N        int
	Min, Max float64
	Sum      float64
}

// fold adds the readings o summarises.
func (r *Rollup) fold(o Rollup) {
	if r.N == 0 {
		r.Min, r.Max = o.Min, o.Max
	} else {
		r.Min, r.Max = min(r.Min, o.Min), max(r.Max, o.Max)
	}
	r.N += o.N
	r.Sum += o.Sum
}

// Retention says how long each kind of telemetry is kept. Zero takes the
// default; a negative value keeps that kind for ever.
type Retention struct {
	Messages time.Duration // the message log (default 7 days)
	Raw      time.Duration // raw readings (default 7 days)
	Minutes  time.Duration // 1-minute rollups (default 90 days)
	Hours    time.Duration // 1-hour rollups (default 2 years)
}

// The default retention of each kind.
const (
	DefaultMessageRetention = 7 * 24 * time.Hour
	DefaultRawRetention     = 7 * 24 * time.Hour
	DefaultMinuteRetention  = 90 * 24 * time.Hour
	DefaultHourRetention    = 2 * 365 * 24 * time.Hour
)

func (r *Retention) defaults() {
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{{&r.Messages, DefaultMessageRetention}, {&r.Raw, DefaultRawRetention}, {&r.Minutes, DefaultMinuteRetention}, {&r.Hours, DefaultHourRetention}} {
		if *f.d == 0 {
			*f.d = f.def
		}
	}
}

// of is the retention of a tier.
func (r Retention) of(t Tier) time.Duration {
	switch t {
	case TierMinute:
		return r.Minutes
	case TierHour:
		return r.Hours
	}
	return r.Raw
}

// cutoff is the oldest time (Unix ms) kept at retention d as of now;
// math.MinInt64 when it is kept for ever.
func cutoff(now time.Time, d time.Duration) int64 {
	if d < 0 {
		return -1 << 63
	}
	return now.Add(-d).UnixMilli()
}

// covers reports whether tier t still holds readings from `from` on, give
// or take slack: a "last 90 days" range asked a moment ago is still the
// minute tier's, though its start passed the cutoff since.
func (r Retention) covers(t Tier, now time.Time, from, slack int64) bool {
	return from+slack >= cutoff(now, r.of(t))
}

// rollupCut says which readings the rollups take, by timestamp (Unix ms):
// from minute on in the minute tier, from hour on in the hour tier only
// (older ones would be deleted at the next prune anyway).
type rollupCut struct{ minute, hour int64 }

func (s *Store) rollupCut(now time.Time) rollupCut {
	return rollupCut{minute: cutoff(now, s.retention.Minutes), hour: cutoff(now, s.retention.Hours)}
}

// floorTo is ts rounded down to a multiple of width.
func floorTo(ts, width int64) int64 {
	b := ts - ts%width
	if ts < 0 && ts%width != 0 {
		b -= width
	}
	return b
}

// rollupDelta is what a series' readings add to its stored rollups: minute
// buckets (the hour buckets are folded from them when written), and hour
// buckets of readings too old for the minute tier.
type rollupDelta struct {
	minutes map[int64]*Rollup
	hours   map[int64]*Rollup
	// The minute of the last reading: a series' readings mostly fall in
	// the minute of the one before.
	lastMinute int64
	last       *Rollup
}

// add folds one reading in; one older than the hour tier keeps is left out.
func (d *rollupDelta) add(ts int64, v float64, cut rollupCut) {
	one := Rollup{N: 1, Min: v, Max: v, Sum: v}
	if d.last != nil && ts >= d.lastMinute && ts < d.lastMinute+60_000 {
		d.last.fold(one)
		return
	}
	switch {
	case ts >= cut.minute:
		m := floorTo(ts, 60_000)
		if d.minutes == nil {
			d.minutes = map[int64]*Rollup{}
		}
		r := d.minutes[m]
		if r == nil {
			r = &Rollup{Bucket: m}
			d.minutes[m] = r
		}
		r.fold(one)
		d.lastMinute, d.last = m, r
	case ts >= cut.hour:
		h := floorTo(ts, 3_600_000)
		if d.hours == nil {
			d.hours = map[int64]*Rollup{}
		}
		r := d.hours[h]
		if r == nil {
			r = &Rollup{Bucket: h}
			d.hours[h] = r
		}
		r.fold(one)
	}
}

func (d *rollupDelta) empty() bool { return d.size() == 0 }

// size is about how many rows writing the delta adds: its minutes, and as
// many hours again at most.
func (d *rollupDelta) size() int {
	if d == nil {
		return 0
	}
	return len(d.minutes) + len(d.hours)
}

// merge adds o's buckets to d.
func (d *rollupDelta) merge(o *rollupDelta) {
	if o.empty() {
		return
	}
	for _, pair := range []struct{ into, from *map[int64]*Rollup }{{&d.minutes, &o.minutes}, {&d.hours, &o.hours}} {
		if *pair.into == nil && len(*pair.from) > 0 {
			*pair.into = map[int64]*Rollup{}
		}
		for b, r := range *pair.from {
			if have := (*pair.into)[b]; have != nil {
				have.fold(*r)
			} else {
				c := *r
				(*pair.into)[b] = &c
			}
		}
	}
	d.last = nil
}

// rows returns the delta's buckets of tier t in bucket order; hour buckets
// fold in the minutes they hold.
func (d *rollupDelta) rows(t Tier) []Rollup {
	if d.empty() {
		return nil
	}
	var out []Rollup
	switch t {
	case TierMinute:
		out = make([]Rollup, 0, len(d.minutes))
		for _, r := range d.minutes {
			out = append(out, *r)
		}
	case TierHour:
		hours := make(map[int64]*Rollup, len(d.hours)+1)
		for b, r := range d.hours {
			c := *r
			hours[b] = &c
		}
		for _, r := range d.minutes {
			h := floorTo(r.Bucket, 3_600_000)
			if have := hours[h]; have != nil {
				have.fold(*r)
			} else {
				c := *r
				c.Bucket = h
				hours[h] = &c
			}
		}
		out = make([]Rollup, 0, len(hours))
		for _, r := range hours {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Rollup) int { return compareInt(a.Bucket, b.Bucket) })
	return out
}

// clone copies the delta, for a query to read outside Store.mu.
func (d *rollupDelta) clone() *rollupDelta {
	if d.empty() {
		return nil
	}
	c := &rollupDelta{minutes: make(map[int64]*Rollup, len(d.minutes)), hours: make(map[int64]*Rollup, len(d.hours))}
	for b, r := range d.minutes {
		v := *r
		c.minutes[b] = &v
	}
	for b, r := range d.hours {
		v := *r
		c.hours[b] = &v
	}
	return c
}

// rollupPiece is a delta of a series in memory, with the message id its
// readings go up to: a checkpoint writes it with the metric's Through =
// upto, so stored rows hold it exactly when the stored Through >= upto.
type rollupPiece struct {
	upto  int64
	delta *rollupDelta
}

// memRollups copies a series' deltas not yet stored (as far as this writer
// knows): the ones a checkpoint step is writing, and the pending one, whose
// readings are of messages up to lastApplied. Caller holds Store.mu.
func (s *series) memRollups(lastApplied int64) []rollupPiece {
	var out []rollupPiece
	for _, p := range s.writing {
		out = append(out, rollupPiece{p.upto, p.delta.clone()})
	}
	if !s.pending.empty() {
		out = append(out, rollupPiece{lastApplied, s.pending.clone()})
	}
	return out
}

// takeRollups moves the pending delta to the pieces being written, as a
// snapshot for a checkpoint through `through`. Caller holds Store.mu.
func (s *series) takeRollups(through int64) *rollupDelta {
	d := s.pending
	if d.empty() {
		return nil
	}
	s.pending = nil
	s.writing = append(s.writing, rollupPiece{through, d})
	return d
}

// rollupsWritten drops a delta the checkpoint stored; rollupsFailed puts it
// back into the pending one, for the next step. Caller holds Store.mu.
func (s *series) rollupsWritten(d *rollupDelta) {
	s.writing = slices.DeleteFunc(s.writing, func(p rollupPiece) bool { return p.delta == d })
}

func (s *series) rollupsFailed(d *rollupDelta) {
	s.rollupsWritten(d)
	if s.pending == nil {
		s.pending = &rollupDelta{}
	}
	s.pending.merge(d)
}
