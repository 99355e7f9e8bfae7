package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func FuzzDecodeMessage(f *testing.F) {
	good := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", ForwardedFrom: "robert",
		Kind: KindReply, Body: "héllo", SentAt: time.UnixMilli(1700000000000), ConversationID: "c1", Intent: "billing"}
	f.Add(AppendMessage(nil, good))
	f.Add(AppendMessage(nil, &Message{ID: "x", From: "a", To: "b", Kind: KindMessage}))
	bad := AppendMessage(nil, good)
	bad[len(bad)-1] = 0xff // invalid UTF-8 in the body
	f.Add(bad)
	f.Add(AppendMessageStamped(nil, ReqDeliver, good, false, time.UnixMilli(1700000000123)))
	f.Add(AppendMessageStamped(nil, ReqStore, good, true, time.UnixMilli(1)))
	f.Add([]byte{1, 1, flagStamped, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 0, 1})
	f.Add([]byte{2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1 && (b[1] == ReqStore) {
			m, replica, err := DecodeMessageAs(b, ReqStore, 1<<20)
			if err == nil && !bytes.Equal(AppendMessageStamped(nil, ReqStore, m, replica, m.Stamp), b) {
				t.Fatalf("store re-encoding differs")
			}
			return
		}
		m, replica, err := DecodeMessageAs(b, ReqDeliver, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrOverLimit) {
				t.Fatalf("error neither a bad message nor over the limit: %v", err)
			}
			return
		}
		if m.Validate() != nil {
			t.Fatalf("decoded an invalid message")
		}
		// Canonical: what decodes re-encodes to the same bytes.
		if again := AppendMessageStamped(nil, ReqDeliver, m, replica, m.Stamp); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestDecodeMessageRejects(t *testing.T) {
	good := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage, Body: "hi", SentAt: time.UnixMilli(1)}
	enc := func(mod func(m *Message)) []byte {
		c := *good
		mod(&c)
		return AppendMessage(nil, &c)
	}
	for name, b := range map[string][]byte{
		"invalid utf8 body":   enc(func(m *Message) { m.Body = "\xc3\x28" }),
		"invalid utf8 intent": enc(func(m *Message) { m.Intent = "\xff" }),
		"upper-case name":     enc(func(m *Message) { m.From = "Alice" }),
		"empty id":            enc(func(m *Message) { m.ID = "" }),
		"id with spaces":      enc(func(m *Message) { m.ID = "a b" }),
		"kind 0":              enc(func(m *Message) { m.Kind = 0 }),
		"kind 9":              enc(func(m *Message) { m.Kind = 9 }),
		"unknown version":     append([]byte{9}, AppendMessage(nil, good)[1:]...),
		"truncated":           AppendMessage(nil, good)[:20],
		"trailing garbage":    append(AppendMessage(nil, good), 'x'),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeMessage(b, 1000); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	// Well formed but larger than this peer takes: a refusal of its own,
	// which the sender reports as too large (not as malformed).
	at := enc(func(m *Message) { m.Body = string(make([]byte, 1000)) })
	if _, err := DecodeMessage(at, 1000); err != nil {
		t.Fatalf("a body of exactly the limit refused: %v", err)
	}
	over := enc(func(m *Message) { m.Body = string(make([]byte, 1001)) })
	if _, err := DecodeMessage(over, 1000); !errors.Is(err, ErrOverLimit) || errors.Is(err, ErrBadMessage) {
		t.Fatalf("a body one byte over the limit: %v, want ErrOverLimit alone", err)
	}
	if _, err := DecodeMessage(AppendMessage(nil, good), 1000); err != nil {
		t.Fatalf("good message refused: %v", err)
	}
}

// A request's stamp (the requester's clock, for the clock-skew check) travels beside the
// message and never changes it; a stamp cut short is malformed.
func TestMessageStamp(t *testing.T) {
	m := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage, Body: "hi", SentAt: time.UnixMilli(1700000000000)}
	stamp := time.UnixMilli(1700000300000)
	for name, b := range map[string][]byte{
		"append": AppendMessageStamped(nil, ReqDeliver, m, false, stamp),
		"parts": func() []byte {
			head, body := MessagePartsStamped(ReqDeliver, m, false, stamp)
			return append(head, body...)
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeMessage(b, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Stamp.Equal(stamp) || !got.SentAt.Equal(m.SentAt) || got.Body != "hi" || got.ID != m.ID {
				t.Fatalf("decoded %+v; want the message with stamp %v", got, stamp)
			}
		})
	}
	plain, err := DecodeMessage(AppendMessage(nil, m), 1000)
	if err != nil || !plain.Stamp.IsZero() {
		t.Fatalf("an unstamped message decodes with stamp %v, %v; want none", plain.Stamp, err)
	}
	short := AppendMessageStamped(nil, ReqDeliver, m, false, stamp)[:18]
	if _, err := DecodeMessage(short, 1000); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("a stamp cut short: %v, want ErrBadMessage", err)
	}
}
