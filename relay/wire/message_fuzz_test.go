package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

func FuzzDecodeMessage(f *testing.F) {
	good := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", ForwardedFrom: "robert",
		Kind: KindReply, Body: "héllo", SentAt: time.UnixMilli(1700000000000), ConversationID: "c1", Intent: "billing"}
	f.Add(AppendMessage(nil, good))
	signed := *good
	SignMessage(&signed, keys.NewIdentity())
	f.Add(AppendMessage(nil, &signed))
	f.Add(appendV1(good))
	bob := keys.NewIdentity()
	card, err := keys.ParseCard(bob.Card())
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := SealMessage(good, card, keys.NewIdentity())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(AppendMessageAs(nil, ReqStore, sealed, true))
	f.Add(AppendMessage(nil, sealed))
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
		// Canonical: what decodes re-encodes to the same bytes; a version 1 record (read from
		// disk) re-encodes as version 1 would have encoded it.
		reencode := func(typ byte, m *Message, replica bool) []byte {
			again := AppendMessageStamped(nil, typ, m, replica, m.Stamp)
			if b[0] == 1 {
				if m.SenderKey != "" {
					t.Fatal("a version 1 record decoded with a key")
				}
				again = v1Of(again)
			}
			return again
		}
		if len(b) > 1 && (b[1] == ReqStore) {
			m, replica, err := DecodeMessageAs(b, ReqStore, 1<<20)
			if err == nil && !bytes.Equal(reencode(ReqStore, m, replica), b) {
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
		if again := reencode(ReqDeliver, m, replica); !bytes.Equal(again, b) {
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

// appendV1 is m as version 1 encoded it: no key or signature.
func appendV1(m *Message) []byte {
	c := *m
	c.SenderKey, c.Sig = "", ""
	return v1Of(AppendMessage(nil, &c))
}

// v1Of turns an unsigned version 2 encoding into version 1's: the version byte, and no key
// and signature length bytes (both 0) before the body length.
func v1Of(b []byte) []byte {
	off := 12
	for range 6 {
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	out := append([]byte{1}, b[1:off]...)
	return append(out, b[off+2:]...)
}

// Signatures: a signed message verifies, survives the wire, and any change to what it covers
// breaks it; To and ForwardedFrom may change as long as the addressed name stays.
func TestMessageSignatures(t *testing.T) {
	author := keys.NewIdentity()
	m := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage, Body: "pay 10",
		SentAt: time.UnixMilli(1700000000000), ConversationID: "c1", Intent: "billing"}
	if _, err := VerifySignature(m, nil); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	SignMessage(m, author)
	got, err := DecodeMessage(AppendMessage(nil, m), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := VerifySignature(got, nil); err != nil || fp != author.Fingerprint() || got.Signer() != fp {
		t.Fatalf("verify after the wire: %q, %v", fp, err)
	}
	// Renamed on the way: bob became robert.
	moved := *got
	moved.To, moved.ForwardedFrom = "robert", "bob"
	if _, err := VerifySignature(&moved, nil); err != nil {
		t.Fatalf("a forwarded message no longer verifies: %v", err)
	}
	for name, mod := range map[string]func(*Message){
		"body":         func(m *Message) { m.Body = "pay 1000" },
		"from":         func(m *Message) { m.From = "mallory" },
		"id":           func(m *Message) { m.ID = "01HZY0000000000000000000AC" },
		"addressed to": func(m *Message) { m.To = "carol" },
		"kind":         func(m *Message) { m.Kind = KindSystem },
		"time":         func(m *Message) { m.SentAt = m.SentAt.Add(time.Millisecond) },
		"conversation": func(m *Message) { m.ConversationID = "c2" },
		"intent":       func(m *Message) { m.Intent = "refunds" },
		"broadcast":    func(m *Message) { m.Broadcast = true },
		"another key":  func(m *Message) { m.SenderKey = Raw(keys.NewIdentity().Public()) },
		"signature":    func(m *Message) { m.Sig = Raw([]byte{m.Sig[0] ^ 1}) + m.Sig[1:] },
	} {
		c := *got
		mod(&c)
		if _, err := VerifySignature(&c, nil); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: %v, want ErrBadSignature", name, err)
		}
	}
	// A key without a signature, or a key of the wrong size, does not decode.
	half := *m
	half.Sig = ""
	if _, err := DecodeMessage(AppendMessage(nil, &half), 1000); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("key without signature: %v", err)
	}
	short := *m
	short.SenderKey = short.SenderKey[:31]
	if _, err := DecodeMessage(AppendMessage(nil, &short), 1000); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("31-byte key: %v", err)
	}
	// A record of version 1 (stored before signatures) still reads, unsigned.
	old, err := DecodeMessage(appendV1(m), 1000)
	if err != nil || old.Sig != "" || old.Body != m.Body {
		t.Fatalf("version 1 record: %+v, %v", old, err)
	}
}

// A signed message survives JSON (a holder keeps its records in JSON): its key and signature
// are bytes, not text.
func TestSignedMessageJSONRoundTrip(t *testing.T) {
	m := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage, Body: "hi", SentAt: time.UnixMilli(1)}
	SignMessage(m, keys.NewIdentity())
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.SentAt.Equal(m.SentAt) {
		t.Fatalf("time %v, want %v", back.SentAt, m.SentAt)
	}
	back.SentAt = m.SentAt // == compares the location too
	if back != *m {
		t.Fatalf("JSON round trip changed the message:\n got %+v\nwant %+v", back, *m)
	}
	if _, err := VerifySignature(&back, nil); err != nil {
		t.Fatal(err)
	}
}
