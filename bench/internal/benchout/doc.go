// Package benchout parses the output of a Go test binary run with -test.bench: the standard
// result lines ("BenchmarkName/sub-2   1   41.2 p50-deliver-us   154 p99-deliver-us"), the
// "--- SKIP:" and "--- FAIL:" blocks with the log lines that give their reason, in both the
// plain and the -test.v (chatty) layout.
//
// Guarantees: Parse never fails on malformed input; a line it does not recognise is ignored.
// Benchmark names are returned as the benchmark declared them: the "-N" GOMAXPROCS suffix that
// the testing package appends is stripped only when it is the one the caller says the process
// ran with (Options.Procs), so that names ending in a number of their own ("peers-100",
// "senders-1") survive.
package benchout
