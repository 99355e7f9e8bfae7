package testutil

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// childEnv makes this test binary the helper process of the StartSelf tests; its value says
// what the helper does (see runChild).
const childEnv = "PAF_TESTUTIL_TEST_CHILD"

func TestMain(m *testing.M) { Main(m, childEnv, runChild) }

// runChild is the helper process. "line" says a word on stderr and hello on stdout, then lives
// until its stdin closes (and exits 0) or it is killed; "silent" exits 3 without a word.
func runChild(mode string) int {
	switch mode {
	case "line":
		// stderr first: written before the line, it has been by the time the test kills us.
		fmt.Fprintln(os.Stderr, "a word on stderr")
		fmt.Println("  hello from the child  ")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "silent":
		return 3
	}
	fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
	return 2
}

// fakeTB records what a helper does to its test. Unlike a real test's, its Fatal and Fatalf
// return, so a test can look at what the helper did after it failed. Methods it does not
// override are the nil embedded TB's: calling one panics, which fails the test that did.
type fakeTB struct {
	testing.TB

	mu       sync.Mutex
	logs     []string
	fatals   []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprint(args...))
}

func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fatals = append(f.fatals, fmt.Sprint(args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// end runs the cleanups, last registered first, as testing does when a test ends.
func (f *fakeTB) end() {
	f.mu.Lock()
	fns := slices.Clone(f.cleanups)
	f.cleanups = nil
	f.mu.Unlock()
	for _, fn := range slices.Backward(fns) {
		fn()
	}
}

func (f *fakeTB) logged() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logs)
}

func (f *fakeTB) failures() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fatals)
}
