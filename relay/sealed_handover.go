package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// forIdentity splits recs into those that may go to a peer of identity fp (unsealed, or
// sealed to fp) and those sealed to another identity, which stay with their holders until a
// peer of that identity holds the name again, or they expire (SPEC section 7).
func forIdentity(recs []store.HeldRecord, fp string) (mine, others []store.HeldRecord) {
	for _, rec := range recs {
		if rec.Msg.SealedTo == "" || rec.Msg.SealedTo == fp {
			mine = append(mine, rec)
		} else {
			others = append(others, rec)
		}
	}
	return mine, others
}

// heldFor is how many of the messages held here for name a peer of identity fp can be handed.
func (r *Relay) heldFor(name, fp string) int {
	n := r.HeldCount(name)
	if n == 0 {
		return 0
	}
	recs, err := r.held.List(name)
	if err != nil {
		return n
	}
	mine, _ := forIdentity(recs, fp)
	return len(mine)
}

// tellKept tells the peer now holding name (route) that kept, messages held here for name,
// are sealed to another identity, a previous holder of the name, and so stay here. The
// notice's id is the same at every holder and for every round (noticeID), so the recipient
// sees it once; this holder sends it once per recipient peer.
func (r *Relay) tellKept(name string, route mesh.Route, kept []store.HeldRecord) {
	id := noticeID("K"+route.Owner.ID, kept[0].Msg.ID)
	if _, told := r.told.Get(id); told {
		return
	}
	r.told.Add(id, struct{}{})
	prev := map[string]bool{}
	for _, rec := range kept {
		prev[rec.Msg.SealedTo] = true
	}
	var who string
	for fp := range prev {
		who = fp
		break
	}
	if len(prev) > 1 {
		who = fmt.Sprintf("%d other identities", len(prev))
	} else {
		who = "identity " + who
	}
	text := fmt.Sprintf("%d stored message(s) for %s are kept for a previous holder of the name, %s: they are sealed to it, so they are not handed to this session (identity %s). They stay with their holders until that identity holds %s again, or they expire (the first on %s).",
		len(kept), name, who, fpOf(route.Owner.ID), name, kept[0].Expires.UTC().Format(time.RFC3339))
	notice := &Message{ID: id, From: name, To: route.Name, Kind: KindSystem, SentAt: r.cfg.Now().Truncate(time.Millisecond), Body: text}
	wire.SignMessage(notice, r.cfg.Identity)
	r.log.Info("stored messages kept for the previous holder's identity; the name's new holder is told", "name", name, "count", len(kept), "holder", route.Owner.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.deliverTo(ctx, route.Owner, notice); err != nil {
		r.told.Remove(id) // try again next round
		r.log.Debug("notice of kept messages", "to", route.Name, "err", err)
	}
}

func fpOf(peerID string) string {
	fp, _ := keys.PeerIDFingerprint(peerID)
	return fp
}
