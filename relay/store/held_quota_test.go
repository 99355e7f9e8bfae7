package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// quotaMsg is message i for name, with a body of fixed length so that every such message
// is charged the same.
func quotaMsg(i int, name string) *wire.Message {
	m := heldFor(i, name)
	m.Body = strings.Repeat("x", 500)
	return m
}

// chargeOf is what Put charges m from src at now.
func chargeOf(t *testing.T, m *wire.Message, now time.Time, src string) int64 {
	t.Helper()
	rec, err := encodeHeld(m, now, time.Hour, src)
	if err != nil {
		t.Fatal(err)
	}
	return recordSize([]byte(m.ID), rec)
}

// Each limit takes a message that brings its usage exactly to the limit and refuses one
// that would pass it by a byte (or, for the count, one message more), with ErrQuota and a
// text naming the limit; what the limit does not cover is still taken; a retry of a message
// already held is not refused; dropping makes room again; and the usage is the same after
// reopening the file.
func TestHeldLimitsAtTheEdge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	size := chargeOf(t, quotaMsg(1, "n0"), now, "192.0.2.1")
	type put struct {
		name, src string
	}
	tests := map[string]struct {
		lim func(slack int64) HeldLimits // the limit, three messages' worth plus slack bytes
		// fill are the three puts that reach the limit, next the one refused past it,
		// other one the limit does not cover.
		fill       [3]put
		next       put
		other      *put
		wantInText string
	}{
		"bytes per name": {
			lim:        func(s int64) HeldLimits { return HeldLimits{NameBytes: 3*size + s} },
			fill:       [3]put{{"n0", "192.0.2.1"}, {"n0", "192.0.2.2"}, {"n0", "192.0.2.3"}},
			next:       put{"n0", "192.0.2.4"},
			other:      &put{"n1", "192.0.2.1"},
			wantInText: "for one name",
		},
		"messages per name": {
			lim:        func(s int64) HeldLimits { return HeldLimits{NameMessages: 3 + int(s)} },
			fill:       [3]put{{"n0", "192.0.2.1"}, {"n0", "192.0.2.2"}, {"n0", "192.0.2.3"}},
			next:       put{"n0", "192.0.2.4"},
			other:      &put{"n1", "192.0.2.1"},
			wantInText: "3 messages are already waiting",
		},
		"bytes per address": {
			lim:        func(s int64) HeldLimits { return HeldLimits{AddrBytes: 3*size + s} },
			fill:       [3]put{{"n0", "192.0.2.1"}, {"n1", "192.0.2.1"}, {"n2", "192.0.2.1"}},
			next:       put{"n3", "192.0.2.1"},
			other:      &put{"n3", "192.0.2.2"},
			wantInText: "for one sending address",
		},
		// Identity keys of the addresses' length, so that every record is the same size.
		"bytes per sender": {
			lim:        func(s int64) HeldLimits { return HeldLimits{SenderBytes: 3*size + s, AddrBytes: 3*size + s} },
			fill:       [3]put{{"n0", "id:aaaaaa"}, {"n1", "id:aaaaaa"}, {"n2", "id:aaaaaa"}},
			next:       put{"n3", "id:aaaaaa"},
			other:      &put{"n3", "id:bbbbbb"},
			wantInText: "for one sender",
		},
		"bytes in total": {
			lim:        func(s int64) HeldLimits { return HeldLimits{Bytes: 3*size + s} },
			fill:       [3]put{{"n0", "192.0.2.1"}, {"n1", "192.0.2.2"}, {"n2", "192.0.2.3"}},
			next:       put{"n3", "192.0.2.4"},
			wantInText: "its total",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			h := openTestHeld(t, dir, func() time.Time { return now })
			defer func() { h.Close() }()
			lim := tc.lim(0)
			for i, p := range tc.fill {
				if added, err := h.Put(quotaMsg(i+1, p.name), time.Hour, p.src, lim); err != nil || !added {
					t.Fatalf("put %d of 3, up to the limit: added %v, %v", i+1, added, err)
				}
			}
			if u := h.Usage(); u.Bytes != 3*size {
				t.Fatalf("usage %d bytes, want %d (3 × %d)", u.Bytes, 3*size, size)
			}
			// One past: the fourth would pass the limit.
			added, err := h.Put(quotaMsg(4, tc.next.name), time.Hour, tc.next.src, lim)
			if !errors.Is(err, ErrQuota) || added || !strings.Contains(err.Error(), tc.wantInText) {
				t.Fatalf("past the limit: added %v, %v; want ErrQuota saying %q", added, err, tc.wantInText)
			}
			if !strings.Contains(err.Error(), "send ") {
				t.Errorf("the refusal does not say what to do: %v", err)
			}
			// A retry of a message held is not a new message.
			if added, err := h.Put(quotaMsg(3, tc.fill[2].name), time.Hour, tc.fill[2].src, lim); err != nil || added {
				t.Fatalf("retry at the limit: added %v, %v; want kept once, no error", added, err)
			}
			if tc.other != nil {
				if _, err := h.Put(quotaMsg(5, tc.other.name), time.Hour, tc.other.src, lim); err != nil {
					t.Fatalf("a message the limit does not cover: %v", err)
				}
				if err := h.Drop(tc.other.name, []string{quotaMsg(5, "").ID}); err != nil {
					t.Fatal(err)
				}
			}
			// The same usage after reopening (counted from the file, sources included).
			before := h.Usage()
			h.Close()
			h = openTestHeld(t, dir, func() time.Time { return now })
			if after := h.Usage(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("usage after reopening %+v, want %+v", after, before)
			}
			if _, err := h.Put(quotaMsg(4, tc.next.name), time.Hour, tc.next.src, lim); !errors.Is(err, ErrQuota) {
				t.Fatalf("past the limit after reopening: %v, want ErrQuota", err)
			}
			// Dropping one makes room for one.
			if err := h.Drop(tc.fill[0].name, []string{quotaMsg(1, "").ID}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Put(quotaMsg(4, tc.next.name), time.Hour, tc.next.src, lim); err != nil {
				t.Fatalf("after a drop made room: %v", err)
			}
		})
		// With a limit one byte (for the count, one message) lower, the third does not fit:
		// the edge is exact.
		t.Run(name+"/one short", func(t *testing.T) {
			h := openTestHeld(t, t.TempDir(), func() time.Time { return now })
			defer h.Close()
			lim := tc.lim(-1)
			for i, p := range tc.fill[:2] {
				if _, err := h.Put(quotaMsg(i+1, p.name), time.Hour, p.src, lim); err != nil {
					t.Fatalf("put %d: %v", i+1, err)
				}
			}
			if _, err := h.Put(quotaMsg(3, tc.fill[2].name), time.Hour, tc.fill[2].src, lim); !errors.Is(err, ErrQuota) {
				t.Fatalf("the third, one past a limit of %+v: %v, want ErrQuota", lim, err)
			}
		})
	}
}

// A record charged to an identity and an address counts against both, and dropping it frees
// both.
func TestHeldChargesEveryKey(t *testing.T) {
	h, err := OpenHeld(t.TempDir(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m := quotaMsg(1, "n0")
	if _, err := h.Put(m, time.Hour, "id:aaaaaa 192.0.2.1", HeldLimits{}); err != nil {
		t.Fatal(err)
	}
	u := h.Usage()
	if u.Sources["id:aaaaaa"] != u.Bytes || u.Sources["192.0.2.1"] != u.Bytes || u.Bytes == 0 {
		t.Fatalf("usage %+v: want the record charged to both keys", u)
	}
	if err := h.Drop("n0", []string{m.ID}); err != nil {
		t.Fatal(err)
	}
	if u := h.Usage(); len(u.Sources) != 0 || u.Bytes != 0 {
		t.Fatalf("usage after the drop %+v, want nothing", u)
	}
}
