package alert

import (
	"testing"
	"time"
)

func TestRetryPolicy(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999999} {
		p := DefaultRetryPolicy()
		p.Jitter = func() float64 { return jitter }
		first := at(0)
		now := first
		var waits []time.Duration
		for attempt := 1; ; attempt++ {
			next, giveUp := p.NextAttempt(attempt, first, now)
			if giveUp {
				break
			}
			if !next.After(now) {
				t.Fatalf("jitter %g: attempt %d scheduled at %s, not after %s", jitter, attempt, sec(next), sec(now))
			}
			waits = append(waits, next.Sub(now))
			now = next
			if attempt > 100 {
				t.Fatal("never gives up")
			}
		}
		if !now.Equal(first.Add(time.Hour)) {
			t.Errorf("jitter %g: last attempt at %s, want at one hour", jitter, sec(now))
		}
		if waits[0] < 5*time.Second || waits[0] > 10*time.Second || waits[1] < 10*time.Second || waits[1] > 20*time.Second {
			t.Errorf("jitter %g: first waits %v", jitter, waits[:2])
		}
		for i, w := range waits {
			if w > 10*time.Minute {
				t.Errorf("jitter %g: wait %d is %v, over the 10 minute cap", jitter, i, w)
			}
		}
	}
	p := DefaultRetryPolicy()
	if _, giveUp := p.NextAttempt(1, at(0), at(3600)); !giveUp {
		t.Error("did not give up after an hour")
	}
	if next, giveUp := p.NextAttempt(1000000, at(0), at(0)); giveUp || next.Sub(at(0)) > 10*time.Minute {
		t.Errorf("attempt 1,000,000: next in %v, give up %v", next.Sub(at(0)), giveUp)
	}
	if p.Disable(time.Time{}, at(1e6)) || p.Disable(at(0), at(86399)) || !p.Disable(at(0), at(86400)) {
		t.Error("a hook is disabled exactly after failing for a day")
	}
}
