package mesh

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(Meta{Name: "alice", Description: "billing expert", Host: "h", RelayAddr: "127.0.0.1:1"}, metaLimit))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"n":"BAD NAME","v":1}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes within the cap.
		if out := encodeMeta(m, metaLimit); len(out) > metaLimit {
			t.Fatalf("re-encoded meta is %d bytes", len(out))
		}
	})
}

func FuzzDecodeBroadcast(f *testing.F) {
	good, _ := encodeBroadcast(msgForward, Forward{From: "a", To: "b", Expires: time.Unix(1e9, 0), Stamp: 1, Origin: "x"})
	f.Add(good)
	f.Add([]byte{1, 1})
	f.Add([]byte{2, 1, '{', '}'})
	f.Add([]byte{1, 9, '{', '}'})
	f.Add(append([]byte{1, 1}, []byte(`{"from":"a","to":"a","o":"x"}`)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, fw, err := decodeBroadcast(b)
		if err != nil {
			return
		}
		if typ != msgForward || fw.validate() != nil {
			t.Fatalf("accepted an invalid broadcast: %d %+v", typ, fw)
		}
	})
}

func FuzzDecodeForwards(f *testing.F) {
	b, _ := json.Marshal([]Forward{{From: "a", To: "b", Expires: time.Unix(2e9, 0), Stamp: 3, Origin: "p"}, {From: "c", Origin: "p"}})
	f.Add(b)
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"from":"UP","o":"p"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, _, err := decodeForwards(b)
		if err != nil {
			return
		}
		table := forwardTable{}
		for _, fw := range fs {
			if fw.validate() != nil {
				t.Fatalf("accepted invalid forward %+v", fw)
			}
			table.apply(fw, time.Unix(0, 0))
		}
	})
}

func FuzzDecodePushState(f *testing.F) {
	b, _ := json.Marshal(pushState{
		Forwards: []Forward{{From: "a", To: "b", Expires: time.Unix(2e9, 0), Stamp: 3, Origin: "p"}},
		Reserved: []reservation{{Name: "ghost", ID: "d", Host: "h", ClaimedAt: 1, LeftMs: 2000}},
	})
	f.Add(b)
	f.Add([]byte(`[{"from":"a","o":"p"}]`))
	f.Add([]byte(`{"f":null,"r":[{"n":"x","id":"y","ms":-1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, _, err := decodePushState(b)
		if err != nil {
			return
		}
		for _, fw := range st.Forwards {
			if fw.validate() != nil {
				t.Fatalf("accepted invalid forward %+v", fw)
			}
		}
		p := &Peer{id: "me", members: map[string]*Member{}, cfg: Config{NameGrace: 3 * time.Second}}
		now := time.Unix(1e9, 0)
		for _, r := range st.Reserved {
			if r.validate() != nil {
				t.Fatalf("accepted invalid reservation %+v", r)
			}
			p.reserveLocked(r, now)
		}
		for _, m := range p.members {
			if m.State != MemberDead || now.Sub(m.Since) < 0 || now.Sub(m.Since) > p.cfg.NameGrace {
				t.Fatalf("a reservation made member %+v", m)
			}
		}
	})
}

func TestMetaFitsTheCap(t *testing.T) {
	for name, m := range map[string]Meta{
		"huge description": {Name: strings.Repeat("n", 64), Description: strings.Repeat("d", 5000), Host: "host", RelayAddr: "[::1]:65535"},
		"huge focus":       {Name: "a", Description: strings.Repeat("é", 600), Focus: strings.Repeat("f", 900)},
		"escapes":          {Name: "a", Description: strings.Repeat("<>&\"", 400)},
		"huge host":        {Name: "a", Host: strings.Repeat("h", 800)},
	} {
		t.Run(name, func(t *testing.T) {
			b := encodeMeta(m, metaLimit)
			if len(b) > metaLimit || len(b) == 0 {
				t.Fatalf("encoded %d bytes, want 1..%d", len(b), metaLimit)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Name != m.Name || got.RelayAddr != m.RelayAddr {
				t.Errorf("lost identity fields: %+v", got)
			}
			if !bytes.Contains(b, []byte(`"v":1`)) {
				t.Errorf("no version in %s", b)
			}
		})
	}
}

func TestMetaRejectsNewerVersionAndBadNames(t *testing.T) {
	for name, in := range map[string]string{
		"newer version":  `{"v":2,"n":"a"}`,
		"upper case":     `{"v":1,"n":"Alice"}`,
		"bad characters": `{"v":1,"n":"a b"}`,
		"not json":       `n=alice`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeMeta([]byte(in)); err == nil {
				t.Fatalf("decodeMeta(%s) accepted", in)
			}
		})
	}
}
