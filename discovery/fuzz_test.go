package discovery

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeEntry feeds arbitrary bytes to the decoder of run-dir files, which any process of
// the user can write. It must never panic, and whatever it accepts must satisfy the checks
// readers rely on and survive a round trip.
func FuzzDecodeEntry(f *testing.F) {
	seeds := []string{
		`{"id":"01J9Z3","addr":"127.0.0.1:7946","control":"/run/user/1000/paf/01J9Z3.sock","name":"alice","pid":4242,"host":"box","started":"2026-01-02T03:04:05.123456789Z","v":1}`,
		`{"id":"p","addr":"[::1]:7946","control":"","pid":1,"host":"h","started":"2026-01-02T03:04:05+01:00","v":1,"extra":{"x":[1,2]}}`,
		`{"id":"p","addr":"127.0.0.1:7946","v":2}`,
		`{"id":"p","addr":"127.0.0.1:7946","v":0}`,
		`{"id":"../x","addr":"127.0.0.1:7946","v":1}`,
		`{"id":"p","addr":"127.0.0.1:0","v":1}`,
		`{"id":"p","addr":"127.0.0.1:7946","v":1} trailing`,
		`{"id":"p","addr":"127.0.0.1:7946","v":1e400}`,
		`{"id":"p","addr":"127.0.0.1:7946","started":"not a time","v":1}`,
		`{"id":"\u0000","addr":"a:1","v":1}`,
		`{"id":"p\xff","addr":"a:1","v":1}`,
		`null`,
		`[]`,
		``,
		`{"id":`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		if e.Version != entryVersion {
			t.Fatalf("accepted version %d", e.Version)
		}
		if err := checkID(e.ID); err != nil || strings.ContainsAny(e.ID, "/\x00") {
			t.Fatalf("accepted unsafe id %q", e.ID)
		}
		if err := checkHostPort(e.Addr); err != nil {
			t.Fatalf("accepted bad addr %q", e.Addr)
		}
		out, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		back, err := decodeEntry(out)
		if err != nil {
			t.Fatalf("decode of re-encoded %q: %v", out, err)
		}
		if !back.Started.Equal(e.Started) {
			t.Fatalf("started changed in round trip: %v -> %v", e.Started, back.Started)
		}
		back.Started = e.Started // compared above; the zone pointer may differ
		if back != e {
			t.Fatalf("round trip changed the entry: %+v -> %+v", e, back)
		}
	})
}

// FuzzParseSeeds checks that ParseSeeds never panics, that every accepted seed is a dialable
// host:port with a port in range, and that its output parses back to itself.
func FuzzParseSeeds(f *testing.F) {
	for _, s := range []string{
		"", "192.168.1.20:7946", "a:1, b:2 ,c:3", "[::1]:7946", "[fe80::1%eth0]:1", "host", ":1",
		"host:0", "host:70000", "host:abc", "::1:7946", "[foo]:1", "a:1,,b:2,", "a b:1", "\x00:1",
		"host:+1", "host:0001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seeds, err := ParseSeeds(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("multi-line error for %q: %q", s, err)
			}
			return
		}
		for _, seed := range seeds {
			host, port, err := net.SplitHostPort(seed)
			if err != nil || host == "" || strings.ContainsAny(seed, ", \t\n") {
				t.Fatalf("accepted bad seed %q from %q", seed, s)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("accepted port %q in %q", port, seed)
			}
		}
		again, err := ParseSeeds(strings.Join(seeds, ","))
		if err != nil || strings.Join(again, ",") != strings.Join(seeds, ",") {
			t.Fatalf("output %q parses to %q, %v", seeds, again, err)
		}
	})
}
