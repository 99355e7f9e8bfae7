package control

import (
	"os/exec"
	"strings"
	"testing"
)

// control is below node: it calls into a Handler and imports no peer code,
// so node (and the commands) can import it without a cycle or a sideways
// arrow. go list -deps is the whole import graph, as CI's layering checks read it.
func TestImportsNoNode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "github.com/paf-mesh/paf-mesh/node",
			strings.HasPrefix(pkg, "github.com/paf-mesh/paf-mesh/cmd/"),
			pkg == "github.com/paf-mesh/paf-mesh/mcpserver",
			pkg == "github.com/paf-mesh/paf-mesh/discovery":
			t.Errorf("node/control depends on %s", pkg)
		}
	}
}
