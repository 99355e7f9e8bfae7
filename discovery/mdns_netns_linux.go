package discovery

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// threadNetns names the network namespace of the calling thread.
const threadNetns = "/proc/thread-self/ns/net"

// netnsPin remembers the network namespace NewMDNS ran in. Every browse opens new sockets, on
// the browse loop's goroutine, and those must land in that namespace rather than in whatever
// namespace the loop's thread is in. In an ordinary process all threads share one namespace
// and do is a plain call; only a caller that switched namespaces (a test's netns.Host.Run)
// makes do switch a thread, which needs CAP_SYS_ADMIN, as switching in the first place did.
type netnsPin struct {
	f        *os.File
	dev, ino uint64
}

// pinNetns pins the calling thread's network namespace.
func pinNetns() (*netnsPin, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open(threadNetns)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat %s: %w", threadNetns, err)
	}
	return &netnsPin{f: f, dev: st.Dev, ino: st.Ino}, nil
}

// close releases the pin; a nil pin is fine.
func (p *netnsPin) close() {
	if p != nil {
		_ = p.f.Close()
	}
}

// do calls fn in the pinned namespace (or just calls it, for a nil pin).
func (p *netnsPin) do(fn func() error) error {
	if p == nil {
		return fn()
	}
	runtime.LockOSThread()
	var st unix.Stat_t
	if err := unix.Stat(threadNetns, &st); err == nil && st.Dev == p.dev && st.Ino == p.ino {
		defer runtime.UnlockOSThread()
		return fn()
	}
	runtime.UnlockOSThread()
	return p.doSwitched(fn)
}

// doSwitched runs fn on a fresh goroutine locked to a thread switched into the pinned
// namespace, and switches the thread back. If switching back fails the goroutine exits still
// locked, so the runtime ends the thread instead of reusing it in the wrong namespace.
func (p *netnsPin) doSwitched(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("discovery: open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(p.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("discovery: enter the network namespace mdns was started in: %w", err)
			return
		}
		err = fn()
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			done <- errors.Join(err, fmt.Errorf("discovery: restore network namespace (thread discarded): %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}
