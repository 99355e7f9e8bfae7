package store

import (
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/rawio"
)

// fdatasync makes f's data durable without its metadata (times), which the
// log does not need: one journal write fewer than fsync on ext4.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// datasyncer makes an inbox log's data durable as fdatasync does, but hands
// the sync to the kernel with Linux AIO (io_submit of IOCB_CMD_FDSYNC, Linux
// 4.18 and later) and waits for its completion on an eventfd in Go's network
// poller. The writer waiting for the disk then holds no processor in a system
// call: with one processor (paf-peer mcp) the goroutine that checks the
// message's signature runs during the sync instead of after it, and the
// runtime does not take the processor back from the sync and hand it to a
// thread of its own (measured: question -> answer CPU per round 13 % lower).
//
// The durability is the same: the kernel runs the file's own fsync
// operation, with datasync set. Where AIO cannot be used (an older kernel, a
// seccomp filter, the system's aio-max-nr reached) it falls back to
// fdatasync for good.
//
// Only with one processor: the kernel's worker and the eventfd's wake-up cost
// two more context switches than a plain fdatasync, so with a processor to
// spare a lone message's sync is slower this way (measured, relay one-way
// latency with two processors: p50 +40 µs); fdatasync then.
type datasyncer struct {
	mu     sync.Mutex  // one sync at a time
	ctx    uintptr     // aio_context_t, once set up
	done   *os.File    // eventfd, non-blocking: read through the poller
	wait   io.Reader   // done, read with raw system calls (rawio)
	efd    int         // done's descriptor (done.Fd() would make it blocking if os had set it non-blocking)
	failed atomic.Bool // AIO is not to be used: fdatasync
}

// The kernel's struct iocb and struct io_event (linux/aio_abi.h), little
// endian (aio_key before aio_rw_flags); the blank fields are the ones an
// fdatasync leaves zero: aio_data, aio_key, aio_rw_flags, aio_reqprio,
// aio_buf, aio_nbytes, aio_offset, aio_reserved2.
type aioCB struct {
	_      uint64
	_      uint32
	_      uint32
	opcode uint16
	_      int16
	fildes uint32
	_      uint64
	_      uint64
	_      int64
	_      uint64
	flags  uint32
	resfd  uint32
}

type aioEvent struct {
	_, _ uint64 // data, obj
	res  int64
	_    int64 // res2
}

const (
	iocbCmdFdsync = 3 // IOCB_CMD_FDSYNC
	iocbFlagResfd = 1 // IOCB_FLAG_RESFD: signal aio_resfd (an eventfd) on completion
)

func newDatasyncer() *datasyncer { return &datasyncer{} }

// async reports whether syncs go through AIO (so far as is known: before the
// first sync it is assumed).
func (s *datasyncer) async() bool { return runtime.GOMAXPROCS(0) == 1 && !s.failed.Load() }

// setup (under mu) creates the AIO context and the eventfd; false if AIO
// cannot be used.
func (s *datasyncer) setup() bool {
	if s.failed.Load() {
		return false
	}
	if s.done != nil {
		return true
	}
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		s.failed.Store(true)
		return false
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		s.failed.Store(true)
		return false
	}
	s.ctx, s.efd, s.done = ctx, efd, os.NewFile(uintptr(efd), "aio-eventfd")
	s.wait = rawio.WrapFile(s.done)
	return true
}

// datasync makes f's data durable; see datasyncer.
func (s *datasyncer) datasync(f *os.File) error {
	if runtime.GOMAXPROCS(0) > 1 {
		return fdatasync(f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.setup() {
		return fdatasync(f)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr unix.Errno
	if err := rc.Control(func(fd uintptr) {
		// The kernel copies the control block: it need not outlive the call.
		// Raw (rawio): submitting an fdsync queues it and returns, and an
		// ordinary system call would wake the runtime's sysmon.
		cb := &aioCB{opcode: iocbCmdFdsync, fildes: uint32(fd), flags: iocbFlagResfd, resfd: uint32(s.efd)}
		for {
			_, _, serr = unix.RawSyscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cb)))
			if serr == 0 {
				// The kernel runs the sync in a worker thread queued on this
				// CPU, which the scheduler lets wait while this thread goes on
				// (it checks the message's signature next): perf sched showed
				// the worker waiting up to 77 µs for its CPU. Yield it the CPU,
				// so the disk starts now and the check runs while it writes
				// (interleaved A/B: round p50 -1 to -5 %, 172 of 220 blocks).
				unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != 0 {
		// EINVAL: a kernel without AIO fsync (before 4.18), or a file
		// system without it; any other error, fdatasync says better.
		if serr == unix.EINVAL || serr == unix.ENOSYS || serr == unix.EPERM {
			s.failed.Store(true)
		}
		return fdatasync(f)
	}
	// Wait in the poller: this goroutine parks, its processor runs others.
	var n [8]byte
	if _, err := s.wait.Read(n[:]); err != nil {
		// Not expected. The sync may still be running: never use this
		// context again, and sync the plain way.
		s.failed.Store(true)
		return fdatasync(f)
	}
	var ev aioEvent
	for {
		// Raw: the eventfd said the event is there, so this does not wait.
		got, _, e := unix.RawSyscall6(unix.SYS_IO_GETEVENTS, s.ctx, 1, 1, uintptr(unsafe.Pointer(&ev)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			s.failed.Store(true)
			return fdatasync(f)
		}
		if got == 1 {
			break
		}
	}
	if ev.res < 0 {
		return unix.Errno(-ev.res)
	}
	return nil
}

// close releases the AIO context and the eventfd.
func (s *datasyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0)
		s.done.Close()
		s.done = nil
	}
	s.failed.Store(true)
}
