package deptest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/paf-mesh/paf-mesh"

// layers orders the project's packages: a package may import only packages of
// a lower layer. The helpers under internal/ are layer 0 and import only each
// other. A new package must be placed here (the test fails until it is), so
// that where it sits is a decision, not an accident.
var layers = map[string]int{
	"internal/...": 0,
	"discovery":    1,
	"mesh":         2,
	"mesh/...":     2, // mesh's test helpers (meshtest) may import mesh
	"relay/wire":   3,
	"relay/store":  4, // keeps messages in relay/wire's encoding
	"relay":        5,
	"mcpserver":    6,
	"node/control": 7,
	"node":         8,
	"node/demo":    9, // the demo's script: peers of node, played through mcpserver's client
	"node/setup":   9, // install and doctor: the clients' config files, checks over node
	"cmd/...":      10,
	"test/...":     10, // the real-client suite (test/clients): runs the built binary
}

// layerOf returns pkg's layer (pkg relative to the module) and whether it has one.
func layerOf(pkg string) (int, bool) {
	if l, ok := layers[pkg]; ok {
		return l, true
	}
	// The longest "dir/..." pattern that covers pkg.
	best, layer := -1, 0
	for pat, l := range layers {
		dir, ok := strings.CutSuffix(pat, "/...")
		if ok && (pkg == dir || strings.HasPrefix(pkg, dir+"/")) && len(dir) > best {
			best, layer = len(dir), l
		}
	}
	return layer, best >= 0
}

type pkgImports struct {
	path    string
	imports []string // project packages, relative to the module; code and tests
}

// listImports runs `go list` over the module and returns each package's
// imports of other project packages.
func listImports(t *testing.T) []pkgImports {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkgImports
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		p := pkgImports{path: strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")}
		seen := map[string]bool{}
		for _, imp := range fields[1:] {
			rel, ok := strings.CutPrefix(imp, module+"/")
			if !ok || seen[rel] || rel == p.path {
				continue
			}
			seen[rel] = true
			p.imports = append(p.imports, rel)
		}
		sort.Strings(p.imports)
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages; is the module root right?\n%s", len(pkgs), out)
	}
	return pkgs
}

// violations lists the imports of pkgs that break the layering.
func violations(pkgs []pkgImports) []string {
	var bad []string
	for _, p := range pkgs {
		from, ok := layerOf(p.path)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s has no layer: add it to layers in internal/deptest", p.path))
			continue
		}
		for _, imp := range p.imports {
			to, ok := layerOf(imp)
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s imports %s, which has no layer", p.path, imp))
			case from == 0 && to != 0:
				bad = append(bad, fmt.Sprintf("%s (a helper under internal/) imports %s: helpers import only each other", p.path, imp))
			case to > from:
				bad = append(bad, fmt.Sprintf("%s (layer %d) imports %s (layer %d): an arrow up", p.path, from, imp, to))
			case to == from && from != 0 && !sameTree(p.path, imp):
				bad = append(bad, fmt.Sprintf("%s imports %s: sideways, in the same layer", p.path, imp))
			}
		}
	}
	return bad
}

// sameTree reports whether a and b are one package and its own helpers (mesh
// and mesh/meshtest; cmd's binaries share a layer but never import each other).
func sameTree(a, b string) bool {
	return strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

func TestLayering(t *testing.T) {
	pkgs := listImports(t)
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
	for _, p := range pkgs {
		t.Logf("%-22s -> %s", p.path, strings.Join(p.imports, " "))
	}
}

// The check itself: each kind of arrow it must refuse, and what it must allow.
func TestViolations(t *testing.T) {
	cases := map[string]struct {
		pkgs []pkgImports
		want string // a substring of the one violation, "" for none
	}{
		"down is fine":           {[]pkgImports{{"relay", []string{"relay/wire", "relay/store", "mesh", "internal/keys"}}}, ""},
		"up":                     {[]pkgImports{{"mesh", []string{"relay"}}}, "an arrow up"},
		"up from wire to store":  {[]pkgImports{{"relay/wire", []string{"relay/store"}}}, "an arrow up"},
		"discovery up to mesh":   {[]pkgImports{{"discovery", []string{"mesh"}}}, "an arrow up"},
		"helper imports product": {[]pkgImports{{"internal/testutil", []string{"mesh"}}}, "helpers import only each other"},
		"unknown package":        {[]pkgImports{{"newthing", nil}}, "has no layer"},
		"unknown import":         {[]pkgImports{{"node", []string{"newthing"}}}, "which has no layer"},
		"own helper package":     {[]pkgImports{{"mesh/meshtest", []string{"mesh"}}}, ""},
		"cmd uses everything":    {[]pkgImports{{"cmd/paf-peer", []string{"node/demo", "node", "node/control", "mcpserver", "relay", "mesh", "discovery"}}}, ""},
		"node/control up":        {[]pkgImports{{"node/control", []string{"node"}}}, "an arrow up"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := violations(tc.pkgs)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("violations = %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("violations = %q, want one containing %q", got, tc.want)
			}
		})
	}
}
