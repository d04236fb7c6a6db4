package telemetry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ActivityStep bounds how far a device's stored last activity lags behind its
// newest message. Writing it for every message would rewrite the device row
// (and its last-activity index) once per message, once the largest cost of a
// commit; instead it is written with the device's first message, then when a
// message moved it on by ActivityStep. What is left is written once the device
// has been quiet for a few steps (checked once a step) or at the next
// checkpoint, so the stored value is at most about 3 steps behind.
const ActivityStep = time.Second

// deviceRef is what the writer remembers of a sending device between batches.
type deviceRef struct {
	deviceID    string
	id, created int64 // DeviceRow
	activity    int64 // newest last activity (Unix ms) of its committed messages
	stored      int64 // last activity as this writer last wrote it
	// hungUp is when its live connection last closed (Unix ms, see HungUp)
	// while no activity from then on is written; 0: none.
	hungUp int64
	// version is the storage's DevicesVersion when this row was last
	// confirmed; versioned says there is one.
	version   int64
	versioned bool
	// shape is the series of the readings of its last message, in order:
	// devices send the same keys message after message, so comparing names
	// spares a map lookup per reading. shapeNames are their names, in one
	// allocation, so that the comparison reads no series (a cache miss
	// each, ten a message in the benchmarks); shapeForgets is the index's
	// forgets when the shape was taken: while it has not moved, no series
	// of the shape can have been forgotten.
	shape        []*series
	shapeNames   []string
	shapeForgets uint64
	// overMetricCap is set once new metric names of the device were dropped
	// at MaxMetricsPerDevice and logged, so that it is logged only once.
	overMetricCap bool
}

func (dev *deviceRef) row() DeviceRow { return DeviceRow{ID: dev.id, Created: dev.created} }

// sameShape reports whether rs names the metrics of dev's shape, in order,
// all still indexed; forgets is the index's count of forgotten series now.
func (dev *deviceRef) sameShape(rs []Reading, forgets uint64) bool {
	if len(rs) != len(dev.shapeNames) || len(rs) == 0 {
		return false
	}
	for i, name := range dev.shapeNames {
		if name != rs[i].Metric {
			return false
		}
	}
	if dev.shapeForgets == forgets {
		return true
	}
	for _, s := range dev.shape {
		if s.forgotten {
			return false
		}
	}
	return true
}

// setShape remembers the series of a message's readings rs as dev's shape,
// found when the index had forgotten forgets series.
func (dev *deviceRef) setShape(shape []*series, rs []Reading, forgets uint64) {
	n := 0
	for _, r := range rs {
		n += len(r.Metric)
	}
	var all strings.Builder
	all.Grow(n)
	for _, r := range rs {
		all.WriteString(r.Metric)
	}
	joined, names := all.String(), make([]string, len(rs))
	for i, r := range rs {
		names[i], joined = joined[:len(r.Metric)], joined[len(r.Metric):]
	}
	dev.shape, dev.shapeNames, dev.shapeForgets = slices.Clone(shape), names, forgets
}

// deviceCache is what the writer knows of sending devices: their rows, and
// the last activities not written yet (see ActivityStep). Writer-side only.
type deviceCache struct {
	byID    map[string]*deviceRef
	pending map[*deviceRef]struct{}
	swept   time.Time // when pending last activities were last looked at
}

func newDeviceCache() deviceCache {
	return deviceCache{byID: map[string]*deviceRef{}, pending: map[*deviceRef]struct{}{}}
}

// forget drops a cached device row that no longer matches storage.
func (c *deviceCache) forget(dev *deviceRef) {
	if c.byID[dev.deviceID] == dev {
		delete(c.byID, dev.deviceID)
	}
	delete(c.pending, dev)
}

// written records committed last-activity updates.
func (c *deviceCache) written(ws []activityWrite) {
	for _, a := range ws {
		a.dev.activity = max(a.dev.activity, a.at)
		a.dev.stored = max(a.dev.stored, a.at)
		if a.dev.hungUp != 0 && a.at >= a.dev.hungUp {
			a.dev.hungUp = 0
		}
		if a.dev.stored >= a.dev.activity {
			delete(c.pending, a.dev)
		}
	}
}

// activityWrite is a last-activity update of one device.
type activityWrite struct {
	dev *deviceRef
	at  int64
}

// writeActivity moves devices' stored last activity forward.
func writeActivity(ctx context.Context, tx Tx, ws []activityWrite) error {
	if len(ws) == 0 {
		return nil
	}
	at := make([]Activity, len(ws))
	for i, a := range ws {
		at[i] = Activity{Device: a.dev.row(), At: a.at}
	}
	if err := tx.TouchDevices(ctx, at); err != nil {
		return fmt.Errorf("update last activity: %w", err)
	}
	return nil
}

// HungUp tells the store that a device's live connection closed just now.
// Recording that (db.DB.SetDeviceConnection) stored a disconnect time, and
// the device counts as online again only once a later activity is stored
// (db.Online): so the activity of its next messages is written at once, not
// up to a step later, until one sent from now on is stored, and one already
// committed but not written yet is written now. Otherwise a device sending
// over HTTPS within a second of its MQTT connection closing stayed offline
// until its next activity write. A device this store has not written for
// needs nothing: its first message is written at once.
func (s *Store) HungUp(ctx context.Context, deviceID string) error {
	s.write.Lock()
	defer s.write.Unlock()
	dev := s.devices.byID[deviceID]
	if dev == nil {
		return nil
	}
	dev.hungUp = unixMS(s.now())
	if dev.activity <= dev.stored {
		return nil
	}
	w := []activityWrite{{dev, dev.activity}}
	if err := s.inTx(ctx, func(tx Tx) error { return writeActivity(ctx, tx, w) }); err != nil {
		return fmt.Errorf("last activity of device %q as its connection closed: %w", deviceID, err)
	}
	s.devices.written(w)
	return nil
}

// Append stores recs in the message log in one transaction (the ingest
// pipeline's group commit) and then adds their readings to the in-memory
// series. It updates each sending device's last activity (see ActivityStep).
// ids[i] is the log id of recs[i], or 0 when its device no longer exists
// (the message is dropped). If the transaction fails nothing is stored and
// nothing is added.
func (s *Store) Append(ctx context.Context, recs []Record) (ids []int64, err error) {
	s.write.Lock()
	defer s.write.Unlock()
	b := s.newBatch(recs)
	err = s.inTx(ctx, func(tx Tx) error { return b.write(ctx, tx) })
	if errors.Is(err, ErrDevicesChanged) {
		// A cached device changed (CheckAtCommit): look every device of the
		// batch up again, once.
		for i := range recs {
			if dev := s.devices.byID[recs[i].Message.DeviceID]; dev != nil {
				s.devices.forget(dev)
			}
		}
		b = s.newBatch(recs)
		err = s.inTx(ctx, func(tx Tx) error { return b.write(ctx, tx) })
	}
	defer s.scratch.release(b)
	if err != nil {
		return make([]int64, len(recs)), fmt.Errorf("append %d messages: %w", len(recs), err)
	}
	// Only now that the transaction committed does memory follow it.
	b.applyDevices()
	b.applyReadings()
	return b.ids, nil
}

// batch is one Append: what its transaction found and decided, applied to
// memory once it committed.
type batch struct {
	s    *Store
	recs []Record
	now  time.Time
	ids  []int64
	devs []*deviceRef // the device of each record; nil: it is gone
	// version is the storage's DevicesVersion read in the transaction, which
	// every device of the batch was confirmed at; versioned says there is one.
	version   int64
	versioned bool
	// series is the series of each reading of the stored records, in order
	// (nil: dropped at MaxMetricsPerDevice), found while looking for new
	// metrics so that adding the readings needs no second lookup.
	series []*series
	// forgets is the index's count of forgotten series when the batch
	// looked its series up.
	forgets        uint64
	fresh          map[seriesKey]*series // created by this batch
	replaced       map[seriesKey]bool    // cached series of a device that was recreated
	freshPerDevice map[int64]int
	evicted        []*deviceRef // cached rows that turned out stale
	capped         []*deviceRef // devices with new metric names dropped in this batch
	reshaped       []int        // records whose readings did not match their device's shape
	// Last-activity updates written in the transaction, and ones left for later.
	activity, pending []activityWrite
}

// batchScratch is what every batch uses again: slices and maps whose size
// follows the batch's, which were allocated anew by every commit (a
// fifteenth of the bytes the hub allocated with single messages; bench/
// README.md, issue 10, seventh round). Only Append's batch, under the
// write lock, uses it; release empties it.
type batchScratch struct {
	devs   []*deviceRef
	series []*series
	byID   map[string]*deviceRef // resolveDevices
	latest map[*deviceRef]int64  // planActivity
}

// release empties what a finished batch used, so that the scratch holds
// no device or series between batches, and keeps it for the next.
func (sc *batchScratch) release(b *batch) {
	if len(b.devs) > keepScratch || cap(b.series) > 16*keepScratch {
		// A rare large batch's are not held (peak RSS is a target of its own).
		*sc = batchScratch{}
		return
	}
	clear(b.devs)
	clear(b.series[:cap(b.series)])
	sc.devs, sc.series = b.devs[:0], b.series[:0]
	clear(sc.byID)
	clear(sc.latest)
}

// keepScratch is the most records (and, times 16, readings) a batch may
// have for its scratch to be kept for the next: single messages' commits
// (hundreds) reuse it, the SDK batches' commits of thousands allocate theirs.
const keepScratch = 1024

func (s *Store) newBatch(recs []Record) *batch {
	n := 0
	for i := range recs {
		n += len(recs[i].Readings)
	}
	sc := &s.scratch
	if cap(sc.devs) < len(recs) {
		sc.devs = make([]*deviceRef, len(recs))
	}
	if cap(sc.series) < n {
		sc.series = make([]*series, 0, n)
	}
	if sc.byID == nil {
		sc.byID, sc.latest = map[string]*deviceRef{}, map[*deviceRef]int64{}
	}
	// Cleared here too: after ErrDevicesChanged the batch is made again.
	clear(sc.devs[:len(recs)])
	clear(sc.byID)
	clear(sc.latest)
	return &batch{
		s: s, recs: recs, now: s.now(),
		ids: make([]int64, len(recs)), devs: sc.devs[:len(recs)], series: sc.series[:0],
		fresh: map[seriesKey]*series{}, replaced: map[seriesKey]bool{}, freshPerDevice: map[int64]int{},
	}
}

// write is the batch's transaction.
func (b *batch) write(ctx context.Context, tx Tx) error {
	devs, err := b.resolveDevices(ctx, tx)
	if err != nil {
		return err
	}
	if err := b.insert(ctx, tx, devs); err != nil {
		return err
	}
	if err := b.findSeries(ctx, tx); err != nil {
		return err
	}
	b.planActivity()
	return writeActivity(ctx, tx, b.activity)
}

// resolveDevices is this batch's view of its devices by id: cached rows,
// taken as they are while the storage's DevicesVersion has not moved since
// they were confirmed, otherwise checked in one query (a device deleted, or
// recreated under a new row, is looked up again) or with the commit
// (CheckAtCommit), and rows looked up now; nil for a device that is gone.
func (b *batch) resolveDevices(ctx context.Context, tx Tx) (map[string]*deviceRef, error) {
	checkAtCommit, _ := tx.(CheckAtCommit)
	if v, ok := tx.(DevicesVersion); ok && checkAtCommit == nil {
		var err error
		if b.version, err = v.DevicesVersion(ctx); err != nil {
			return nil, fmt.Errorf("check devices: %w", err)
		}
		b.versioned = true
	}
	devs := b.s.scratch.byID // empty: newBatch cleared it
	var cached []*deviceRef
	for i := range b.recs {
		id := b.recs[i].Message.DeviceID
		if _, seen := devs[id]; seen {
			continue
		}
		dev := b.s.devices.byID[id]
		switch {
		case dev != nil && b.versioned && dev.versioned && dev.version == b.version:
			// No device was deleted since its row was confirmed.
		case dev != nil:
			cached = append(cached, dev)
		default:
			var err error
			if dev, err = lookupDevice(ctx, tx, id); err != nil {
				return nil, err
			}
		}
		devs[id] = dev
	}
	if checkAtCommit != nil && len(cached) > 0 {
		rows := make([]DeviceRow, len(cached))
		for i, dev := range cached {
			rows[i] = dev.row()
		}
		if err := checkAtCommit.CheckDevicesAtCommit(ctx, rows); err != nil {
			return nil, fmt.Errorf("check devices: %w", err)
		}
		return devs, nil
	}
	stale, err := staleDevices(ctx, tx, cached)
	if err != nil {
		return nil, err
	}
	for _, dev := range stale {
		b.evicted = append(b.evicted, dev)
		if devs[dev.deviceID], err = lookupDevice(ctx, tx, dev.deviceID); err != nil {
			return nil, err
		}
	}
	return devs, nil
}

// lookupDevice reads a device's row; nil when there is none.
func lookupDevice(ctx context.Context, tx Tx, deviceID string) (*deviceRef, error) {
	row, ok, err := tx.FindDevice(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("find device %q: %w", deviceID, err)
	}
	if !ok {
		return nil, nil
	}
	return &deviceRef{deviceID: deviceID, id: row.ID, created: row.Created}, nil
}

// staleDevices returns the cached device rows that no longer match
// storage: the device was deleted, or deleted and created again.
func staleDevices(ctx context.Context, tx Tx, devs []*deviceRef) ([]*deviceRef, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(devs))
	for i, dev := range devs {
		ids[i] = dev.id
	}
	created, err := tx.DevicesCreated(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("check devices: %w", err)
	}
	var stale []*deviceRef
	for _, dev := range devs {
		if at, ok := created[dev.id]; !ok || at != dev.created {
			stale = append(stale, dev)
		}
	}
	return stale, nil
}

// insert logs every record whose device exists and sets its id.
func (b *batch) insert(ctx context.Context, tx Tx, devs map[string]*deviceRef) error {
	rows := make([]MessageRow, 0, len(b.recs))
	for i := range b.recs {
		if dev := devs[b.recs[i].Message.DeviceID]; dev != nil {
			b.devs[i] = dev
			rows = append(rows, MessageRow{Device: dev.id, Message: &b.recs[i].Message})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	ids, err := tx.InsertMessages(ctx, rows)
	if err != nil {
		return fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	k := 0
	for i, dev := range b.devs {
		if dev != nil {
			b.ids[i] = ids[k]
			k++
		}
	}
	return nil
}

// findSeries finds the series of every reading of the stored records.
// Metrics commit with the message that first names them, so that recovery
// finds every metric it replays.
func (b *batch) findSeries(ctx context.Context, tx Tx) error {
	b.forgets = b.s.idx.forgets
	for i, dev := range b.devs {
		if dev == nil {
			continue
		}
		rs := b.recs[i].Readings
		if dev.sameShape(rs, b.forgets) {
			b.series = append(b.series, dev.shape...)
			continue
		}
		b.reshaped = append(b.reshaped, i)
		for _, r := range rs {
			sr, err := b.seriesFor(ctx, tx, dev, r.Metric)
			if err != nil {
				return fmt.Errorf("device %q: %w", dev.deviceID, err)
			}
			b.series = append(b.series, sr)
		}
	}
	return nil
}

// seriesFor returns the series of a device's metric: indexed, created by
// this batch or created now; nil when the device has MaxMetricsPerDevice.
func (b *batch) seriesFor(ctx context.Context, tx Tx, dev *deviceRef, name string) (*series, error) {
	key := seriesKey{dev.id, name}
	known, ok := b.s.idx.byKey[key]
	if ok && known.deviceCreated == dev.created {
		return known, nil
	}
	if sr, ok := b.fresh[key]; ok {
		return sr, nil
	}
	if ok {
		b.replaced[key] = true
	} else if b.s.idx.perDevice[dev.id]+b.freshPerDevice[dev.id] >= MaxMetricsPerDevice {
		if !dev.overMetricCap && !slices.Contains(b.capped, dev) {
			b.capped = append(b.capped, dev)
		}
		return nil, nil
	}
	b.freshPerDevice[dev.id]++
	m, err := tx.CreateMetric(ctx, dev.row(), name)
	if err != nil {
		return nil, fmt.Errorf("create metric %q: %w", name, err)
	}
	sr := seriesOf(m)
	b.fresh[key] = sr
	return sr, nil
}

// planActivity decides which last activities the transaction writes: at
// once for a device this writer has not written yet, that hung up since
// (HungUp) or that moved on by ActivityStep, otherwise later (a sweep once a
// step, or the checkpoint).
func (b *batch) planActivity() {
	latest := b.s.scratch.latest // empty: newBatch cleared it
	for i, dev := range b.devs {
		if dev != nil {
			latest[dev] = max(latest[dev], dev.activity, unixMS(b.recs[i].Message.EnqueuedAt))
		}
	}
	cache := &b.s.devices
	sweep := b.now.Sub(cache.swept) >= ActivityStep
	for dev, at := range latest {
		switch {
		case at <= dev.stored:
		case dev.stored == 0 || dev.hungUp != 0 || at-dev.stored >= ActivityStep.Milliseconds() || sweep:
			b.activity = append(b.activity, activityWrite{dev, at})
		default:
			b.pending = append(b.pending, activityWrite{dev, at})
		}
	}
	if !sweep {
		return
	}
	// Devices that went quiet: an active one is written above as its
	// messages move on, spread over time rather than all at once.
	quiet := b.now.UnixMilli() - 2*ActivityStep.Milliseconds()
	for dev := range cache.pending {
		if _, ok := latest[dev]; !ok && dev.stored <= quiet {
			b.activity = append(b.activity, activityWrite{dev, dev.activity})
		}
	}
}

// applyDevices updates the device cache after the batch committed.
func (b *batch) applyDevices() {
	cache := &b.s.devices
	for _, dev := range b.evicted {
		cache.forget(dev)
	}
	for _, dev := range b.capped {
		dev.overMetricCap = true
		b.s.log.Warn(fmt.Sprintf("device reached the limit of %d metrics; readings of new metric names are not recorded (its messages still are)", MaxMetricsPerDevice),
			"device", dev.deviceID)
	}
	for i, dev := range b.devs {
		if dev == nil {
			continue
		}
		if id := b.recs[i].Message.DeviceID; cache.byID[id] != dev {
			cache.byID[id] = dev
		}
		dev.version, dev.versioned = b.version, b.versioned
	}
	for _, a := range b.pending {
		a.dev.activity = max(a.dev.activity, a.at)
		cache.pending[a.dev] = struct{}{}
	}
	cache.written(b.activity)
	if b.now.Sub(cache.swept) >= ActivityStep {
		cache.swept = b.now
	}
}

// applyReadings adds the committed readings to their series.
func (b *batch) applyReadings() {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range b.replaced {
		s.idx.forget(s.idx.byKey[key])
	}
	for _, sr := range b.fresh {
		s.idx.add(sr)
	}
	k, next := 0, 0
	cut := s.rollupCut(b.now)
	for i, dev := range b.devs {
		if dev == nil {
			continue
		}
		rec := &b.recs[i]
		if next < len(b.reshaped) && b.reshaped[next] == i {
			next++
			if shape := b.series[k : k+len(rec.Readings)]; !slices.Contains(shape, nil) {
				dev.setShape(shape, rec.Readings, b.forgets)
			}
		}
		ts := rec.Time.UnixMilli()
		for _, r := range rec.Readings {
			sr := b.series[k]
			k++
			if sr != nil && isFinite(r.Value) {
				sr.add(ts, r.Value, b.now, cut)
			}
		}
		s.lastApplied = max(s.lastApplied, b.ids[i])
	}
}

// unixMS is t in Unix ms; 0 for the zero time.
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
