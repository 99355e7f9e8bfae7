package main

import (
	"encoding/json"
	"fmt"
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
