//go:build unix

package mcpserver

import (
	"io"
	"os"
	"syscall"
)

// pollable returns in, if it is a pipe or a socket, as a file Go's network
// poller waits on, and a function that undoes that. The client's stdin pipe
// read in blocking mode held a thread in read(2) between calls: the runtime
// counts a processor busy while it does, so its monitor thread (sysmon) kept
// waking every 20 µs to 10 ms to take the processor back, a fifth of the CPU
// of a session on the question -> answer path (SPEC section 10). Polled, the
// reading goroutine parks like a network read and an idle session sleeps.
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
	st, err := f.Stat()
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return in, func() {}
	}
	fd := int(f.Fd())
	dup, err := syscall.Dup(fd)
	if err != nil {
		return in, func() {}
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		return in, func() {}
	}
	pf := os.NewFile(uintptr(dup), f.Name()) // non-blocking: registered with the poller
	return pf, func() {
		pf.Close()
		_ = syscall.SetNonblock(fd, false)
	}
}
