package testutil

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestWaitForEvery(t *testing.T) {
	tests := map[string]struct {
		holdsOn   int // the call of cond that first returns true; 0: never
		timeout   time.Duration
		wantCalls int // 0: do not check
		wantFatal []string
	}{
		"holds at once":       {holdsOn: 1, timeout: time.Minute, wantCalls: 1},
		"holds on the fourth": {holdsOn: 4, timeout: time.Minute, wantCalls: 4},
		"never holds": {holdsOn: 0, timeout: 30 * time.Millisecond,
			wantFatal: []string{"timed out after 30ms waiting for the moon"}},
	}
	// In synctest bubbles: the polls' sleeps run on the bubble's clock, so
	// how long a wait took is exact.
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tb := &fakeTB{}
				calls := 0
				took := WaitForEvery(tb, time.Millisecond, tc.timeout, "the moon", func() bool {
					calls++
					return calls == tc.holdsOn
				})
				if got := tb.failures(); !slices.Equal(got, tc.wantFatal) {
					t.Fatalf("failures %q, want %q", got, tc.wantFatal)
				}
				if tc.wantCalls != 0 && calls != tc.wantCalls {
					t.Errorf("cond called %d times, want %d", calls, tc.wantCalls)
				}
				// It gives up at the first poll past the timeout.
				if tc.holdsOn == 0 && (took <= tc.timeout || took > tc.timeout+time.Millisecond) {
					t.Errorf("gave up after %s, want within a poll after the %s timeout", took, tc.timeout)
				}
				if want := time.Duration(tc.holdsOn-1) * time.Millisecond; tc.holdsOn > 0 && took != want {
					t.Errorf("took %s for %d polls 1 ms apart, want %s", took, tc.holdsOn, want)
				}
			})
		})
	}
}

func TestWaitForPollsAtPollInterval(t *testing.T) { synctest.Test(t, testWaitForPollsAtPollInterval) }

func testWaitForPollsAtPollInterval(t *testing.T) {
	tb := &fakeTB{}
	calls := 0
	took := WaitFor(tb, time.Minute, "the third look", func() bool {
		calls++
		return calls == 3
	})
	if f := tb.failures(); len(f) != 0 {
		t.Fatalf("failed: %q", f)
	}
	if took != 2*PollInterval {
		t.Errorf("3 looks took %s, want 2 poll intervals of %s", took, PollInterval)
	}
}
