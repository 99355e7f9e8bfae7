package mcpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// TestServeStdio drives ServeStdio over pipes: initialize is answered while
// the peer is still joining, every line written is one JSON-RPC message,
// and the end of input ends the server and the session's conversations.
func TestServeStdio(t *testing.T) {
	fm := newFakeMesh()
	p := fm.pendingPeer()
	other := fm.peer()
	if err := other.Claim(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Backend = p
	s := New(cfg)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.ServeStdio(context.Background(), inR, outW)
		outW.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	send := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(inW, msg+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	// next returns the next message with id, checking every line on the way.
	next := func(id any) map[string]any {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("output ended before the response to %d", id)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
					t.Fatalf("a line of output is not JSON-RPC: %q", l)
				}
				if n, ok := id.(int); ok {
					id = float64(n)
				}
				if m["id"] == id {
					return m
				}
			case <-timeout:
				t.Fatalf("no response to %d", id)
			}
		}
	}

	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	init := next(1)
	if r, _ := init["result"].(map[string]any); r == nil || r["instructions"] == "" {
		t.Fatalf("initialize: %v", init)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	close(p.ready)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"paf_connect","arguments":{"target_session":"other","intent":"x","my_name":"me"}}}`)
	if r := next(2); r["result"] == nil || r["result"].(map[string]any)["isError"] == true {
		t.Fatalf("connect: %v", r)
	}
	send(`not json`)
	if r := next(nil); r["error"] == nil { // a parse error is answered with a null id
		t.Fatalf("answer to a line that is not JSON: %v", r)
	}
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return at the end of its input")
	}
	for l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a line of output is not JSON: %q", l)
		}
	}
	// Closing the session ended its conversation, and the other side knows.
	ms, err := other.Peek("other")
	if err != nil || len(ms) != 2 || ms[1].Kind.String() != "end" || !strings.Contains(ms[1].Body, "closed") {
		t.Fatalf("the other side's inbox: %+v %v", ms, err)
	}
}
