package ingest

import (
	"sync/atomic"
	"time"
)

// Protocols a message can arrive by (telemetry.Message.Protocol).
const (
	ProtocolHTTPS = "https"
	ProtocolMQTT  = "mqtt"
)

// Protocols lists the protocols the counters keep apart, in their order;
// a message whose sender named neither counts as "other".
var Protocols = [...]string{ProtocolHTTPS, ProtocolMQTT, "other"}

func protocolIndex(p string) int {
	switch p {
	case ProtocolHTTPS:
		return 0
	case ProtocolMQTT:
		return 1
	}
	return 2
}

// Reason is why a device message was refused.
type Reason int

// The reasons, each with the answer a device gets over HTTPS.
const (
	ReasonTooLarge     Reason = iota // 413: the message (or batch) is over its size limit
	ReasonThrottled                  // 429: the device is over its message quota
	ReasonOverloaded                 // 503: the ingest queue is full
	ReasonStorageFault               // 503: the commit failed (a full disk)
	NumReasons
)

// Reasons are the label values of the reasons, by Reason.
var Reasons = [NumReasons]string{"too_large", "throttled", "overloaded", "storage_fault"}

// Refusals counts refused device messages by protocol and reason: the
// device endpoints count what they refuse, the metrics read it. Atomic
// counters, so the hot path neither locks nor allocates.
type Refusals struct {
	n [len(Protocols)][NumReasons]atomic.Int64
}

// Add counts one refusal; a nil Refusals counts nothing.
func (r *Refusals) Add(protocol string, reason Reason) {
	if r == nil || reason < 0 || reason >= NumReasons {
		return
	}
	r.n[protocolIndex(protocol)][reason].Add(1)
}

// Count returns the refusals so far of protocol for reason.
func (r *Refusals) Count(protocol string, reason Reason) int64 {
	if r == nil || reason < 0 || reason >= NumReasons {
		return 0
	}
	return r.n[protocolIndex(protocol)][reason].Load()
}

// CommitBuckets are the upper bounds (seconds) of the commit latency
// histogram: a group commit with fsync takes about a millisecond on an SSD,
// and seconds on a failing disk.
var CommitBuckets = [...]float64{0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// The writer's steps between batches: while one runs, every commit waits
// behind it, so their durations are the ingest path's stalls (the tail of
// the acknowledgements' latency; bench/README.md, issue 10, sixth round).
const (
	StepIndex      = iota // a step of the message log's device index
	StepCheckpoint        // a step of a telemetry checkpoint cycle
	StepPrune             // a step of retention
	NumSteps
)

// Steps names the writer's steps, indexed by StepIndex and the rest: the
// label of fieldhub_ingest_step_duration_seconds.
var Steps = [NumSteps]string{"index", "checkpoint", "prune"}

// latency is a histogram of commit (or step) durations in atomic
// counters; the writer goroutine is its only writer.
type latency struct {
	buckets [len(CommitBuckets)]atomic.Int64 // not cumulative
	count   atomic.Int64
	sumNs   atomic.Int64
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range CommitBuckets {
		if s <= b {
			l.buckets[i].Add(1)
			break
		}
	}
	l.sumNs.Add(int64(d))
	l.count.Add(1)
}

// Latency is a snapshot of a latency histogram (CommitBuckets).
type Latency struct {
	Count   uint64
	Sum     float64                    // seconds
	Buckets [len(CommitBuckets)]uint64 // cumulative: commits that took at most CommitBuckets[i]
}

func (l *latency) snapshot() Latency {
	var s Latency
	var cum uint64
	for i := range l.buckets {
		cum += uint64(l.buckets[i].Load())
		s.Buckets[i] = cum
	}
	// Read after the buckets, so that Count is never below the last one
	// (observe adds to the bucket first).
	s.Count = uint64(l.count.Load())
	s.Count = max(s.Count, cum)
	s.Sum = time.Duration(l.sumNs.Load()).Seconds()
	return s
}

// protocolStats are what committed of one protocol.
type protocolStats struct{ messages, readings, bytes atomic.Int64 }

// Ingested is what committed of one protocol.
type Ingested struct {
	Messages int64
	Readings int64 // numeric values stored as time series
	Bytes    int64 // message sizes as Azure IoT Hub counts them (body and properties)
}
