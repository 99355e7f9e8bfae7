//go:build unix

package mcpserver

import (
	"io"
	"os"
	"syscall"

	"github.com/paf-mesh/paf-mesh/internal/rawio"
)

// pollable returns in, if it is a pipe or a socket, as a file Go's network
// poller waits on, read with raw system calls (rawio), and a function that
// undoes that. The client's stdin pipe read in blocking mode held a thread in
// read(2) between calls: the runtime counts a processor busy while it does,
// so its monitor thread (sysmon) kept waking every 20 µs to 10 ms to take the
// processor back, a fifth of the CPU of a session on the question -> answer
// path (SPEC section 10). Polled, the reading goroutine parks like a network
// read and an idle session sleeps; read raw, a read does not wake sysmon.
//
// The file is a dup of in's descriptor set non-blocking. O_NONBLOCK belongs
// to the open file, which in shares only with whoever else holds that end of
// the pipe (normally no one: the client keeps the other end); undo sets it
// back. Terminals and regular files are left as they are. Closing the dup
// (undo) also ends a read blocked on it.
func pollable(in io.Reader) (io.Reader, func()) {
	f, ok := in.(*os.File)
	if !ok {
		return in, func() {}
	}
	if rw, undo, ok := pollableFile(f); ok {
		return rw, undo
	}
	return in, func() {}
}

// pollableOut is pollable for the client's stdout pipe, written with raw
// system calls: the result of every tool call and every push goes through
// it, and an ordinary write(2) woke sysmon as a read did. A full pipe (a
// client that does not read) parks the writing goroutine in the poller, as a
// blocking write held a thread before. Left as it is when it is the same
// pipe as stderr (2>&1), whose blocking writes (the log) must stay blocking.
func pollableOut(out io.Writer) (io.Writer, func()) {
	f, ok := out.(*os.File)
	if !ok || sameFile(f, os.Stderr) {
		return out, func() {}
	}
	if rw, undo, ok := pollableFile(f); ok {
		return rw, undo
	}
	return out, func() {}
}

func sameFile(a, b *os.File) bool {
	sa, err := a.Stat()
	if err != nil {
		return true // unknown: leave it alone
	}
	sb, err := b.Stat()
	return err == nil && os.SameFile(sa, sb)
}

// pollableFile makes a non-blocking dup of f, a pipe or socket, for the poller.
func pollableFile(f *os.File) (io.ReadWriter, func(), bool) {
	st, err := f.Stat()
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return nil, nil, false
	}
	fd := int(f.Fd())
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, nil, false
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		return nil, nil, false
	}
	pf := os.NewFile(uintptr(dup), f.Name()) // non-blocking: registered with the poller
	return rawio.WrapFile(pf), func() {
		pf.Close()
		_ = syscall.SetNonblock(fd, false)
	}, true
}
