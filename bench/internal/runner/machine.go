package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// productModule is the module line of the product's go.mod, by which the repo root is known.
const productModule = "module github.com/paf-mesh/paf-mesh"

// ErrNoRepo is returned when the product's repo root cannot be found.
var ErrNoRepo = errors.New("runner: product repo root not found")

// FindRepo returns the product repo root: git's top level of dir if its go.mod is the
// product's, else the nearest directory at or above dir whose go.mod is.
func FindRepo(dir string) (string, error) {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err == nil {
		if root := strings.TrimSpace(string(out)); isProductRoot(root) {
			return root, nil
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("runner: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if isProductRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w from %s (no go.mod with %q above it)", ErrNoRepo, abs, productModule)
		}
	}
}

func isProductRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(line) == productModule {
			return true
		}
	}
	return false
}

// commit is the short commit of root, with "-dirty" when the work tree differs from it
// (untracked files included); "unknown" without git.
func commit(ctx context.Context, root string) string {
	out, err := gitCmd(ctx, root, "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(out)
	if st, err := gitCmd(ctx, root, "status", "--porcelain"); err == nil && strings.TrimSpace(st) != "" {
		c += "-dirty"
	}
	return c
}

// gitCmd runs a read-only git command in root. GIT_OPTIONAL_LOCKS=0 keeps `git status` from
// refreshing the index: the runner never writes to the repository's git state.
func gitCmd(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
	out, err := cmd.Output()
	return string(out), err
}

// machine describes this machine and the Go toolchain that builds the product.
func machine(ctx context.Context, goCmd string) report.Machine {
	m := report.Machine{NProc: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: "unknown", Kernel: "unknown", GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		m.GoVersion = string(bytes.TrimSpace(out))
	}
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAvg reads the 1, 5 and 15 minute load averages; zeros where /proc/loadavg is not.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	return parseLoadAvg(string(b))
}

func parseLoadAvg(s string) [3]float64 {
	var l [3]float64
	f := strings.Fields(s)
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
