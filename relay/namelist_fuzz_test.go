package relay

import (
	"bytes"
	"errors"
	"testing"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

func FuzzDecodeNameList(f *testing.F) {
	f.Add(appendNameList(nil, wire.ReqCount, "bob", []string{"01A", "01B"}))
	f.Add(appendNameList(nil, wire.ReqCount, "bob", nil))
	f.Add([]byte{1, 3, 0, 3, 'B', 'O', 'B', 0, 0})
	f.Add([]byte{1, 3, 0, 1, 'b', 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range []byte{wire.ReqCount} {
			name, ids, err := decodeNameList(b, typ)
			if err != nil {
				if !errors.Is(err, wire.ErrBadMessage) {
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
