package alert

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy says when a failed delivery is tried again and when a hook
// that keeps failing is disabled. It only computes times; the caller keeps
// attempts durable and sends them.
type RetryPolicy struct {
	First        time.Duration // wait after the first failure
	Max          time.Duration // longest wait between attempts
	GiveUpAfter  time.Duration // a delivery is dropped this long after its first failure
	DisableAfter time.Duration // a hook is disabled after failing without a success this long
	// Jitter returns a number in [0, 1); nil uses math/rand/v2. Half of
	// each wait is random, so hooks that failed together do not retry in
	// step.
	Jitter func() float64
}

// DefaultRetryPolicy retries after about 10 s, 20 s, 40 s, … up to 10
// minutes apart, for an hour; a hook failing for a day is disabled.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{First: 10 * time.Second, Max: 10 * time.Minute, GiveUpAfter: time.Hour, DisableAfter: 24 * time.Hour}
}

// NextAttempt is when to try a delivery again after its attempt-th failure
// (1 for the first), the first of which was at firstFailure. giveUp is true
// when the delivery has been failing for GiveUpAfter: it is dropped. The
// last attempt is made at firstFailure+GiveUpAfter.
func (p RetryPolicy) NextAttempt(attempt int, firstFailure, now time.Time) (next time.Time, giveUp bool) {
	deadline := firstFailure.Add(p.GiveUpAfter)
	if !now.Before(deadline) {
		return time.Time{}, true
	}
	wait := p.First
	for i := 1; i < attempt && wait < p.Max; i++ {
		wait *= 2
	}
	wait = min(wait, p.Max)
	jitter := p.Jitter
	if jitter == nil {
		jitter = rand.Float64
	}
	wait = wait/2 + time.Duration(jitter()*float64(wait/2))
	next = now.Add(wait)
	if next.After(deadline) {
		next = deadline
	}
	return next, false
}

// Disable reports whether a hook whose deliveries have failed since
// failingSince (the first failure after its last success; zero when the
// last delivery succeeded) should be disabled now.
func (p RetryPolicy) Disable(failingSince, now time.Time) bool {
	return !failingSince.IsZero() && now.Sub(failingSince) >= p.DisableAfter
}
