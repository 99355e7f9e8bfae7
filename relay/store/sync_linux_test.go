package store

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelAtLeast reports whether the running kernel's release is at least major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(unix.ByteSliceToString(u.Release[:]), ".", 3)
	if len(parts) < 2 {
		t.Fatalf("kernel release %q", u.Release)
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return ma > major || ma == major && mi >= minor
}

// TestDatasyncerUsesAIO: with one processor, on a kernel with AIO fsync (4.18+), syncs go
// through AIO; with more, fdatasync; a sync that fails (a closed file) reports its error
// and leaves the syncer usable; once closed, the syncer falls back to fdatasync.
func TestDatasyncerUsesAIO(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	if newDatasyncer().async() {
		t.Error("AIO with two processors")
	}
	runtime.GOMAXPROCS(1)
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newDatasyncer()
	for i := range 3 {
		if _, err := f.WriteAt([]byte("record"), int64(i*6)); err != nil {
			t.Fatal(err)
		}
		if err := s.datasync(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if kernelAtLeast(t, 4, 18) && !s.async() {
		t.Fatal("syncs fell back to fdatasync on a kernel with AIO fsync")
	}

	closed, err := os.Create(filepath.Join(t.TempDir(), "closed"))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if err := s.datasync(closed); err == nil {
		t.Error("a sync of a closed file succeeded")
	}
	if err := s.datasync(f); err != nil {
		t.Fatalf("a sync after a failed one: %v", err)
	}

	s.close()
	if s.async() {
		t.Error("a closed syncer still reports AIO")
	}
	if err := s.datasync(f); err != nil {
		t.Fatalf("a sync after close (fdatasync): %v", err)
	}
	s.close() // twice: no effect
}

// TestAIOLayout: the control block and the event are the kernel's sizes (64 and 32 bytes),
// with the fields it reads where it reads them.
func TestAIOLayout(t *testing.T) {
	var cb aioCB
	var ev aioEvent
	if s := unsafe.Sizeof(cb); s != 64 {
		t.Errorf("struct iocb: %d bytes, want 64", s)
	}
	if s := unsafe.Sizeof(ev); s != 32 {
		t.Errorf("struct io_event: %d bytes, want 32", s)
	}
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"aio_lio_opcode", unsafe.Offsetof(cb.opcode), 16},
		{"aio_fildes", unsafe.Offsetof(cb.fildes), 20},
		{"aio_flags", unsafe.Offsetof(cb.flags), 56},
		{"aio_resfd", unsafe.Offsetof(cb.resfd), 60},
		{"res", unsafe.Offsetof(ev.res), 16},
	} {
		if f.got != f.want {
			t.Errorf("%s at byte %d, want %d", f.name, f.got, f.want)
		}
	}
}
