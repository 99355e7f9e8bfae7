package testutil

import (
	"testing"
	"time"
)

// PollInterval is how often [WaitFor] looks at its condition: often enough that a wait ends
// within a few milliseconds of the outcome, rarely enough that polling does not compete with
// the code under test for a loaded 2-core machine's CPU.
const PollInterval = 10 * time.Millisecond

// WaitFor polls cond every [PollInterval] until it holds and returns how long that took (for
// the log). If cond does not hold within timeout it fails tb with Fatalf, saying what it waited
// for. It is how tests wait for an asynchronous outcome; a fixed sleep would be either too
// short on a loaded machine or needlessly long everywhere else.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	return WaitForEvery(tb, PollInterval, timeout, what, cond)
}

// WaitForEvery is [WaitFor] polling every interval instead, for a test whose outcome needs a
// finer (or allows a coarser) look than PollInterval.
func WaitForEvery(tb testing.TB, interval, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
			// Fatalf does not return from a real test; this return is for a testing.TB
			// whose Fatalf does.
			return time.Since(start)
		}
		time.Sleep(interval) // the polling interval, not synchronisation
	}
	return time.Since(start)
}
