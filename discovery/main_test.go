package discovery

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func TestMain(m *testing.M) {
	// zeroconf's announcing goroutine outlives MDNS.Close by design (see Close) and ends by
	// itself about 3.5 s after NewMDNS.
	testutil.Main(m, childEnv, runChildAdvertiser, goleak.IgnoreAnyFunction("github.com/grandcat/zeroconf.(*Server).probe"))
}

// testLogger writes everything to t.Log, so it shows up with the failing test only.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

// bufLogger captures Warn and above, the level at which corrupt entries are reported.
func bufLogger() (*slog.Logger, *testutil.SyncBuffer) {
	buf := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn})), buf
}
