package storage

import (
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health is the state of the hub's writes to storage, kept in one place:
// the ingest pipeline reports the outcome of every commit with Record, and
// /readyz, the dashboard, the live streams and the MQTT broker read it. It logs once per change of state — a kind of write
// starting to fail, or succeeding again — rather than once per failed
// request, and it clears by itself when that kind of write next succeeds.
//
// Each kind of write (op) is tracked on its own: on a nearly full disk a
// small commit may succeed while a large one fails, and one kind's success
// must not hide, and then re-announce, another kind's failure.
type Health struct {
	log       *slog.Logger
	faultKind func(error) string
	onChange  func(Status)
	now       func() time.Time

	failing atomic.Int32 // len(faults), read without the lock on every success
	mu      sync.Mutex
	faults  map[string]*fault
}

type fault struct {
	since    time.Time
	kind     string // what the first failure was, in words safe to show
	failures int64
}

// Status is what the hub says about its storage.
type Status struct {
	OK bool `json:"ok"`
	// Reason says what fails and why, in words safe to show anyone: no
	// paths, no SQL (the log has the errors).
	Reason string `json:"reason,omitempty"`
	// Since is when the oldest failing kind of write first failed.
	Since time.Time `json:"since,omitzero"`
}

// NewHealth starts healthy. faultKind is the store's own naming of its
// faults (db.FaultKind for SQLite): words safe to show anyone ("disk
// full"), or "" when an error is not the storage failing; nil knows no
// faults. onChange, when set, is called with the new status at every
// change of state, under Health's lock (so in order); it must return at
// once and must not call back into Health.
func NewHealth(log *slog.Logger, faultKind func(error) string, onChange func(Status)) *Health {
	if log == nil {
		log = slog.Default()
	}
	if faultKind == nil {
		faultKind = func(error) string { return "" }
	}
	return &Health{log: log, faultKind: faultKind, onChange: onChange, now: time.Now, faults: make(map[string]*fault)}
}

// FaultKind names err in words safe to show anyone when it is the storage
// failing (full, broken, locked): worth a 503 and a retry rather than a
// 500. It is "" for any other error.
func (h *Health) FaultKind(err error) string { return h.faultKind(err) }

// describe is what a failed commit is called in the log and the status:
// its fault kind, or "commit failed".
func (h *Health) describe(err error) string {
	if kind := h.faultKind(err); kind != "" {
		return kind
	}
	return "commit failed"
}

// Record reports the outcome of one commit of the kind op (a short phrase
// like "storing device messages"); err nil means it committed. Every
// failure counts, whatever its cause: a failed commit means the data did
// not reach storage.
func (h *Health) Record(op string, err error) {
	if err == nil && h.failing.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.faults[op]
	now := h.now()
	switch {
	case err == nil && f == nil:
		return
	case err == nil:
		delete(h.faults, op)
		h.failing.Store(int32(len(h.faults)))
		h.log.Info("storage recovered: commits succeed again", "op", op,
			"failed_for", now.Sub(f.since).Round(time.Millisecond), "failed_commits", f.failures)
	case f != nil:
		f.failures++
		return
	default:
		h.faults[op] = &fault{since: now, kind: h.describe(err), failures: 1}
		h.failing.Store(int32(len(h.faults)))
		h.log.Error("storage fault: commits fail; devices are told to retry, and the hub recovers by itself once a commit succeeds",
			"op", op, "reason", h.describe(err), "err", err)
	}
	if h.onChange != nil {
		h.onChange(h.statusLocked())
	}
}

// Status is the current state.
func (h *Health) Status() Status {
	if h.failing.Load() == 0 {
		return Status{OK: true}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *Health) statusLocked() Status {
	if len(h.faults) == 0 {
		return Status{OK: true}
	}
	ops := make([]string, 0, len(h.faults))
	for op := range h.faults {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		a, b := h.faults[ops[i]], h.faults[ops[j]]
		if !a.since.Equal(b.since) {
			return a.since.Before(b.since)
		}
		return ops[i] < ops[j]
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = op + " fails (" + h.faults[op].kind + ")"
	}
	return Status{Reason: strings.Join(parts, "; "), Since: h.faults[ops[0]].since.UTC()}
}
