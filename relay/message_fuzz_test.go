package relay

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func FuzzDecodeMessage(f *testing.F) {
	good := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", ForwardedFrom: "robert",
		Kind: KindReply, Body: "héllo", SentAt: time.UnixMilli(1700000000000), ConversationID: "c1", Intent: "billing"}
	f.Add(appendMessage(nil, good))
	f.Add(appendMessage(nil, &Message{ID: "x", From: "a", To: "b", Kind: KindMessage}))
	bad := appendMessage(nil, good)
	bad[len(bad)-1] = 0xff // invalid UTF-8 in the body
	f.Add(bad)
	f.Add([]byte{1, 1, 0, 1})
	f.Add([]byte{2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1 && (b[1] == reqStore) {
			m, replica, err := decodeMessageAs(b, reqStore, 1<<20)
			if err == nil && !bytes.Equal(appendMessageAs(nil, reqStore, m, replica), b) {
				t.Fatalf("store re-encoding differs")
			}
			return
		}
		m, replica, err := decodeMessageAs(b, reqDeliver, 1<<20)
		if err != nil {
			if !errors.Is(err, errBadMessage) && !errors.Is(err, errOverLimit) {
				t.Fatalf("error neither a bad message nor over the limit: %v", err)
			}
			return
		}
		if m.validate() != nil {
			t.Fatalf("decoded an invalid message")
		}
		// Canonical: what decodes re-encodes to the same bytes.
		if again := appendMessageAs(nil, reqDeliver, m, replica); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestDecodeMessageRejects(t *testing.T) {
	good := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage, Body: "hi", SentAt: time.UnixMilli(1)}
	enc := func(mod func(m *Message)) []byte {
		c := *good
		mod(&c)
		return appendMessage(nil, &c)
	}
	for name, b := range map[string][]byte{
		"invalid utf8 body":   enc(func(m *Message) { m.Body = "\xc3\x28" }),
		"invalid utf8 intent": enc(func(m *Message) { m.Intent = "\xff" }),
		"upper-case name":     enc(func(m *Message) { m.From = "Alice" }),
		"empty id":            enc(func(m *Message) { m.ID = "" }),
		"id with spaces":      enc(func(m *Message) { m.ID = "a b" }),
		"kind 0":              enc(func(m *Message) { m.Kind = 0 }),
		"kind 9":              enc(func(m *Message) { m.Kind = 9 }),
		"unknown version":     append([]byte{9}, appendMessage(nil, good)[1:]...),
		"truncated":           appendMessage(nil, good)[:20],
		"trailing garbage":    append(appendMessage(nil, good), 'x'),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeMessage(b, 1000); !errors.Is(err, errBadMessage) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	// Well formed but larger than this peer takes: a refusal of its own,
	// which the sender reports as too large (not as malformed).
	at := enc(func(m *Message) { m.Body = string(make([]byte, 1000)) })
	if _, err := decodeMessage(at, 1000); err != nil {
		t.Fatalf("a body of exactly the limit refused: %v", err)
	}
	over := enc(func(m *Message) { m.Body = string(make([]byte, 1001)) })
	if _, err := decodeMessage(over, 1000); !errors.Is(err, errOverLimit) || errors.Is(err, errBadMessage) {
		t.Fatalf("a body one byte over the limit: %v, want errOverLimit alone", err)
	}
	if _, err := decodeMessage(appendMessage(nil, good), 1000); err != nil {
		t.Fatalf("good message refused: %v", err)
	}
}

func FuzzDecodeNameList(f *testing.F) {
	f.Add(appendNameList(nil, reqDrop, "bob", []string{"01A", "01B"}))
	f.Add(appendNameList(nil, reqCount, "bob", nil))
	f.Add([]byte{1, 3, 0, 3, 'B', 'O', 'B', 0, 0})
	f.Add([]byte{1, 3, 0, 1, 'b', 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range []byte{reqDrop, reqCount} {
			name, ids, err := decodeNameList(b, typ)
			if err != nil {
				if !errors.Is(err, errBadMessage) {
					t.Fatalf("error not marked as bad: %v", err)
				}
				continue
			}
			if !bytes.Equal(appendNameList(nil, typ, name, ids), b) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}
