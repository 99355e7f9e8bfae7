package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks every test in package store for leaked goroutines: an inbox runs a writer
// goroutine (and, when busy, a copy of ids beside it) that Close must stop.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
