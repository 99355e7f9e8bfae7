package discovery

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseTXT(t *testing.T) {
	const mesh = "0123456789abcdef"
	tests := map[string]struct {
		txt     []string
		want    mdnsEntry
		wantErr string
	}{
		"ours":                {txt: []string{"id=peer1", "mesh=" + mesh, "v=0.1.0"}, want: mdnsEntry{PeerID: "peer1", MeshID: mesh, Version: "0.1.0"}},
		"no version":          {txt: []string{"mesh=" + mesh, "id=a"}, want: mdnsEntry{PeerID: "a", MeshID: mesh}},
		"keys ignore case":    {txt: []string{"ID=a", "Mesh=" + mesh, "V=1"}, want: mdnsEntry{PeerID: "a", MeshID: mesh, Version: "1"}},
		"first occurrence":    {txt: []string{"id=a", "id=b/c", "mesh=" + mesh, "mesh=x", "v=1", "v=bad value"}, want: mdnsEntry{PeerID: "a", MeshID: mesh, Version: "1"}},
		"unknown keys":        {txt: []string{"txtvers=1", "id=a", "x=\x00\xff", "mesh=" + mesh}, want: mdnsEntry{PeerID: "a", MeshID: mesh}},
		"boolean attributes":  {txt: []string{"id", "id=a", "mesh=" + mesh, "flag"}, want: mdnsEntry{PeerID: "a", MeshID: mesh}},
		"empty key":           {txt: []string{"=a", "id=a", "mesh=" + mesh}, want: mdnsEntry{PeerID: "a", MeshID: mesh}},
		"value with =":        {txt: []string{"id=a", "mesh=" + mesh, "v=1=2"}, wantErr: "version"},
		"empty version":       {txt: []string{"id=a", "mesh=" + mesh, "v="}, want: mdnsEntry{PeerID: "a", MeshID: mesh}},
		"nothing":             {txt: nil, wantErr: "no id and no mesh"},
		"empty strings":       {txt: []string{"", ""}, wantErr: "no id and no mesh"},
		"no id":               {txt: []string{"mesh=" + mesh}, wantErr: "no id"},
		"no mesh":             {txt: []string{"id=a"}, wantErr: "no mesh"},
		"empty id":            {txt: []string{"id=", "mesh=" + mesh}, wantErr: "empty peer id"},
		"id with dot":         {txt: []string{"id=a.b", "mesh=" + mesh}, wantErr: "peer id"},
		"id with NUL":         {txt: []string{"id=a\x00", "mesh=" + mesh}, wantErr: "peer id"},
		"id too long":         {txt: []string{"id=" + strings.Repeat("a", 64), "mesh=" + mesh}, wantErr: "longer than 63"},
		"id of 63":            {txt: []string{"id=" + strings.Repeat("a", 63), "mesh=" + mesh}, want: mdnsEntry{PeerID: strings.Repeat("a", 63), MeshID: mesh}},
		"mesh upper case":     {txt: []string{"id=a", "mesh=0123456789ABCDEF"}, wantErr: "lowercase hex"},
		"mesh short":          {txt: []string{"id=a", "mesh=0123"}, wantErr: "mesh id"},
		"mesh not hex":        {txt: []string{"id=a", "mesh=0123456789abcdeg"}, wantErr: "mesh id"},
		"version with space":  {txt: []string{"id=a", "mesh=" + mesh, "v=1 2"}, wantErr: "version"},
		"version too long":    {txt: []string{"id=a", "mesh=" + mesh, "v=" + strings.Repeat("1", 65)}, wantErr: "version longer"},
		"string over 255":     {txt: []string{"id=a", "mesh=" + mesh, "x=" + strings.Repeat("y", 254)}, wantErr: "more than 255"},
		"too many strings":    {txt: append([]string{"id=a", "mesh=" + mesh}, make([]string, maxTXTStrings)...), wantErr: "more than 32"},
		"exactly the maximum": {txt: append([]string{"id=a", "mesh=" + mesh}, make([]string, maxTXTStrings-2)...), want: mdnsEntry{PeerID: "a", MeshID: mesh}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseTXT(tc.txt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseTXT = %+v, %v; want an error mentioning %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseTXT = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseTXT feeds arbitrary TXT records, which come from anyone on the LAN, to parseTXT.
// The input is the record's strings joined by NUL bytes. parseTXT must never panic, whatever
// it accepts must pass the checks the announcer applied, and it must survive a round trip.
func FuzzParseTXT(f *testing.F) {
	const mesh = "0123456789abcdef"
	seeds := [][]string{
		{"id=peer1", "mesh=" + mesh, "v=0.1.0"},
		{"id=0123456789abcdef", "mesh=" + mesh},
		{"ID=a", "MESH=" + mesh, "V=1.2.3-rc.1+build"},
		{"id=a", "id=b", "mesh=" + mesh, "mesh=" + mesh},
		{"id", "mesh", "v", "=", "=x", ""},
		{"id=a.b", "mesh=" + mesh},
		{"id=a", "mesh=0123456789ABCDEF"},
		{"id=a", "mesh=" + mesh, "v=1 2"},
		{"id=\xff", "mesh=" + mesh},
		{"id=" + strings.Repeat("a", 64), "mesh=" + mesh},
		{"txtvers=1", "path=/", "id=a", "mesh=" + mesh},
		{},
	}
	for _, s := range seeds {
		f.Add([]byte(strings.Join(s, "\x00")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var txt []string
		if len(data) > 0 {
			for _, b := range bytes.Split(data, []byte{0}) {
				txt = append(txt, string(b))
			}
		}
		e, err := parseTXT(txt)
		if err != nil {
			return
		}
		if err := checkPeerID(e.PeerID); err != nil {
			t.Fatalf("accepted bad peer id %q: %v", e.PeerID, err)
		}
		if err := checkMeshID(e.MeshID); err != nil {
			t.Fatalf("accepted bad mesh id %q: %v", e.MeshID, err)
		}
		if err := checkVersion(e.Version); err != nil {
			t.Fatalf("accepted bad version %q: %v", e.Version, err)
		}
		back, err := parseTXT(txtRecord(e))
		if err != nil || back != e {
			t.Fatalf("round trip of %+v = %+v, %v", e, back, err)
		}
	})
}
