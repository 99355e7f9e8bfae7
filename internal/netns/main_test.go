package netns

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitPoll is how often the waits here look: each look dials or runs a
// command in a lab host, so they look less often than testutil.WaitFor does.
const waitPoll = 20 * time.Millisecond
