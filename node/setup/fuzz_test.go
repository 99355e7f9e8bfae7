package setup

import (
	"bytes"
	"testing"
)

// Whatever a config.toml holds, editCodex either refuses it or returns a
// file that parses, holds the entry it wanted, keeps every line outside the
// entry's owned keys, and that a second edit leaves alone.
func FuzzEditCodex(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("model = \"o3\"\n[mcp_servers.paf]\ncommand = \"x\" # c\nargs = [\n\"mcp\",\n]\n[mcp_servers.paf.env]\nA = \"b\"\n"))
	f.Add([]byte("[mcp_servers.'paf']\nenv_vars = [\"X\"]"))
	f.Add([]byte("mcp_servers.paf.command = \"x\"\n"))
	f.Add([]byte("[[mcp_servers]]\n"))
	const exe = "/opt/paf peer/paf-peer"
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed, err := editCodex(in, exe)
		if err != nil {
			return
		}
		got, err := readCodex(out)
		if err != nil || got == nil || got.Command != exe || len(got.Args) == 0 || got.Args[0] != "mcp" {
			t.Fatalf("edited file: %+v %v\n%s", got, err, out)
		}
		if !changed && !bytes.Equal(out, in) {
			t.Fatal("unchanged, but the bytes differ")
		}
		again, changed2, err := editCodex(out, exe)
		if err != nil || changed2 || !bytes.Equal(again, out) {
			t.Fatalf("second edit: changed=%v %v", changed2, err)
		}
	})
}

// The ordered JSON object re-encodes to what it parsed, as far as JSON says.
func FuzzParseObject(f *testing.F) {
	f.Add([]byte(`{"b": 1, "a": [true, null, "x"], "c": {"d": 1e400}}`))
	f.Add([]byte(`{"a": 1, "a": 2}`))
	f.Add([]byte(` `))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := parseObject(in)
		if err != nil {
			return
		}
		enc, err := o.encode()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		o2, err := parseObject(enc)
		if err != nil || len(o2.keys) != len(o.keys) {
			t.Fatalf("re-parse %v: %d keys, then %d\n%s", err, len(o.keys), len(o2.keys), enc)
		}
		for i, k := range o.keys {
			if o2.keys[i] != k {
				t.Fatalf("key order: %q, then %q", o.keys, o2.keys)
			}
		}
	})
}
