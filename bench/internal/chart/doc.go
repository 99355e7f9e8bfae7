// Package chart draws the benchmark runner's scaling curves as PNG charts with gonum/plot:
// about 700x450 pixels, titled, axes labelled with units, a legend, the SPEC target as a
// dashed horizontal line, a logarithmic y axis when the curve allows one and its values span
// more than a factor of 30.
//
// Guarantees: only the series marked for the chart are drawn, and only their points that
// have data; a curve with no measured (non-baseline) point to draw is not written
// (ErrNoData).
package chart
