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
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.Backend = fm.peer()
	s := New(cfg)
	// A blocking pipe, as a client's stdin is (os.Pipe's are non-blocking).
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	inR, inW := os.NewFile(uintptr(fds[0]), "in"), os.NewFile(uintptr(fds[1]), "in-w")
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
