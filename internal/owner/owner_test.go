package owner

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// nobody is a uid other than ours, for files and processes of "another user".
const nobody = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make files and processes of another user")
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	if err := os.WriteFile(mine, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(mine)
	if err := Check(mine, fi); err != nil {
		t.Fatalf("our own file: %v", err)
	}
	requireRoot(t)
	theirs := filepath.Join(dir, "theirs")
	if err := os.WriteFile(theirs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(theirs)
	if err := Check(theirs, fi); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("another user's file: %v, want ErrNotOwned", err)
	}
}

func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if fixed, err := PrivateDir(private); err != nil || fixed {
		t.Fatalf("a private dir of ours: fixed %v, %v", fixed, err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if fixed, err := PrivateDir(open); err != nil || !fixed {
		t.Fatalf("a world-writable dir of ours: fixed %v, %v; want it made private", fixed, err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode after fixing: %v", fi.Mode().Perm())
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateDir(file); err == nil {
		t.Fatal("a file accepted as a directory")
	}
	requireRoot(t)
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateDir(theirs); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("another user's dir: %v, want ErrNotOwned", err)
	}
	if fi, _ := os.Stat(theirs); fi.Mode().Perm() != 0o777 {
		t.Fatal("another user's dir was changed")
	}
	// A link of another user's to a dir of ours is refused too: they chose where it points.
	link := filepath.Join(base, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateDir(link); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("another user's symlink: %v, want ErrNotOwned", err)
	}
	// A link of ours to another user's dir: refused.
	mylink := filepath.Join(base, "mylink")
	if err := os.Symlink(theirs, mylink); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateDir(mylink); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("our symlink to another user's dir: %v, want ErrNotOwned", err)
	}
}

func TestSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Socket(path); err != nil {
		t.Fatalf("our socket: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	_ = os.WriteFile(plain, nil, 0o600)
	if err := Socket(plain); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("a regular file as a socket: %v", err)
	}
	link := filepath.Join(dir, "link.sock")
	_ = os.Symlink(path, link)
	if err := Socket(link); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("a symlink to a socket: %v, want a refusal (never followed)", err)
	}
	requireRoot(t)
	if err := os.Lchown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := Socket(path); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("another user's socket: %v, want ErrNotOwned", err)
	}
}

// childEnv makes the test binary a client that connects to the socket it names.
const childEnv = "PAF_OWNER_TEST_CONNECT"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Exit(3)
		}
		_, _ = io.Copy(io.Discard, c) // until the test closes it
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCheckPeer(t *testing.T) {
	// Not t.TempDir(): its parent is private, and the other user's process must reach the
	// socket and the binary.
	dir, err := os.MkdirTemp("", "paf-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func(uid int) net.Conn {
		t.Helper()
		cmd := exec.Command(exe(t, dir))
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		if uid >= 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if err := CheckPeer(accept(-1)); err != nil {
		t.Fatalf("a process of ours: %v", err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tc, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := CheckPeer(tc); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("a TCP connection: %v, want a refusal", err)
	}
	requireRoot(t)
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	err = CheckPeer(accept(nobody))
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("a process of uid %d: %v, want ErrNotOwned", nobody, err)
	}
	t.Log(err)
}

// exe copies the test binary where another user can run it.
func exe(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "child-"+strconv.Itoa(os.Getpid()))
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
