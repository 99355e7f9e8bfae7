package testutil

import (
	"slices"
	"testing"
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
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
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
			if tc.holdsOn == 0 && took < tc.timeout {
				t.Errorf("gave up after %s, before the %s timeout", took, tc.timeout)
			}
			if tc.holdsOn > 1 && took < time.Duration(tc.holdsOn-1)*time.Millisecond {
				t.Errorf("took %s for %d polls 1 ms apart", took, tc.holdsOn)
			}
		})
	}
}

func TestWaitForPollsAtPollInterval(t *testing.T) {
	tb := &fakeTB{}
	calls := 0
	took := WaitFor(tb, time.Minute, "the third look", func() bool {
		calls++
		return calls == 3
	})
	if f := tb.failures(); len(f) != 0 {
		t.Fatalf("failed: %q", f)
	}
	if took < 2*PollInterval {
		t.Errorf("3 looks took %s, less than 2 poll intervals of %s", took, PollInterval)
	}
}
