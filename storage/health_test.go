package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"fieldhub/storage"
)

// errFull stands for a store's disk-full error; fullKind is that store's
// naming of it (db.FaultKind names SQLite's real one, db.TestFaultKind).
var errFull = errors.New("database or disk is full")

func fullKind(err error) string {
	if errors.Is(err, errFull) {
		return "disk full"
	}
	return ""
}

func TestHealthFaultKind(t *testing.T) {
	h := storage.NewHealth(nil, fullKind, nil)
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errFull, "disk full"},
		{fmt.Errorf("store messages: %w", errFull), "disk full"},
		{storage.ErrNotFound, ""},
		{errors.New("boom"), ""},
	} {
		if got := h.FaultKind(tt.err); got != tt.want {
			t.Errorf("FaultKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got := storage.NewHealth(nil, nil, nil).FaultKind(errFull); got != "" {
		t.Errorf("without a store's naming: FaultKind = %q, want none", got)
	}
}

func TestHealthLogsOncePerChange(t *testing.T) {
	// Record runs on this goroutine only, so a plain buffer will do.
	var logBuf bytes.Buffer
	var mu sync.Mutex
	var changes []storage.Status
	h := storage.NewHealth(slog.New(slog.NewTextHandler(&logBuf, nil)), fullKind, func(st storage.Status) {
		mu.Lock()
		changes = append(changes, st)
		mu.Unlock()
	})
	const msgs, checkpoints = "storing device messages", "writing telemetry checkpoints"

	h.Record(msgs, nil)
	if st := h.Status(); !st.OK || st.Reason != "" {
		t.Fatalf("after a success: %+v, want OK", st)
	}
	for range 100 {
		h.Record(msgs, errFull)
	}
	st := h.Status()
	if st.OK || st.Since.IsZero() || st.Reason != "storing device messages fails (disk full)" {
		t.Errorf("after failures: %+v, want not OK, since set, reason naming the op and the disk full", st)
	}
	// Another kind of write succeeding does not clear it.
	h.Record(checkpoints, nil)
	if h.Status().OK {
		t.Error("a checkpoint's success cleared the failing message commits")
	}
	h.Record(checkpoints, errors.New("boom"))
	if st := h.Status(); !strings.Contains(st.Reason, msgs) || !strings.Contains(st.Reason, checkpoints+" fails (commit failed)") {
		t.Errorf("two kinds failing: reason %q, want both, the unnamed one as commit failed", st.Reason)
	}
	h.Record(checkpoints, nil)
	h.Record(msgs, nil)
	h.Record(msgs, nil)
	if st := h.Status(); !st.OK {
		t.Errorf("after success: %+v, want OK", st)
	}

	log := logBuf.String()
	if n := strings.Count(log, "storage fault"); n != 2 {
		t.Errorf("%d fault lines, want 2 (one per kind of write):\n%s", n, log)
	}
	if n := strings.Count(log, "storage recovered"); n != 2 {
		t.Errorf("%d recovery lines, want 2:\n%s", n, log)
	}
	if !strings.Contains(log, "failed_commits=100") {
		t.Errorf("the recovery line does not count the 100 failed commits:\n%s", log)
	}
	mu.Lock()
	defer mu.Unlock()
	var oks []bool
	for _, c := range changes {
		oks = append(oks, c.OK)
	}
	if fmt.Sprint(oks) != "[false false false true]" {
		t.Errorf("changes announced: %v, want [false false false true] (msgs fail, checkpoints fail, checkpoints recover, msgs recover)", oks)
	}
}
