package statedir

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(childEnv); root != "" {
		os.Exit(runChild(root))
	}
	goleak.VerifyTestMain(m)
}
