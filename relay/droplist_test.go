package relay

import (
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// A handover of more ids than one name list can count (uint16) is told in several lists,
// which together name every id once.
func TestDropListsSplitAtTheCountLimit(t *testing.T) {
	for _, n := range []int{1, maxDropIDs, maxDropIDs + 1, 2*maxDropIDs + 3} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = ulid.Make().String()
		}
		lists := dropLists("bob", ids)
		if want := (n + maxDropIDs - 1) / maxDropIDs; len(lists) != want {
			t.Fatalf("%d ids: %d lists, want %d", n, len(lists), want)
		}
		var got []string
		for _, l := range lists {
			name, part, err := decodeNameList(l, wire.ReqDrop)
			if err != nil || name != "bob" {
				t.Fatalf("%d ids: decode: %q %v", n, name, err)
			}
			got = append(got, part...)
		}
		if len(got) != n || got[0] != ids[0] || got[n-1] != ids[n-1] {
			t.Fatalf("%d ids: lists name %d", n, len(got))
		}
	}
}
