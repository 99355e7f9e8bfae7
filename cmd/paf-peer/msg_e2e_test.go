package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// End-to-end tests of messaging through the real binary: serve peers in
// separate processes, driven by send/check/listen as a user would.

type jsonSend struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Holders int    `json:"holders"`
}

type jsonMsgs struct {
	Messages []struct {
		ID, From, To, Body, Kind, File string
		ForwardedFrom                  string `json:"forwarded_from"`
		SentAt                         string `json:"sent_at"`
	} `json:"messages"`
}

func (m *testMesh) cli(who string, args ...string) (string, string, int) {
	m.t.Helper()
	return runCLI(m.t, m.env(who), args...)
}

func (m *testMesh) sendJSON(as, to, body string) jsonSend {
	m.t.Helper()
	out, errOut, code := m.cli("cli", "send", "--as", as, to, body, "--json")
	if code != 0 {
		m.t.Fatalf("send --as %s %s: exit %d: %s", as, to, code, errOut)
	}
	var r jsonSend
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		m.t.Fatalf("send --json output %q: %v", out, err)
	}
	return r
}

func (m *testMesh) checkJSON(as string) jsonMsgs {
	m.t.Helper()
	out, errOut, code := m.cli("cli", "check", "--as", as, "--json")
	if code != 0 {
		m.t.Fatalf("check --as %s: exit %d: %s", as, code, errOut)
	}
	var r jsonMsgs
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		m.t.Fatalf("check --json output %q: %v", out, err)
	}
	return r
}

// waitNames waits until status lists every name alive.
func (m *testMesh) waitNames(names ...string) {
	m.t.Helper()
	testutil.WaitFor(m.t, 15*time.Second, "names "+strings.Join(names, ","), func() bool {
		st := m.status()
		for _, n := range names {
			if st.peerNamed(n, "alive") == nil {
				return false
			}
		}
		return true
	})
}

func TestE2ESendCheck(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")

	r := m.sendJSON("alice", "bob", "hi")
	if r.Status != "delivered" || r.ID == "" {
		t.Fatalf("send: %+v", r)
	}
	got := m.checkJSON("bob")
	if len(got.Messages) != 1 || got.Messages[0].Body != "hi" || got.Messages[0].From != "alice" || got.Messages[0].ID != r.ID {
		t.Fatalf("check: %+v", got)
	}
	if again := m.checkJSON("bob"); len(again.Messages) != 0 {
		t.Fatalf("second check returned %d messages", len(again.Messages))
	}

	// stdin as the message, and the text output.
	cmd := exec.Command(pafPeer, "send", "--as", "bob", "alice", "-")
	cmd.Env = cleanEnv(t, m.env("cli"))
	cmd.Stdin = strings.NewReader("from stdin")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "delivered to alice") {
		t.Fatalf("send from stdin: %v %s", err, out)
	}
	out, _, code := m.cli("cli", "check", "--as", "alice")
	if code != 0 || !strings.Contains(out, "from stdin") || !strings.Contains(out, "from bob") {
		t.Fatalf("check text output: %q", out)
	}
}

func TestE2EThousandInOrder(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")
	// A shell loop, as a user would write it: one process per message. A
	// -race binary takes ~150 ms to start, so under -race the loop is
	// shorter; relay's TestThousandInOrderNoDuplicates sends 1,000 through
	// the same code in-process, and a plain `go test` runs the full 1,000.
	n := 1000
	if testutil.RaceEnabled() {
		n = 150
	}
	script := fmt.Sprintf(`for i in $(seq 0 %d); do %s send --as alice bob "m$i" >/dev/null || exit 1; done`, n-1, pafPeer)
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = cleanEnv(t, m.env("cli"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send loop: %v\n%s", err, out)
	}
	got := m.checkJSON("bob")
	if len(got.Messages) != n {
		t.Fatalf("got %d messages, want %d", len(got.Messages), n)
	}
	ids := map[string]bool{}
	for i, msg := range got.Messages {
		if msg.Body != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q: out of order", i, msg.Body)
		}
		if ids[msg.ID] {
			t.Fatalf("duplicate id %s", msg.ID)
		}
		ids[msg.ID] = true
	}
}

func TestE2ELargeMessage(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")
	big := strings.Repeat("paf-mesh large body ", 5<<20/20) // 5 MiB
	cmd := exec.Command(pafPeer, "send", "--as", "alice", "bob", "-", "--json")
	cmd.Env = cleanEnv(t, m.env("cli"))
	cmd.Stdin = strings.NewReader(big)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"delivered"`) {
		t.Fatalf("send 5 MiB: %v %s", err, out)
	}
	got := m.checkJSON("bob")
	if len(got.Messages) != 1 || got.Messages[0].File == "" {
		t.Fatalf("want one message saved to a file: %+v", got)
	}
	data, err := os.ReadFile(got.Messages[0].File)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(data) != sha256.Sum256([]byte(big)) {
		t.Fatal("the saved file differs from what was sent")
	}
	if !strings.Contains(got.Messages[0].Body, got.Messages[0].File) || len(got.Messages[0].Body) > 2000 {
		t.Fatalf("the body should be a preview naming the file")
	}

	// Over the limit (8 MiB): refused with a clear error, nothing sent.
	cmd = exec.Command(pafPeer, "send", "--as", "alice", "bob", "-")
	cmd.Env = cleanEnv(t, m.env("cli"))
	cmd.Stdin = strings.NewReader(strings.Repeat("x", 8<<20+1))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "too large") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("over the limit: %v %q, want one line saying too large", err, out)
	}
	if again := m.checkJSON("bob"); len(again.Messages) != 0 {
		t.Fatalf("an oversize message arrived")
	}
}

func TestE2EFutureMessage(t *testing.T) {
	m := newTestMesh(t)
	for _, n := range []string{"a", "b", "c"} {
		m.serve(n, "--name", n)
	}
	m.waitNames("a", "b", "c")
	r := m.sendJSON("a", "nessa", "welcome")
	if r.Status != "stored" || r.Holders != 3 {
		t.Fatalf("send to a future name: %+v, want stored by 3", r)
	}
	m.serve("nessa", "--name", "nessa")
	m.waitNames("nessa")
	var got jsonMsgs
	testutil.WaitFor(t, 10*time.Second, "nessa to have the message", func() bool {
		got = m.checkJSON("nessa")
		return len(got.Messages) > 0
	})
	if len(got.Messages) != 1 || got.Messages[0].Body != "welcome" {
		t.Fatalf("nessa got %+v", got)
	}
	if again := m.checkJSON("nessa"); len(again.Messages) != 0 {
		t.Fatalf("shown twice")
	}
}

// A future message needs a peer to keep it: with none running, send from the
// shell (whose own brief peer leaves at once) fails in one line that says
// nothing was sent and what to do; with one serve running, it is stored by
// that peer and the text says "1 peer".
func TestE2EFutureMessageNeedsAHolder(t *testing.T) {
	m := newTestMesh(t)
	_, errOut, code := runCLI(t, m.env("x"), "send", "--as", "alice", "bob", "hello")
	ls := messageLines(errOut)
	if code != 1 || len(ls) != 1 {
		t.Fatalf("send with no peer running: exit %d, want 1 and one line:\n%s", code, errOut)
	}
	for _, want := range []string{"nothing was sent", "bob is offline", "paf-peer serve"} {
		if !strings.Contains(ls[0], want) {
			t.Errorf("error %q does not say %q", ls[0], want)
		}
	}
	m.serve("h", "--name", "holder")
	m.waitNames("holder")
	out, errOut, code := runCLI(t, m.env("x"), "send", "--as", "alice", "bob", "hello")
	if code != 0 || !strings.Contains(out, "stored for bob, held by 1 peer until it comes online") {
		t.Fatalf("send with one serve running: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// The configurable limits reach the peers that apply them: a receiver's
// --max-body refuses a larger body (the sender is told, nothing is kept) and
// its --file-over saves smaller ones to a file; a sender's --replicas sets how
// many peers keep a future message; a bad value stops serve before it starts.
func TestE2ETuning(t *testing.T) {
	m := newTestMesh(t)
	m.serve("bob", "--name", "bob", "--max-body", "2KiB", "--file-over", "1KiB")
	m.serve("alice", "--name", "alice", "--replicas", "1")
	m.serve("c", "--name", "carol")
	m.waitNames("bob", "alice", "carol")

	_, errOut, code := m.cli("cli", "send", "--as", "alice", "bob", strings.Repeat("x", 3000))
	if code != 1 || !strings.Contains(errOut, "too large") || !strings.Contains(errOut, "at most 2048") {
		t.Fatalf("3000 bytes to a peer that takes 2KiB: exit %d, want 1 saying too large:\n%s", code, errOut)
	}
	if r := m.sendJSON("alice", "bob", strings.Repeat("y", 1500)); r.Status != "delivered" {
		t.Fatalf("1500 bytes to bob: %+v", r)
	}
	got := m.checkJSON("bob")
	if len(got.Messages) != 1 || got.Messages[0].File == "" || len(got.Messages[0].Body) >= 1500 {
		t.Fatalf("bob should have one message saved to a file (over 1KiB) with a preview, got %+v", got)
	}
	if r := m.sendJSON("alice", "dora", "for later"); r.Status != "stored" || r.Holders != 1 {
		t.Fatalf("a future message from a peer with --replicas 1: %+v, want stored by 1", r)
	}
	_, errOut, code = m.cli("x", "serve", "--replicas", "0")
	if code != 2 || !strings.Contains(errOut, "from 1 to 16") {
		t.Fatalf("serve --replicas 0: exit %d, want 2 saying what is allowed:\n%s", code, errOut)
	}
}

func TestE2EHolderLossSIGKILL(t *testing.T) {
	m := newTestMesh(t)
	peers := map[string]*proc{}
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5"} {
		peers[n] = m.serve(n, "--name", n)
	}
	m.waitNames("p1", "p2", "p3", "p4", "p5")
	for i := 0; i < 100; i++ {
		if r := m.sendJSON("p1", "late", fmt.Sprint(i)); r.Status != "stored" {
			t.Fatalf("send %d: %+v", i, r)
		}
	}
	// SIGKILL two holders (other than the sender, which the loop above used).
	st := m.status()
	killed := 0
	for _, p := range st.Peers {
		if p.Stored > 0 && p.Name != "p1" && killed < 2 {
			peers[p.Name].signal(syscall.SIGKILL)
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no holder to kill: %+v", st.Peers)
	}
	m.serve("late", "--name", "late")
	m.waitNames("late")
	var got jsonMsgs
	testutil.WaitFor(t, 30*time.Second, "all 100 to arrive", func() bool {
		more := m.checkJSON("late")
		got.Messages = append(got.Messages, more.Messages...)
		return len(got.Messages) >= 100
	})
	if len(got.Messages) != 100 {
		t.Fatalf("got %d, want 100", len(got.Messages))
	}
	for i, msg := range got.Messages {
		if msg.Body != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order or duplicated", i, msg.Body)
		}
	}
}

func TestE2ETotalRestart(t *testing.T) {
	m := newTestMesh(t)
	a := m.serve("a", "--name", "a")
	b := m.serve("b", "--name", "b")
	m.waitNames("a", "b")
	for i := 0; i < 3; i++ {
		if r := m.sendJSON("a", "sleeper", fmt.Sprint("zz", i)); r.Status != "stored" {
			t.Fatalf("send: %+v", r)
		}
	}
	for _, p := range []*proc{a, b} {
		p.signal(syscall.SIGTERM)
		if _, err := p.wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Later: one new peer on the same state dir, then the recipient.
	m.serve("b")
	m.serve("s", "--name", "sleeper")
	m.waitNames("sleeper")
	var got jsonMsgs
	testutil.WaitFor(t, 15*time.Second, "the stored messages to arrive", func() bool {
		more := m.checkJSON("sleeper")
		got.Messages = append(got.Messages, more.Messages...)
		return len(got.Messages) >= 3
	})
	if len(got.Messages) != 3 || got.Messages[0].Body != "zz0" || got.Messages[2].Body != "zz2" {
		t.Fatalf("after a total restart: %+v", got)
	}
}

func TestE2EListen(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")
	l := startPeer(t, m.env("cli"), "listen", "--as", "bob", "--timeout", "20", "--json")
	m.sendJSON("alice", "bob", "are you there?")
	code, err := l.wait(20 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("listen: exit %d %v: %s", code, err, l.stderr())
	}
	var got jsonMsgs
	if err := json.Unmarshal([]byte(l.stdout()), &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Body != "are you there?" {
		t.Fatalf("listen output %q (%v)", l.stdout(), err)
	}
	if again := m.checkJSON("bob"); len(again.Messages) != 0 {
		t.Fatalf("listen did not mark the message read")
	}
	// A timeout with nothing: exit 0, empty list, a note on stderr.
	out, errOut, code := m.cli("cli", "listen", "--as", "bob", "--timeout", "0.3", "--json")
	if code != 0 || !strings.Contains(out, `"messages":[]`) || !strings.Contains(errOut, "nothing arrived") {
		t.Fatalf("listen timeout: %d %q %q", code, out, errOut)
	}
}
