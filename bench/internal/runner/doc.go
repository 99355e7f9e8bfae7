// Package runner is `make bench`: it builds the product's test binaries (go test -c, never
// -race), runs the benchmarks of the contract one process at a time (never two at once: they
// would disturb each other on two cores), runs the NATS baseline in the same run, and writes
// the report: a table on stdout, JSON, markdown and PNG charts.
//
// Guarantees: Run returns nil when the run completed, whatever the verdicts (benchmarks never
// pass or fail on timing); it returns an error wrapping ErrBuild or ErrBenchmark when the
// build or a benchmark process failed, after printing that output and still writing the
// report of everything else. A benchmark that printed nothing is a row marked "missing".
package runner
