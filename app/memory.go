package app

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultMemoryLimitMiB is the default of --memory-limit. With 1,000 HTTPS
// devices (bench BenchmarkHubHTTPS) the hub's RSS is this plus about 30 MiB
// outside Go's memory (the binary's mapped pages 26, malloc's 5: SQLite's
// caches and statements; issue 10, eighth round); 104
// rather than 112 cost about 1-2 % more of the CPU in collection
// (bench/README.md, issue 10, fifth round).
const DefaultMemoryLimitMiB = 104

// memoryHeadroom is the share of the limit that must stay free of live
// data for the limit to hold: with less, the collector would run so often
// that it costs more than the memory it saves.
const memoryHeadroom = 4 // a quarter

// memoryCheckEvery is how often the governor looks at the live heap.
const memoryCheckEvery = time.Second

// governMemory keeps the hub's Go memory under Config.MemoryLimitMiB while
// its live data leaves a quarter of that free, by the runtime's soft memory
// limit: Go's collector otherwise lets the heap grow to twice what was live
// at the last collection, and under a burst (1,000 devices posting batches
// at once, each request's decoded messages live until commit) that doubling
// is most of the hub's peak memory. A hub whose live data outgrows that
// (a large fleet's connections, series and queues) gets a limit that keeps
// a quarter of the configured one free above its live data, and more as
// live data grows past the limit, up to Go's own heap goal: no step, so
// that live data just past three quarters does not raise the limit by half
// at once (it did: the SDK-batch phase of bench BenchmarkHubHTTPS sits
// there), and the collector never runs without end against a limit too
// small. Off with 0, and when GOMEMLIMIT is set: the operator's own limit
// wins.
func (a *App) governMemory(context.Context) error {
	limitMiB := a.cfg.MemoryLimitMiB
	if limitMiB <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	g := newMemoryGovernor(int64(limitMiB) << 20)
	g.apply(a.log)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(memoryCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				g.apply(a.log)
			}
		}
	}()
	a.onStop("memory governor", quickStop, func(context.Context) error {
		close(done)
		<-stopped
		debug.SetMemoryLimit(g.before)
		return nil
	})
	return nil
}

// memoryGovernor sets the runtime's soft memory limit from the live heap.
type memoryGovernor struct {
	floor   int64 // the configured limit, bytes
	before  int64 // the runtime's limit before, restored on stop
	current int64
	samples []metrics.Sample
}

func newMemoryGovernor(floor int64) *memoryGovernor {
	return &memoryGovernor{floor: floor, before: debug.SetMemoryLimit(-1), samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}}
}

// limitFor is the limit for a live heap of live bytes and other bytes of
// Go memory that is not heap objects (stacks, the runtime's own): the
// floor while a quarter of it stays free; beyond, live data plus other
// plus room to allocate before the next collection. That room is a
// quarter of the floor while the live heap is small next to the floor (so
// the limit moves on from the floor without a step) and grows one for one
// with the live heap past half the floor, so that a large heap is
// collected about as often as Go's default would (which caps the limit:
// twice the live heap plus other).
func limitFor(floor, live, other int64) int64 {
	if live+other <= floor-floor/memoryHeadroom {
		return floor
	}
	room := max(floor/memoryHeadroom, live-floor/2)
	return max(floor, min(2*live+other, live+other+room))
}

func (g *memoryGovernor) apply(log *slog.Logger) {
	metrics.Read(g.samples)
	v := make([]int64, len(g.samples))
	for i, s := range g.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = int64(s.Value.Uint64())
		}
	}
	live, total := v[0], v[1]
	other := total - v[2] - v[3] - v[4] - v[5]
	limit := limitFor(g.floor, live, other)
	if limit == g.current {
		return
	}
	if g.current != 0 {
		log.Debug("memory limit moved with the live heap", "limit_mib", limit>>20, "live_mib", live>>20, "floor_mib", g.floor>>20)
	}
	g.current = limit
	debug.SetMemoryLimit(limit)
}
