package mesh

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// Push/pull state: the object with reservations, and the bare forwarding
// table older peers send; invalid entries are dropped and counted.
func TestDecodePushState(t *testing.T) {
	fw := Forward{From: "a", To: "b", Expires: time.Unix(2e9, 0), Stamp: 1, Origin: "p"}
	old, _ := json.Marshal([]Forward{fw})
	st, bad, err := decodePushState(old)
	if err != nil || bad != 0 || len(st.Forwards) != 1 || st.Forwards[0].From != "a" || !st.Forwards[0].Expires.Equal(fw.Expires) || len(st.Reserved) != 0 {
		t.Fatalf("bare table: %+v bad %d err %v", st, bad, err)
	}
	r := reservation{Name: "ghost", ID: "dead1", Host: "h", ClaimedAt: 5, LeftMs: 1500}
	cur, _ := json.Marshal(pushState{Forwards: []Forward{fw, {From: "BAD", Origin: "p"}}, Reserved: []reservation{r,
		{Name: "x", ID: "d", LeftMs: 0}, {Name: "x", ID: "d", LeftMs: maxReservation.Milliseconds() + 1}, {Name: "Up", ID: "d", LeftMs: 5}, {Name: "x", LeftMs: 5}}})
	st, bad, err = decodePushState(cur)
	if err != nil || bad != 5 || len(st.Forwards) != 1 || len(st.Reserved) != 1 || st.Reserved[0] != r {
		t.Fatalf("state with reservations: %+v bad %d err %v; want 1 forward, 1 reservation, 5 dropped", st, bad, err)
	}
	for _, in := range []string{`{`, `"x"`, `{"f":{}}`, `{"r":[1]}`} {
		if _, _, err := decodePushState([]byte(in)); err == nil {
			t.Errorf("decodePushState(%s) accepted", in)
		}
	}
	if _, _, err := decodePushState(bytes.Repeat([]byte(" "), maxForwardState+1)); err == nil {
		t.Errorf("accepted a state over %d bytes", maxForwardState)
	}
}
