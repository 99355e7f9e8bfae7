package statedir

import (
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m, childEnv, runChild) }
