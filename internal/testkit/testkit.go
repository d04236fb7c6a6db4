// Package testkit is what Fieldhub's tests share: waiting for a condition,
// a clock moved by hand, a recording live publisher, and the real router
// over a real database with a token per role. It is imported by tests only.
//
// Internal tests (package x, not x_test) of the packages the kit builds on
// (db, commands, live, registry, handlers) cannot import it: that would be
// an import cycle. Their external tests can.
package testkit

import (
	"testing"
	"time"
)

// Wait bounds how long a test waits for something that should happen. It
// is a failure bound, never a performance assertion.
const Wait = 10 * time.Second

// WaitFor polls cond until it holds and fails the test if it does not
// within Wait.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Slow skips an end-to-end test under `go test -short`, saying what makes
// it slow (a binary built, a process killed, thousands of connections);
// `make test` runs every test.
func Slow(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow, skipped by -short: " + what)
	}
}
