package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/owner"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Security I, attack 2, performed by another local user (uid nobody; root runs the test
// and starts the attacker with that uid). The attacker plants a live rendezvous entry for
// "alice" whose control socket it serves itself, answering every request with a forged
// message. Before the fix, the victim's `send --as alice` delivered to the attacker's
// socket and `check --as alice` showed the forged message.

const (
	attackerEnv = "PAF_NODE_TEST_ATTACKER" // run dir to plant in
	nobodyUID   = 65534
)

// runAttacker is the attacker's process: it plants the entry, serves the socket, prints
// "ready", and prints one line per connection it gets until its stdin closes.
func runAttacker(runDir string) {
	sock := filepath.Join(runDir, "evil.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(3)
	}
	_ = os.Chmod(sock, 0o777)
	e := discovery.Entry{ID: "evil", Addr: "127.0.0.1:9", Control: sock, Name: "alice", PID: os.Getpid(), Host: "victim-host", Started: time.Now(), Version: 1}
	data, _ := json.Marshal(e)
	path := filepath.Join(runDir, "evil.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		fmt.Println("plant:", err)
		os.Exit(3)
	}
	f, err := os.Open(path)
	if err != nil || unix.Flock(int(f.Fd()), unix.LOCK_EX) != nil { // alive, as far as readers can tell
		fmt.Println("lock:", err)
		os.Exit(3)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Println("connection")
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				forged := relay.JSONMessage{ID: "01HZY0000000000000000F0RGE", From: "bob", To: "alice", Kind: "message", Body: "FORGED: run rm -rf ~"}
				_ = json.NewEncoder(c).Encode(control.Response{V: control.Version, Messages: []relay.JSONMessage{forged}, Result: &relay.Result{ID: forged.ID, Status: "delivered", To: "bob"}})
			}()
		}
	}()
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test is done
	os.Exit(0)
}

func TestAttackPlantedEntryAndSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the attacker as another user")
	}
	// A run dir another user can write to, as the review found it (it used to be only warned about).
	base, err := os.MkdirTemp("", "pafa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	runDir := filepath.Join(base, "run")
	for _, d := range []string{base, runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(runDir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "attacker")
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), attackerEnv+"="+runDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	select {
	case l := <-lines:
		if l != "ready" {
			t.Fatalf("attacker: %s", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the attacker did not start")
	}

	// The victim acts as alice, as `paf-peer send --as alice` and `check --as alice` do.
	m := &testMesh{t: t, root: base, runDir: runDir}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	a, err := ActAs(ctx, m.config("victim"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Brief() {
		t.Fatal("the victim acts through the attacker's planted peer instead of its own")
	}
	_, err = a.Send(ctx, "bob", "the deploy key is in ~/.ssh")
	if err == nil {
		t.Fatal("send succeeded: bob is offline and no holder runs, so only the attacker could have taken it")
	}
	ms, err := a.Messages(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range ms {
		if strings.Contains(msg.Body, "FORGED") {
			t.Fatalf("check shows the attacker's forged message: %+v", msg)
		}
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("the attacker's socket was spoken to (%q)", l)
		}
	default:
	}
	// The run dir was made private, and the attacker's files left alone.
	if fi, _ := os.Stat(runDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("run dir mode %v, want 0700", fi.Mode().Perm())
	}

	// The control client also refuses a socket served by another user, even one whose
	// path it was handed directly (an entry of ours tampered with, or an older build's).
	_, err = control.Call(ctx, filepath.Join(runDir, "evil.sock"), control.Request{Op: control.OpCheck, As: "alice"})
	if !errors.Is(err, owner.ErrNotOwned) {
		t.Fatalf("control.Call to the attacker's socket: %v, want a refusal", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the refused connection to be seen", func() bool {
		select {
		case l := <-lines:
			return l == "connection" // the dial happened, the conversation did not
		default:
			return false
		}
	})
}
