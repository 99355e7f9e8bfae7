package relay

// Tests of the cross-process benchmark harness itself: its decoders, and that its children
// work and leave no process behind. The benchmarks only run with -bench; these run always.

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestXProcStamp(t *testing.T) {
	now := time.Now().UnixNano()
	for name, tc := range map[string]struct {
		in     []byte
		want   int64
		wantOK bool
	}{
		"now":             {in: xprocStamped(now, "rest of the body"), want: now, wantOK: true},
		"zero":            {in: xprocStamped(0, ""), want: 0, wantOK: true},
		"largest":         {in: xprocStamped(999_999_999_999_999_999, "x"), want: 999_999_999_999_999_999, wantOK: true},
		"one short":       {in: []byte("123456789012345678")},
		"empty":           {in: nil},
		"letter inside":   {in: []byte("1234567890x23456789 body")},
		"plain body text": {in: xprocText(1 << 10)},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := xprocStamp(tc.in)
			if ok != tc.wantOK {
				t.Fatalf("xprocStamp(%q) ok = %v, want %v", tc.in, ok, tc.wantOK)
			}
			if ok && got != tc.want {
				t.Fatalf("xprocStamp = %d, want %d", got, tc.want)
			}
		})
	}
	// The stamp is text: it can start a message body.
	m := &Message{ID: "01HZXPR0C00000000000000000", From: "bench-tx", To: "bench-rx", Kind: KindMessage, Body: string(xprocStamped(now, "")), SentAt: time.Now()}
	if err := m.Validate(); err != nil {
		t.Fatalf("a stamped body is not a valid message body: %v", err)
	}
}

// xprocStamped is a stamp of ns followed by rest.
func xprocStamped(ns int64, rest string) []byte {
	b := make([]byte, xprocStampLen, xprocStampLen+len(rest))
	xprocPutStamp(b, ns)
	return append(b, rest...)
}

func TestXProcMessageBody(t *testing.T) {
	base := Message{ID: "01HZXPR0C00000000000000000", From: "bench-tx", To: "bench-rx", Kind: KindMessage, SentAt: time.Now()}
	for name, mod := range map[string]func(*Message){
		"plain":          func(m *Message) { m.Body = "hello" },
		"empty body":     func(m *Message) { m.Body = "" },
		"every field":    func(m *Message) { m.Body, m.ForwardedFrom, m.ConversationID, m.Intent = "b", "old", "conv-1", "focus" },
		"stamped 64 KiB": func(m *Message) { m.Body = string(xprocStamped(42, strings.Repeat("y", 64<<10))) },
	} {
		t.Run(name, func(t *testing.T) {
			m := base
			mod(&m)
			enc := wire.AppendMessage(nil, &m)
			if got := string(xprocMessageBody(enc)); got != m.Body {
				t.Fatalf("body %q, want %q", got, m.Body)
			}
			for n := range 12 + 2 + 2 {
				if got := xprocMessageBody(enc[:n]); got != nil {
					t.Fatalf("a %d-byte prefix gave body %q, want nil", n, got)
				}
			}
		})
	}
}

// FuzzXProcMessageBody: the benchmark receiver reads the stamp out of encoded messages from
// the network without decoding them; on any input it must not panic, and on every message the
// relay accepts it must find the same body as decodeMessage.
func FuzzXProcMessageBody(f *testing.F) {
	for _, m := range []*Message{
		{ID: "01HZXPR0C00000000000000000", From: "bench-tx", To: "bench-rx", Kind: KindMessage, Body: string(xprocStamped(1, "x"))},
		{ID: "01HZXPR0C00000000000000001", From: "a", To: "b", ForwardedFrom: "c", ConversationID: "k", Intent: "i", Kind: KindReply},
	} {
		enc := wire.AppendMessage(nil, m)
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		f.Add(enc[:14])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12+6*2+4))
	f.Add(append(make([]byte, 12), 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		body := xprocMessageBody(b)
		if m, err := wire.DecodeMessage(b, 8<<20); err == nil && string(body) != m.Body {
			t.Fatalf("body %q, decodeMessage found %q", body, m.Body)
		}
		xprocStamp(body)
	})
}

// TestXProcEchoChild runs the raw TCP baseline's child: it echoes frames, and exits when its
// stdin closes.
func TestXProcEchoChild(t *testing.T) {
	child, ready := xprocSpawn(t, "tcpecho")
	if len(ready) != 1 {
		t.Fatalf("ready %q, want an address", ready)
	}
	nc, err := net.Dial("tcp", ready[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	for name, n := range map[string]int{"empty": 0, "1 KiB": 1 << 10, "200 KiB": 200 << 10} {
		t.Run(name, func(t *testing.T) {
			out := binary.BigEndian.AppendUint32(nil, uint32(n))
			out = append(out, xprocText(n)...)
			if _, err := nc.Write(out); err != nil {
				t.Fatal(err)
			}
			in := make([]byte, len(out))
			if _, err := io.ReadFull(br, in); err != nil {
				t.Fatal(err)
			}
			if string(in) != string(out) {
				t.Fatal("the echo differs")
			}
		})
	}
	nc.Close()
	child.stop(t)
	if st := child.cmd.ProcessState; st == nil || !st.Exited() || st.ExitCode() != 0 {
		t.Fatalf("child state after stop: %v, want exited with 0", st)
	}
}

// TestXProcRelayChild runs the relay benchmark's setup once: a receiver child holding
// bench-rx times a stamped message sent with Relay.Send from this process.
func TestXProcRelayChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process with a mesh peer")
	}
	n, child := xprocRelayPair(t, false)
	for name, body := range map[string][]byte{
		"stamped": xprocStamped(time.Now().UnixNano(), " a timed message"),
		"plain":   []byte("not timed"),
	} {
		if _, err := n.relay.Send(context.Background(), Outgoing{From: xprocTxName, To: xprocRxName, Body: string(body)}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	rep := child.report(t)
	if len(rep.Wire) != 1 || len(rep.Answered) != 1 {
		t.Fatalf("report %+v, want the one stamped message", rep)
	}
	if w, a := rep.Wire[0], rep.Answered[0]; w <= 0 || a < w || a > int64(time.Minute) {
		t.Fatalf("wire %v, answered %v: want 0 < wire <= answered", time.Duration(w), time.Duration(a))
	}
	if rep := child.report(t); len(rep.Wire) != 0 {
		t.Fatalf("a second report repeats timings: %+v", rep)
	}
}
