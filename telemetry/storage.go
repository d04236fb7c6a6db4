package telemetry

import (
	"context"
	"errors"
	"time"
)

// Storage is what the engine needs from a database: the message log, the
// metrics with their stored chunks and the watermark, and the devices they
// belong to. Implementations hold no telemetry logic of their own; every
// one must pass the conformance suite in package telemetrytest. The SQLite
// one is package telemetry/sqlite.
//
// The engine writes through one Tx at a time, from one goroutine; queries
// come from any goroutine, also while a Tx is open. It assumes it is the
// only writer of what it reads back: the log's ids, each metric's chunk
// numbers and the watermark are its own. Several hubs on one database need
// a storage that scopes those to its hub.
type Storage interface {
	// Begin starts a write transaction.
	Begin(ctx context.Context) (Tx, error)

	// Recovery reads where recovery starts: the watermark (every message
	// up to it is in stored chunks) and every metric.
	Recovery(ctx context.Context) (watermark int64, metrics []MetricRow, err error)
	// MessagesAfter reads up to limit messages of the log with an id above
	// after, in id order, for recovery to replay.
	MessagesAfter(ctx context.Context, after int64, limit int) ([]LoggedBody, error)

	// Metrics lists a device's metrics by name with their stored last
	// values; MetricID finds one. For an unknown device or metric they, and
	// Messages, fail with an error that wraps storage.ErrNotFound and says what is
	// missing (`device "x": not found`, `device "x" has no metric "m": not
	// found`); the operator API shows it.
	Metrics(ctx context.Context, deviceID string) ([]Metric, error)
	MetricID(ctx context.Context, deviceID, name string) (int64, error)
	// Chunks returns a metric's stored chunks that overlap [from, to] (Unix
	// ms, inclusive), in any order; without withData their Data is nil. A
	// storage that several writers share also returns, as chunks numbered
	// below 0 and always with their Data, the readings in [from, to] that the
	// other writers logged and have not stored in chunks yet (as of the same
	// instant as the stored chunks), so that a query on any writer sees them.
	Chunks(ctx context.Context, metricID, from, to int64, withData bool) ([]Chunk, error)
	// Rollups reads a metric's stored rollup rows of tier t (TierMinute or
	// TierHour) whose bucket starts in [from, to] (Unix ms), in bucket
	// order, and — as of the same instant, in one statement — the message id
	// its stored chunks and rollups hold the readings through (this writer's
	// MetricRow.Through); no rows and 0 when the metric is gone.
	Rollups(ctx context.Context, metricID int64, t Tier, from, to int64) (through int64, rows []Rollup, err error)
	// ChunkData reads one stored chunk's points and data.
	ChunkData(ctx context.Context, metricID, chunkNo int64) (n int, data []byte, err error)
	// Messages lists a device's messages, newest first, with ids below
	// f.Before (f is checked and completed: 0 < Limit, 0 < Before).
	Messages(ctx context.Context, deviceID string, f MessageFilter) ([]Message, error)
}

// LazyCommitter is a Storage that can commit a transaction without
// waiting for the disk (SQLite: synchronous=NORMAL for that one commit; the
// commit is atomic and ordered before every later one, so a later commit's
// sync makes it durable too). The engine writes checkpoint steps so: what a
// step writes (chunks, rollups, each metric's through and the watermark, in
// one transaction) is rebuilt from the message log by recovery if a power
// failure loses it (the last activities it carries are then as old as the
// step before), and the step's own sync held up the message commits queued
// behind it (bench/README.md, issue 10, sixth round).
type LazyCommitter interface {
	BeginLazy(ctx context.Context) (Tx, error)
}

// MessageIndexer is a Storage that keeps its log's per-device index out of
// the commit (SQLite: one index page per device per commit was most of what
// a commit wrote) and fills it from the log's tail in steps instead; its
// Messages lists the index up to where the steps got and scans the rest.
// Store.IndexMessages runs the steps on the writer.
type MessageIndexer interface {
	// IndexMessages indexes up to limit messages of the log's unindexed
	// tail in one transaction and returns how many; limit means more may
	// be waiting.
	IndexMessages(ctx context.Context, limit int) (int, error)
}

// Tx is a write transaction. Nothing it did is visible to queries, or
// kept, until Commit; Rollback after Commit does nothing.
type Tx interface {
	// FindDevice looks a device up by its id; ok is false when there is none.
	FindDevice(ctx context.Context, deviceID string) (dev DeviceRow, ok bool, err error)
	// DevicesCreated returns the creation time of each of the devices ids
	// that still exist, so that the engine can tell a cached device deleted,
	// or deleted and created again, from one that is still the same.
	DevicesCreated(ctx context.Context, ids []int64) (map[int64]int64, error)
	// InsertMessages appends messages to the log, in order, and returns
	// their ids: increasing, and above every id ever returned before.
	InsertMessages(ctx context.Context, rows []MessageRow) ([]int64, error)
	// TouchDevices moves devices' last activity forward (never back), only
	// where the device is still the one of the row (id and created).
	TouchDevices(ctx context.Context, at []Activity) error

	// CreateMetric creates a device's metric, or returns it as stored when
	// it exists already (a device recreated under a reused id).
	CreateMetric(ctx context.Context, dev DeviceRow, name string) (MetricRow, error)
	// PutChunk stores a chunk of a metric, replacing the one with its
	// number; ok is false when the metric is gone (deleted with its device).
	PutChunk(ctx context.Context, metricID int64, c Chunk) (ok bool, err error)
	// AddRollups adds rows (each bucket once, in bucket order) to the
	// metric's stored rollups of tier t: a bucket stored already gets the
	// counts, sums and extremes folded in. ok is false when the metric is
	// gone.
	AddRollups(ctx context.Context, metricID int64, t Tier, rows []Rollup) (ok bool, err error)
	// UpdateMetric records that the metric's stored chunks hold its
	// readings of every message up to through, and its last value when last
	// is not nil; ok is false when the metric is gone.
	UpdateMetric(ctx context.Context, metricID, through int64, last *Point) (ok bool, err error)
	// SetWatermark records that every message up to id is in stored chunks.
	SetWatermark(ctx context.Context, id int64) error

	// DeleteMessages deletes messages enqueued before cutoff with ids up to
	// through, looking only at the limit oldest messages of the log.
	DeleteMessages(ctx context.Context, cutoff time.Time, through int64, limit int) (int, error)
	// DeleteChunks deletes up to limit chunks whose newest reading is
	// before cutoff (Unix ms).
	DeleteChunks(ctx context.Context, cutoff int64, limit int) (int, error)
	// DeleteRollups deletes up to limit rollup rows of tier t whose bucket
	// starts before cutoff (Unix ms).
	DeleteRollups(ctx context.Context, t Tier, cutoff int64, limit int) (int, error)

	Commit() error
	Rollback() error
}

// CheckAtCommit is a Tx that can check the devices the engine has cached
// with the commit rather than at once (DevicesCreated), where asking costs a
// round trip of its own. CheckDevicesAtCommit takes the rows the engine
// believes current; if any is not (deleted, or deleted and created again)
// when the transaction commits, Commit fails with ErrDevicesChanged, and
// nothing of it is kept. A storage that keeps messages without a foreign
// key to their device must also keep those devices from being deleted until
// the commit ends.
type CheckAtCommit interface {
	CheckDevicesAtCommit(ctx context.Context, devs []DeviceRow) error
}

// DevicesVersion is a Tx whose storage keeps a counter that moves whenever
// a device is deleted (and so also when one is deleted and created again),
// whoever deletes it. The engine reads it in each transaction and checks a
// cached device's row (DevicesCreated) only when the counter moved since it
// last confirmed that row: with a fleet that does not change, a batch costs
// one row read instead of a lookup per sending device. The counter may move
// for other reasons too (SQLite's moves with every credential change as
// well); that only costs a check.
type DevicesVersion interface {
	DevicesVersion(ctx context.Context) (int64, error)
}

// ErrDevicesChanged fails the commit of a transaction whose devices, checked
// at commit (CheckAtCommit), changed; Append looks them up again and retries.
var ErrDevicesChanged = errors.New("a device of the batch was deleted or created again")

// DeviceRow is a device as the telemetry tables refer to it: its internal
// id, and its creation time (Unix ms), which tells a device recreated under
// a reused id from the one before.
type DeviceRow struct {
	ID      int64
	Created int64
}

// MessageRow is a message to log, with its device.
type MessageRow struct {
	Device  int64 // DeviceRow.ID
	Message *Message
}

// LoggedBody is a message of the log as recovery replays it.
type LoggedBody struct {
	ID         int64
	Device     int64 // DeviceRow.ID
	EnqueuedAt time.Time
	Body       []byte
}

// Activity is a device's newest last activity, in Unix ms.
type Activity struct {
	Device DeviceRow
	At     int64
}

// Point is one reading in Unix ms.
type Point struct {
	TS    int64
	Value float64
}

// MetricRow is a metric as stored.
type MetricRow struct {
	ID      int64
	Device  DeviceRow
	Name    string
	Last    Point
	HasLast bool  // Last holds the newest reading as of the last checkpoint
	Through int64 // stored chunks hold its readings of messages up to this id
	// LastChunk is the highest chunk number stored; 0 when none.
	LastChunk int64
}

// Chunk is a stored chunk of one metric's readings (see chunk.go), with the
// summary that lets a long-range query skip decoding it.
type Chunk struct {
	No         int64 // per metric, in fill order
	Start, End int64 // the smallest and largest timestamps, Unix ms
	N          int
	Min, Max   float64
	Sum        float64
	Data       []byte
}
