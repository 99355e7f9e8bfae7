package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns both ends of a loopback TCP connection, wrapped.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		acc <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a == nil {
		t.FailNow()
	}
	wa, wd := WrapConn(a), WrapConn(d)
	if _, ok := wa.(*Conn); !ok {
		t.Fatalf("a TCP conn is not wrapped: %T", wa)
	}
	t.Cleanup(func() { wa.Close(); wd.Close() })
	return wa, wd
}

// writeThenClose writes b to w in a goroutine, closes c, and sends the write's error.
func writeThenClose(w io.Writer, c io.Closer, b []byte) <-chan error {
	werr := make(chan error, 1)
	go func() {
		_, err := w.Write(b)
		c.Close()
		werr <- err
	}()
	return werr
}

// More than the socket buffers hold goes through in full: the writer waits in
// the poller while they are full (EAGAIN), the reader while they are empty;
// the reader then sees io.EOF itself, as net.Conn returns it.
func TestConnStream(t *testing.T) {
	a, d := pair(t)
	want := make([]byte, 8<<20)
	rand.Read(want)
	werr := writeThenClose(d, d, want)
	got, err := io.ReadAll(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
	}
	n, err := a.Read(make([]byte, 10))
	if n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d %v, want io.EOF itself", n, err)
	}
}

// Deadlines and Close behave as net.Conn's: a passed read deadline is a
// timeout (os.ErrDeadlineExceeded, net.Error.Timeout), a read blocked in the
// poller ends when the conn is closed, and a closed conn says net.ErrClosed.
func TestConnDeadlineAndClose(t *testing.T) {
	a, d := pair(t)
	_ = a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	_ = a.SetReadDeadline(time.Time{})
	// A write deadline in the past fails a write at once.
	_ = d.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := d.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
	rerr := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		rerr <- err
	}()
	// The reader is parked (nothing to read); closing its conn wakes it.
	a.Close()
	select {
	case err := <-rerr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a conn closed under it: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read blocked in the poller did not end when its conn was closed")
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed conn: %v", err)
	}
}

// A conn without a descriptor (net.Pipe) is left as it is.
func TestWrapConnWithoutDescriptor(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if WrapConn(c1) != c1 {
		t.Fatal("net.Pipe's conn was wrapped")
	}
}

// A non-blocking pipe (os.Pipe's are) is read and written raw, more than the
// pipe holds included; a blocking one is left as it is, since a raw read of
// it would hold the processor until data came.
func TestFilePipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rr, ww := WrapFile(r), WrapFile(w)
	if _, ok := rr.(*File); !ok {
		t.Fatalf("a non-blocking pipe is not wrapped: %T", rr)
	}
	want := make([]byte, 1<<20) // 16 times a pipe's default buffer
	rand.Read(want)
	werr := writeThenClose(ww, w, want)
	got, err := io.ReadAll(rr)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(want))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}

	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	br := os.NewFile(uintptr(fds[0]), "blocking")
	defer br.Close()
	defer unix.Close(fds[1])
	if got := WrapFile(br); got != io.ReadWriter(br) {
		t.Fatalf("a blocking pipe was wrapped: %T", got)
	}
}

// ReadAt and WriteAt do what os.File's do: records written at offsets read
// back, a read past the end says io.EOF, a record larger than maxRawWrite is
// written too (the ordinary way).
func TestFileAt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	small, large := bytes.Repeat([]byte("a"), 1500), bytes.Repeat([]byte("b"), maxRawWrite+1)
	for _, w := range []struct {
		b   []byte
		off int64
	}{{small, 0}, {large, 4096}, {small, 100}} {
		if n, err := WriteAt(f, w.b, w.off); err != nil || n != len(w.b) {
			t.Fatalf("WriteAt %d bytes at %d: %d %v", len(w.b), w.off, n, err)
		}
	}
	want := make([]byte, 4096+len(large))
	copy(want, small)
	copy(want[100:], small)
	copy(want[4096:], large)
	got := make([]byte, len(want))
	if n, err := ReadAt(f, got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt: %d %v, equal %v", n, err, bytes.Equal(got, want))
	}
	if n, err := ReadAt(f, make([]byte, 10), int64(len(want))-4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt across the end: %d %v, want 4 io.EOF", n, err)
	}
	// A read-only file: the raw write fails as the ordinary one does.
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := WriteAt(ro, small, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("WriteAt on a read-only file: %v, want EBADF", err)
	}
}

// A raw write that took longer than slowWrite (it waited for the disk) turns
// raw writes off for slowWriteOff; the writes go on, the ordinary way.
func TestSlowWriteTurnsRawOff(t *testing.T) {
	defer func(d time.Duration) { slowWrite = d; rawWritesFrom.Store(0) }(slowWrite)
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !rawWritesOn() {
		t.Fatal("raw writes off at the start")
	}
	slowWrite = -1 // every write is slow
	if _, err := WriteAt(f, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if rawWritesOn() {
		t.Fatal("a slow raw write left raw writes on")
	}
	if from := time.Unix(0, rawWritesFrom.Load()); time.Until(from) < slowWriteOff-time.Minute/2 {
		t.Fatalf("raw writes off only until %v", from)
	}
	if _, err := WriteAt(f, []byte("y"), 1); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := ReadAt(f, b, 0); err != nil || string(b) != "xy" {
		t.Fatalf("read back %q %v", b, err)
	}
}
