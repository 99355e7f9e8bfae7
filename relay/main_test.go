package relay

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// TestMain checks every test in package relay for leaked goroutines. With PAF_BENCH_CHILD
// set, the binary is instead the receiving process of a cross-process benchmark
// (xproc_child_test.go).
//
// memberlist's Shutdown does not wait for a probe in flight, which ends by itself within a
// probe interval (package mesh's TestMain ignores it for the same reason): the many meshes
// of the attack tests made it show here too.
func TestMain(m *testing.M) {
	testutil.Main(m, xprocChildEnv, xprocChildMain,
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNodeByAddr"),
	)
}
