// Package testutil holds the test helpers that several packages of paf-mesh would otherwise
// each write again: polling for an outcome with a deadline ([WaitFor]), slog loggers that write
// to the test's log ([Logger], [QuietLogger]), a buffer a process or logger may write while the
// test reads it ([SyncBuffer]), re-running the test binary as a helper process ([StartSelf],
// and [Main] for its TestMain), one-line checks ([Must], [DirNames]), and the small pieces
// benchmarks share (nearest-rank [Percentile], [Millis], the quick mode of [BenchQuick] and
// [BenchCount], [RaceEnabled]).
//
// Only logic that is the same in several packages belongs here; a helper that knows about one
// package's types stays in that package's tests. The package imports nothing of paf-mesh's own
// (only the standard library and goleak), so that the tests of every package can use it
// without an import cycle.
//
// Helpers that can fail a test take a [testing.TB], mark themselves with Helper so that a
// failure points at the caller, and fail with Fatal or Fatalf, so they must be called from the
// test's own goroutine. Nothing here starts a goroutine, except exec's copying of a helper
// process's stderr, which ends when the process is reaped.
package testutil
