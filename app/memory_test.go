package app

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestMemoryLimitFollowsLiveHeap: the configured limit holds while live
// data leaves a quarter of it free; beyond, the limit rises with live data
// without a step (a quarter of the floor of room), the room growing with a
// large live heap up to Go's own goal (twice the live heap), so the
// collector never runs without end.
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
		{"less than a quarter free", 60 * mib, 25 * mib, 113 * mib},
		{"the SDK-batch phase's burst", 66 * mib, 22 * mib, 116 * mib},
		{"live data at the floor", 112 * mib, 30 * mib, 198 * mib},
		{"live data past the limit", 300 * mib, 40 * mib, 584 * mib},
		{"small other memory", 30 * mib, 60 * mib, 118 * mib},
	}
	for _, tt := range tests {
		if got := limitFor(floor, tt.live, tt.other); got != tt.want {
			t.Errorf("%s: limit %d MiB, want %d MiB", tt.name, got/mib, tt.want/mib)
		}
	}
}

// TestMemoryLimitHasNoStep: as live data grows, the limit never jumps by
// more than the growth of live and other memory (the old rule raised it by
// half at once just past three quarters of the floor), and it never falls
// below live data plus other plus room for an eighth of the floor.
func TestMemoryLimitHasNoStep(t *testing.T) {
	const mib = 1 << 20
	floor := int64(112 * mib)
	const other = 24 * mib
	prev := limitFor(floor, 0, other)
	for live := int64(mib); live <= 1024*mib; live += mib {
		got := limitFor(floor, live, other)
		if got-prev > 2*mib {
			t.Fatalf("live %d MiB: limit jumped from %d to %d MiB", live/mib, prev/mib, got/mib)
		}
		if got < live+other+floor/8 {
			t.Fatalf("live %d MiB: limit %d MiB leaves less than an eighth of the floor free", live/mib, got/mib)
		}
		prev = got
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
