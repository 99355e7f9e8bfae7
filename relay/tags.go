package relay

import (
	"context"
	"strconv"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// The mesh tags the relay announces. The keys are those of the fields the
// previous metadata version carried, so a peer of the previous release
// reads the same (mesh decodes its fields into these tags).
const (
	TagAddr      = "r"  // host:port of the peer's relay listener
	TagHeld      = "hm" // messages the peer holds for absent names, decimal
	TagHeldNames = "hn" // how many names those are for, decimal
)

// SetMetaAddr announces addr as the peer's relay address in m.
func SetMetaAddr(m *mesh.Meta, addr string) { m.SetTag(TagAddr, addr) }

// MetaAddr is the relay address a peer announces, "" for none (a peer that
// has not started its relay yet: it cannot take messages).
func MetaAddr(m mesh.Meta) string { return m.Tag(TagAddr) }

// SetMetaHeld announces how many messages the peer holds for absent names,
// and for how many names. Zero removes the tags.
func SetMetaHeld(m *mesh.Meta, msgs, names int) {
	m.SetTag(TagHeld, count(msgs))
	m.SetTag(TagHeldNames, count(names))
}

// MetaHeld is what a peer announces with SetMetaHeld; a missing or malformed
// tag reads as 0.
func MetaHeld(m mesh.Meta) (msgs, names int) {
	return parseCount(m.Tag(TagHeld)), parseCount(m.Tag(TagHeldNames))
}

// metaSetter is what a Directory may also do (mesh.Peer does): change this peer's own
// metadata. A holder whose Directory can announces what it holds itself (announceHeld), so
// that Collect, which asks the peers that announce holding, never depends on its caller's
// wiring.
type metaSetter interface {
	SetMeta(ctx context.Context, update func(*mesh.Meta)) error
}

// announceHeld announces (SetMetaHeld) how many messages this holder keeps, when that
// changed since it last did. Called by holdLoop alone, which runs at once when a message is
// stored here (kickHolding): a new holding is on its way to the mesh within a gossip round
// or two, which is the window collectFrom's comment is about.
func (r *Relay) announceHeld() {
	ms, ok := r.dir.(metaSetter)
	if !ok {
		return
	}
	msgs, names := r.held.Totals()
	if msgs == r.lastHeld[0] && names == r.lastHeld[1] {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ms.SetMeta(ctx, func(m *mesh.Meta) { SetMetaHeld(m, msgs, names) }); err != nil {
		r.log.Debug("announce the messages held", "err", err)
		return // tried again at the next round
	}
	r.lastHeld = [2]int{msgs, names}
}

func count(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func parseCount(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
