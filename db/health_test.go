package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// fullDB is a real database that behaves as on a full disk (see
// dbtest.FillUp), with a table to fill.
func fullDB(t *testing.T) (d *db.DB, free func()) {
	t.Helper()
	d = dbtest.MustOpen(t)
	if _, err := d.Writer().ExecContext(context.Background(), "CREATE TABLE filler (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	return d, dbtest.FillUp(t, d)
}

// fillErr is the error of a write that does not fit.
func fillErr(t *testing.T, d *db.DB) error {
	t.Helper()
	_, err := d.Writer().ExecContext(context.Background(), "INSERT INTO filler VALUES (zeroblob(200000))")
	if err == nil {
		t.Fatal("a 200 KB write fitted into a full database")
	}
	return err
}

func TestFaultKind(t *testing.T) {
	d, _ := fullDB(t)
	full := fillErr(t, d)
	for _, tt := range []struct {
		name  string
		err   error
		kind  string
		fault bool
	}{
		{"SQLite full", full, "disk full", true},
		{"wrapped", fmt.Errorf("store messages: %w", full), "disk full", true},
		{"not found", db.ErrNotFound, "commit failed", false},
		{"other", errors.New("boom"), "commit failed", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := db.FaultKind(tt.err); got != tt.kind {
				t.Errorf("FaultKind(%v) = %q, want %q", tt.err, got, tt.kind)
			}
			if got := db.IsStorageFault(tt.err); got != tt.fault {
				t.Errorf("IsStorageFault(%v) = %v, want %v", tt.err, got, tt.fault)
			}
		})
	}
}

func TestHealthLogsOncePerChange(t *testing.T) {
	d, _ := fullDB(t)
	full := fillErr(t, d)
	// Record runs on this goroutine only, so a plain buffer will do.
	var logBuf bytes.Buffer
	var mu sync.Mutex
	var changes []db.StorageStatus
	h := db.NewHealth(slog.New(slog.NewTextHandler(&logBuf, nil)), func(st db.StorageStatus) {
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
		h.Record(msgs, full)
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
	h.Record(checkpoints, full)
	if st := h.Status(); !strings.Contains(st.Reason, msgs) || !strings.Contains(st.Reason, checkpoints) {
		t.Errorf("two kinds failing: reason %q, want both", st.Reason)
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
