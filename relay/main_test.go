package relay

import (
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// TestMain checks every test in package relay for leaked goroutines. With PAF_BENCH_CHILD
// set, the binary is instead the receiving process of a cross-process benchmark
// (xproc_child_test.go).
func TestMain(m *testing.M) { testutil.Main(m, xprocChildEnv, xprocChildMain) }
