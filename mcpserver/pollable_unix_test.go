//go:build unix

package mcpserver

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStdioLoopOSPipe serves a real pipe, as a client's stdin is: it is
// read through the poller, cancelling the context ends the session and its
// reading goroutine (goleak checks), and the pipe is blocking again after.
func TestStdioLoopOSPipe(t *testing.T) {
	s := pipeServer(t)
	inR, inW, fds := blockingPipe(t, "in")
	defer inR.Close()
	defer inW.Close()
	outR, outW := io.Pipe()
	lines := bufio.NewScanner(outR)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeStdio(ctx, inR, outW)
		outW.Close()
	}()
	if _, err := io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"ping"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || !strings.Contains(lines.Text(), `"id":1`) {
		t.Fatalf("ping over a pipe: %q %v", lines.Text(), lines.Err())
	}
	if nb, err := isNonblock(fds[0]); err != nil || !nb {
		t.Fatalf("the pipe is not read through the poller (non-blocking): %v %v", nb, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return when its context ended")
	}
	nb, err := isNonblock(fds[0])
	if err != nil || nb {
		t.Fatalf("the pipe is left non-blocking: %v %v", nb, err)
	}
}

func isNonblock(fd int) (bool, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return fl&unix.O_NONBLOCK != 0, err
}

// The client's stdout, a blocking pipe, is written through the poller with
// raw writes while the session runs (non-blocking), a result larger than the
// pipe holds included, and is blocking again after. When it is the same pipe
// as stderr it is left alone: the log's writes must stay blocking.
func TestStdioOutPipe(t *testing.T) {
	for _, asStderr := range []bool{false, true} {
		s := pipeServer(t)
		outR, outW, fds := blockingPipe(t, "out")
		inR, inW := io.Pipe()
		if asStderr {
			saved := os.Stderr
			os.Stderr = outW
			defer func() { os.Stderr = saved }()
		}
		done := make(chan error, 1)
		go func() { done <- s.ServeStdio(context.Background(), inR, outW) }()
		lines := bufio.NewReaderSize(outR, 1<<20)
		// A ping with an id over 100 KB long: its response does not fit the pipe.
		id := `"` + strings.Repeat("i", 100<<10) + `"`
		if _, err := io.WriteString(inW, `{"jsonrpc":"2.0","id":`+id+`,"method":"ping"}`+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := lines.ReadString('\n')
		if err != nil || !strings.Contains(line, id) {
			t.Fatalf("stderr %v: the ping's response (%d bytes): %v", asStderr, len(line), err)
		}
		nb, err := isNonblock(fds[1])
		if err != nil || nb == asStderr {
			t.Fatalf("stderr %v: stdout non-blocking while serving: %v (%v)", asStderr, nb, err)
		}
		inW.Close()
		if err := <-done; err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
		if nb, err := isNonblock(fds[1]); err != nil || nb {
			t.Fatalf("stdout left non-blocking: %v %v", nb, err)
		}
		outR.Close()
		outW.Close()
	}
}

// pipeServer is a Server on a fake mesh, for the stdio tests over OS pipes.
func pipeServer(t *testing.T) *Server {
	cfg := testConfig(t)
	cfg.Backend = newFakeMesh().peer()
	return New(cfg)
}

// blockingPipe is a blocking pipe, as a client's stdin and stdout are
// (os.Pipe's are non-blocking), and its descriptors.
func blockingPipe(t *testing.T, name string) (r, w *os.File, fds [2]int) {
	t.Helper()
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name+"-w"), fds
}
