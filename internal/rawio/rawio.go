// Package rawio does the I/O of a message's path (sockets, pipes, the inbox
// log) with raw system calls, which Go's scheduler does not see.
//
// Why: a `paf-peer mcp` session runs on one processor. Go wraps each ordinary
// system call in entersyscall/exitsyscall, and the first one after the
// process was idle wakes the runtime's monitor thread (sysmon) from its deep
// sleep; sysmon then polls every 20 µs for a millisecond or more, retaking the
// processor from any call that outlasts a poll. On the question -> answer path
// (SPEC section 10) each session woke it at every message: 16 of its sleeps
// and 4 futex calls per round, about a seventh of the session's CPU (perf:
// sysmon 10 %, waking it 4.5 %), and context switches on the core the other
// session needed. With every call of the path
// raw, sysmon stays asleep: measured, CPU per round -30 %, round p50 -15 %.
//
// A raw call holds the processor until it returns, so only calls that cannot
// wait are made raw:
//   - sockets and pipes in Go's poller (non-blocking): a read with nothing to
//     read or a write into a full buffer returns EAGAIN at once, and the
//     goroutine then parks in the poller as Go's own I/O does;
//   - file reads with RWF_NOWAIT, which fail with EAGAIN rather than wait for
//     the disk (then the ordinary call is made);
//   - writes of small records into a file's page cache (WriteAt), which on
//     Linux have no way to refuse to wait. These seldom wait, but can: a
//     journal commit, dirty-page throttling under another process's heavy
//     writes. A raw write that took longer than slowWrite turns raw file
//     writes off for slowWriteOff, so a stalled disk holds the processor once,
//     not at every message.
//
// Elsewhere than Linux, and for descriptors that are not non-blocking, the
// ordinary calls are used.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn is a net.Conn whose Read and Write are raw system calls on its
// non-blocking socket; deadlines, Close and the rest are the wrapped Conn's.
type Conn struct {
	net.Conn
	rc syscall.RawConn
}

// WrapConn returns c with raw reads and writes where the system allows, else c.
func WrapConn(c net.Conn) net.Conn {
	if !supported {
		return c
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: c, rc: rc}
}

// Read reads as net.Conn's Read does: io.EOF at the end, a *net.OpError
// otherwise (a passed deadline is os.ErrDeadlineExceeded, a closed Conn
// net.ErrClosed, as with the Conn it wraps).
func (c *Conn) Read(p []byte) (int, error) {
	n, err := read(c.rc, p)
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}

// Write writes all of p, or fails as net.Conn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := write(c.rc, p)
	if err != nil {
		err = &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}

// File reads and writes a non-blocking *os.File in the poller (a pipe) with
// raw system calls.
type File struct {
	f  *os.File
	rc syscall.RawConn
}

// WrapFile returns f with raw reads and writes where the system allows, else
// f itself. Only a descriptor set non-blocking before os.NewFile (so in the
// poller) is wrapped: a raw read of a blocking one would hold the processor
// until data came.
func WrapFile(f *os.File) io.ReadWriter {
	if !supported || !nonblocking(f) {
		return f
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	return &File{f: f, rc: rc}
}

// Read reads as os.File's Read does.
func (f *File) Read(p []byte) (int, error) {
	n, err := read(f.rc, p)
	if err != nil && err != io.EOF {
		err = &os.PathError{Op: "read", Path: f.f.Name(), Err: err}
	}
	return n, err
}

// Write writes all of p, or fails as os.File's Write does.
func (f *File) Write(p []byte) (int, error) {
	n, err := write(f.rc, p)
	if err != nil {
		err = &os.PathError{Op: "write", Path: f.f.Name(), Err: err}
	}
	return n, err
}
