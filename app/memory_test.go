package app

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestMemoryLimitFollowsLiveHeap: the configured limit holds while live
// data leaves a quarter of it free; beyond, the limit is Go's own goal
// (twice the live heap), so the collector never runs without end.
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	const mib = 1 << 20
	floor := int64(112 * mib)
	tests := []struct {
		name        string
		live, other int64
		want        int64
	}{
		{"idle", 10 * mib, 20 * mib, floor},
		{"busy, a quarter free", 60 * mib, 24 * mib, floor},
		{"less than a quarter free", 60 * mib, 25 * mib, 145 * mib},
		{"live data past the limit", 300 * mib, 40 * mib, 640 * mib},
	}
	for _, tt := range tests {
		if got := limitFor(floor, tt.live, tt.other); got != tt.want {
			t.Errorf("%s: limit %d MiB, want %d MiB", tt.name, got/mib, tt.want/mib)
		}
	}
}

// TestMemoryGovernorSetsTheRuntimeLimit: the governor sets the runtime's
// limit (this test process's live heap is far below 112 MiB).
func TestMemoryGovernorSetsTheRuntimeLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	g := newMemoryGovernor(112 << 20)
	g.apply(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := debug.SetMemoryLimit(-1); got != 112<<20 {
		t.Errorf("runtime memory limit %d, want %d", got, 112<<20)
	}
	if g.before != before {
		t.Errorf("governor remembered %d as the limit before, want %d", g.before, before)
	}
}
