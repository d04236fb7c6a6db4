package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestCloseGivesUpOnAHungPartWithItsStacks: a part that does not stop
// within its bound is left behind so the parts before it still stop, and
// the log says where every goroutine waited: the only clue to a hang at
// shutdown when the process is killed right after.
func TestCloseGivesUpOnAHungPartWithItsStacks(t *testing.T) {
	var logged bytes.Buffer
	a := &App{log: slog.New(slog.NewTextHandler(&logged, nil))}
	release := make(chan struct{})
	defer close(release)
	stoppedFirst := false
	a.onStop("first", time.Second, func(context.Context) error { stoppedFirst = true; return nil })
	a.onStop("hung", 50*time.Millisecond, func(context.Context) error {
		hungPartWaitsHere(release)
		return nil
	})

	err := a.Close()
	if err == nil || !strings.Contains(err.Error(), "stop hung: did not stop within 50ms") {
		t.Fatalf("Close = %v, want the hung part named", err)
	}
	if !stoppedFirst {
		t.Error("the part started before the hung one was not stopped")
	}
	if !strings.Contains(logged.String(), "hungPartWaitsHere") {
		t.Errorf("the log has no goroutine dump naming the hung function:\n%.2000s", logged.String())
	}
}

//go:noinline
func hungPartWaitsHere(release <-chan struct{}) { <-release }
