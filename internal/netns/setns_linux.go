package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// runIn calls fn on a fresh goroutine locked to its OS thread, with the thread switched into
// the named namespace, and switches it back afterwards. If switching back fails the goroutine
// exits still locked, and the runtime then ends the thread instead of reusing it, so no other
// goroutine ever runs in the wrong namespace. The Go runtime starts new threads from a clean
// template thread, never from a locked one, so the switch does not leak into other threads.
func runIn(name string, fn func() error) error {
	target, err := os.Open(filepath.Join(runDir, name))
	if err != nil {
		return fmt.Errorf("open namespace: %w", err)
	}
	defer target.Close()

	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var res result
		defer func() { done <- res }()

		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("setns: %w", err)
			return
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					res.panicked, res.panicVal = true, p
				}
			}()
			res.err = fn()
		}()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			res.err = errors.Join(res.err, fmt.Errorf("restore namespace (thread discarded): %w", err))
			return
		}
		runtime.UnlockOSThread()
	}()
	res := <-done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}
