package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(Meta{Name: "alice", Host: "h", Tags: map[string]string{"d": "billing expert", "r": "127.0.0.1:1", "l": "1"}}, metaLimit))
	// Version 1, as the previous release encoded it.
	f.Add([]byte(`{"n":"alice","c":1700000000000,"d":"billing expert","h":"h","r":"127.0.0.1:1","l":1,"s":true,"pv":"0.9","hm":3,"hn":1,"f":"why?","v":1}`))
	f.Add([]byte(`{"v":3}`))
	f.Add([]byte(`{"n":"BAD NAME","v":2}`))
	f.Add([]byte(`{"g":{"a b":"x"},"v":2}`))
	f.Add([]byte(`{"g":{"k":"\u0001<>"},"v":2}`))
	f.Add([]byte(`{"l":"x","v":1}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		for k, v := range m.Tags {
			if checkTag(k, v) != nil || v == "" {
				t.Fatalf("accepted tag %q=%q", k, v)
			}
		}
		// Whatever decodes re-encodes within the cap, and decodes again
		// to the same identity.
		out := encodeMeta(m, metaLimit)
		if len(out) > metaLimit {
			t.Fatalf("re-encoded meta is %d bytes", len(out))
		}
		again, err := decodeMeta(out)
		if err != nil {
			t.Fatalf("re-encoded meta %s does not decode: %v", out, err)
		}
		if again.Name != m.Name || again.ClaimedAt != m.ClaimedAt || again.Leaving != m.Leaving || again.Transient != m.Transient {
			t.Fatalf("identity changed: %+v, then %+v", m, again)
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

// Free-text tags are shortened in the order Meta.Shorten gives, then the
// host, as the previous release cut focus, description and host; other tags
// and the mesh's fields are kept whole.
func TestMetaFitsTheCap(t *testing.T) {
	text := []string{"f", "d"} // focus, then description, as mcpserver says
	for name, tc := range map[string]struct {
		m        Meta
		wantTags map[string]string // tags that must come through whole
		cut      string            // the tag that must be shortened, with "…"
	}{
		"huge description": {
			m:        Meta{Name: strings.Repeat("n", 64), Host: "host", Tags: map[string]string{"d": strings.Repeat("d", 5000), "r": "[::1]:65535"}, Shorten: text},
			wantTags: map[string]string{"r": "[::1]:65535"}, cut: "d",
		},
		"focus first": {
			m:        Meta{Name: "a", Tags: map[string]string{"d": strings.Repeat("é", 50), "f": strings.Repeat("f", 900)}, Shorten: text},
			wantTags: map[string]string{"d": strings.Repeat("é", 50)}, cut: "f",
		},
		"focus gone, then description": {
			m:   Meta{Name: "a", Tags: map[string]string{"d": strings.Repeat("é", 600), "f": strings.Repeat("f", 900)}, Shorten: text},
			cut: "d",
		},
		"escapes": {m: Meta{Name: "a", Tags: map[string]string{"d": strings.Repeat("<>&\"", 400)}, Shorten: text}, cut: "d"},
		// Each byte is six in JSON, and the cut counts raw bytes (as the
		// previous release did): the whole description goes.
		"control bytes": {m: Meta{Name: "a", Tags: map[string]string{"d": strings.Repeat("\x01", 600), "r": "x:1"}, Shorten: text}, wantTags: map[string]string{"r": "x:1"}},
		"huge host":     {m: Meta{Name: "a", Host: strings.Repeat("h", 800), Tags: map[string]string{"r": "x:1"}}, wantTags: map[string]string{"r": "x:1"}},
	} {
		t.Run(name, func(t *testing.T) {
			before := maps.Clone(tc.m.Tags)
			if err := tc.m.check(); err != nil {
				t.Fatalf("check: %v", err)
			}
			b := encodeMeta(tc.m, metaLimit)
			if len(b) > metaLimit || len(b) == 0 {
				t.Fatalf("encoded %d bytes, want 1..%d", len(b), metaLimit)
			}
			if !maps.Equal(tc.m.Tags, before) {
				t.Errorf("encoding changed the caller's tags")
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Name != tc.m.Name {
				t.Errorf("lost the name: %+v", got)
			}
			for k, v := range tc.wantTags {
				if got.Tag(k) != v {
					t.Errorf("tag %s = %q, want it whole: %q", k, clip(got.Tag(k), 20), clip(v, 20))
				}
			}
			if tc.cut != "" && (!strings.HasSuffix(got.Tag(tc.cut), "…") || !strings.HasPrefix(tc.m.Tag(tc.cut), strings.TrimSuffix(got.Tag(tc.cut), "…"))) {
				t.Errorf("tag %s = %q, want a prefix of the original and an ellipsis", tc.cut, clip(got.Tag(tc.cut), 20))
			}
			if !bytes.Contains(b, []byte(`"v":2`)) {
				t.Errorf("no version in %s", b)
			}
		})
	}
}

// A tag the caller did not allow to be shortened is never cut: check
// refuses the metadata, and encodeMeta (for metadata that never passed
// check) drops whole tags rather than exceed the cap.
func TestMetaTooLarge(t *testing.T) {
	m := Meta{Name: "a", Tags: map[string]string{"r": strings.Repeat("r", 600), "k": "v"}}
	if err := m.check(); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("check: %v, want ErrMetaTooLarge", err)
	}
	b := encodeMeta(m, metaLimit)
	got, err := decodeMeta(b)
	if err != nil || len(b) > metaLimit || got.Name != "a" || got.Tag("r") != "" || got.Tag("k") != "v" {
		t.Fatalf("encodeMeta: %d bytes, %+v, %v; want the long tag dropped, the rest kept", len(b), got, err)
	}
}

// A peer of the previous release sends version 1: its relay and MCP fields
// come through as tags under their old keys, numbers in decimal.
func TestMetaDecodesVersion1(t *testing.T) {
	b := []byte(`{"n":"alice","c":1700000000000,"d":"billing expert","h":"box","r":"127.0.0.1:7","l":1,"s":true,"pv":"0.9","hm":3,"hn":1,"f":"why?","x":true,"t":true,"v":1}`)
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{Name: "alice", ClaimedAt: 1700000000000, Host: "box", Secure: true, Version: "0.9", Leaving: true, Transient: true,
		Tags: map[string]string{"d": "billing expert", "r": "127.0.0.1:7", "l": "1", "hm": "3", "hn": "1", "f": "why?"}}
	if !got.equal(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Zero values were omitted in version 1, and stay absent.
	got, err = decodeMeta([]byte(`{"n":"bob","l":0,"hm":0,"v":1}`))
	if err != nil || got.Tags != nil {
		t.Fatalf("got %+v, %v; want no tags", got, err)
	}
}

func TestMetaRejects(t *testing.T) {
	for name, in := range map[string]string{
		"newer version":          `{"v":3,"n":"a"}`,
		"upper case":             `{"v":2,"n":"Alice"}`,
		"bad characters":         `{"v":2,"n":"a b"}`,
		"v1 bad name":            `{"v":1,"n":"a b"}`,
		"v1 field of bad type":   `{"v":1,"l":"busy"}`,
		"tag key with a space":   `{"v":2,"g":{"a b":"x"}}`,
		"tag key too long":       `{"v":2,"g":{"` + strings.Repeat("k", MaxTagKeyLen+1) + `":"x"}}`,
		"tag value not a string": `{"v":2,"g":{"k":1}}`,
		"not json":               `n=alice`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeMeta([]byte(in)); err == nil {
				t.Fatalf("decodeMeta(%s) accepted", in)
			}
		})
	}
	for name, m := range map[string]Meta{
		"empty key":     {Tags: map[string]string{"": "x"}},
		"key with '='":  {Tags: map[string]string{"a=b": "x"}},
		"invalid UTF-8": {Tags: map[string]string{"k": "\xff"}},
	} {
		t.Run("check "+name, func(t *testing.T) {
			if err := m.check(); !errors.Is(err, ErrInvalidTag) {
				t.Fatalf("check: %v, want ErrInvalidTag", err)
			}
		})
	}
}
