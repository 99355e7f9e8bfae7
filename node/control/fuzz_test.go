package control

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"op":"status"}`))
	f.Add([]byte(`{"v":1,"op":"send","as":"alice","to":"bob","message":"hi"}`))
	f.Add([]byte(`{"v":2,"op":"status"}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"op":"ack","ids":["a","b"]}`))
	f.Add([]byte(`{"v":1,"op":"watch","as":"bob","ids":["01J0000000000000000000000A"],"timeout":30}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if req.V != Version || req.Op == "" {
			t.Fatalf("accepted %+v", req)
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
	})
}
