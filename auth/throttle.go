package auth

import (
	"sync"
	"time"
)

// Throttle slows password guessing: after a few failures for a key (username and
// client address) further attempts are refused until a delay, doubling each time, passes.
type Throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]*throttleEntry
	free    int           // failures allowed before delays start
	base    time.Duration // first delay
	maxWait time.Duration
}

type throttleEntry struct {
	failures int
	until    time.Time
	last     time.Time
}

// NewThrottle allows free failures per key, then waits base, 2*base, … up to max.
func NewThrottle(now func() time.Time, free int, base, max time.Duration) *Throttle {
	return &Throttle{now: now, entries: map[string]*throttleEntry{}, free: free, base: base, maxWait: max}
}

// Allow reports whether an attempt for key may proceed now, and if not, how long to wait.
func (t *Throttle) Allow(key string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil {
		return true, 0
	}
	if wait := e.until.Sub(t.now()); wait > 0 {
		return false, wait
	}
	return true, 0
}

// Fail records a failed attempt.
func (t *Throttle) Fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.gc(now)
	e := t.entries[key]
	if e == nil {
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.failures++
	e.last = now
	if over := e.failures - t.free; over > 0 {
		d := t.base << min(over-1, 20)
		if d > t.maxWait || d <= 0 {
			d = t.maxWait
		}
		e.until = now.Add(d)
	}
}

// Succeed forgets a key's failures.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// gc drops entries idle for a day so a flood of usernames cannot grow memory forever.
func (t *Throttle) gc(now time.Time) {
	if len(t.entries) < 10000 {
		return
	}
	for k, e := range t.entries {
		if now.Sub(e.last) > 24*time.Hour {
			delete(t.entries, k)
		}
	}
}
