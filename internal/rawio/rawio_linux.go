package rawio

import (
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const supported = true

// is64 says whether a file offset fits one system-call argument: pread64,
// pwrite64 and preadv2 take it in two on 32-bit systems, which the raw calls
// below do not do (ReadAt and WriteAt then make the ordinary call).
const is64 = unsafe.Sizeof(uintptr(0)) == 8

// nonblocking reports whether f's descriptor is non-blocking.
func nonblocking(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		return false
	}
	return flags&unix.O_NONBLOCK != 0
}

// read is one raw read(2); while there is nothing to read it waits in the
// poller (rc.Read, which also keeps deadlines).
func read(rc syscall.RawConn, p []byte) (n int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	var serr syscall.Errno
	cerr := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait in the poller, then again
			default:
				serr = e
				return true
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case serr != 0:
		return 0, serr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// write writes all of p with raw write(2) calls, waiting in the poller while
// the descriptor's buffer is full.
func write(rc syscall.RawConn, p []byte) (n int, err error) {
	var serr syscall.Errno
	cerr := rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				serr = e
				return true
			}
		}
		return true
	})
	switch {
	case cerr != nil:
		return n, cerr
	case serr != 0:
		return n, serr
	}
	return n, nil
}

// ReadAt reads len(p) bytes of the regular file f at off, as f.ReadAt does.
// From the page cache it is one raw preadv2 with RWF_NOWAIT; whatever would
// wait for the disk (or a kernel without RWF_NOWAIT) takes the ordinary call.
func ReadAt(f *os.File, p []byte, off int64) (int, error) {
	if len(p) == 0 || off < 0 || !is64 {
		return f.ReadAt(p, off)
	}
	var n int
	var serr syscall.Errno
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			iov := unix.Iovec{Base: &p[0]}
			iov.SetLen(len(p))
			for {
				r, _, e := syscall.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
				if e != syscall.EINTR {
					n, serr = int(r), e
					return
				}
			}
		})
	}
	if err != nil || serr != 0 || n != len(p) {
		return f.ReadAt(p, off)
	}
	return n, nil
}

// Raw file writes: a record at most maxRawWrite bytes long is written with
// one raw pwrite(2). One that took longer than slowWrite (it waited for the
// disk) turns raw writes off for slowWriteOff.
const (
	maxRawWrite  = 64 << 10
	slowWriteOff = time.Minute
)

var slowWrite = 2 * time.Millisecond // a variable for the tests

// rawWritesFrom is when raw file writes are allowed again (Unix ns; 0: now).
var rawWritesFrom atomic.Int64

// WriteAt writes all of p to the regular file f at off, as f.WriteAt does.
// See the package comment for when it is a raw call and what that risks.
func WriteAt(f *os.File, p []byte, off int64) (int, error) {
	if len(p) == 0 || len(p) > maxRawWrite || off < 0 || !is64 || !rawWritesOn() {
		return f.WriteAt(p, off)
	}
	var n int
	var serr syscall.Errno
	var took time.Duration
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			start := time.Now()
			for {
				r, _, e := syscall.RawSyscall6(syscall.SYS_PWRITE64, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(off), 0, 0)
				if e != syscall.EINTR {
					n, serr = int(r), e
					break
				}
			}
			took = time.Since(start)
		})
	}
	if took > slowWrite {
		rawWritesFrom.Store(time.Now().Add(slowWriteOff).UnixNano())
	}
	switch {
	case err != nil || serr == syscall.EAGAIN || serr == syscall.EINTR:
		return f.WriteAt(p, off)
	case serr != 0:
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: serr}
	case n != len(p):
		// Short (a full disk, a signal): the ordinary call writes the rest
		// or reports why not.
		m, err := f.WriteAt(p[n:], off+int64(n))
		return n + m, err
	}
	return n, nil
}

func rawWritesOn() bool {
	from := rawWritesFrom.Load()
	return from == 0 || time.Now().UnixNano() >= from
}
