// Package report turns parsed benchmark results into the rows of SPEC section 10 and the
// scaling curves, and writes them as a text table, markdown and JSON; it also compares two
// JSON reports.
//
// The contract between the runner and the product's benchmarks (which benchmark, which
// metric, which baseline; tabulated in bench/README.md) lives in spec.go and nowhere else. A row's verdict is "met" or "MISSED" when its measured metrics
// exist, "skipped" when the benchmark skipped itself (with its reason), "missing" when it
// produced no output (not there yet, failed, or not run). Benchmarks never pass or fail on
// timing: a missed target is a verdict, not an error.
package report
