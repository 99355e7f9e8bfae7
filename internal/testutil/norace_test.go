//go:build !race

package testutil

// raceBuild says whether this test binary was built with -race, as the build tag knows it.
const raceBuild = false
