package relay

import (
	"os/exec"
	"strings"
	"testing"
)

// The three relay packages depend downwards only: wire on nothing of the project above mesh,
// store on wire (and mesh), relay on both. An import that runs up or sideways fails here.
func TestPackageDependencies(t *testing.T) {
	const mod = "github.com/paf-mesh/paf-mesh/"
	allowed := map[string][]string{
		"relay/wire":  {"mesh", "internal/statedir", "internal/connlimit", "internal/keys", "internal/rawio", "relay/wire"},
		"relay/store": {"mesh", "internal/statedir", "internal/connlimit", "internal/keys", "internal/rawio", "relay/wire", "relay/store"},
	}
	for pkg, ok := range allowed {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				rel, ours := strings.CutPrefix(dep, mod)
				if !ours {
					continue
				}
				allowedDep := false
				for _, a := range ok {
					allowedDep = allowedDep || rel == a
				}
				if !allowedDep {
					t.Errorf("%s depends on %s; it may depend on %v only", pkg, rel, ok)
				}
			}
		})
	}
}
