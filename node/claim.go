package node

import (
	"context"
	"errors"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Long-lived claims win over brief ones (issue 17 item 2). A brief peer (a
// shell command acting as a name for a moment) must never keep a serve or
// mcp peer from its name: `serve --name bob` started together with `check
// --as bob` used to exit "name taken", or lose a concurrent claim and run
// with no name. Now a long-lived peer that finds its name held by a brief
// peer announces that it wants it (tagWants) and waits; the brief peer sees
// that, gives the name up at once and finishes its command through the
// long-lived peer's control socket (Actor). A long-lived peer that loses a
// concurrent claim to a brief one takes the name back the same way.

// tagWants is the mesh tag a long-lived peer sets to the name it is waiting
// for while a brief peer holds it.
const tagWants = "w"

// claimRetry is how often a long-lived peer tries again for a name a brief
// peer holds: the brief peer gives it up as soon as it sees the want.
const claimRetry = 50 * time.Millisecond

// claimPatiently claims name, waiting up to ClaimPatience while its holder
// is a peer that failed or stopped answering; a holder that answers makes it
// fail at once, unless this peer is long-lived and the holder is a brief
// peer, which is asked to give the name up and waited for.
func (n *Node) claimPatiently(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, ClaimPatience)
	defer cancel()
	wanting := false
	defer func() {
		if wanting {
			n.setWants(context.Background(), "")
		}
	}()
	for {
		err := n.peer.ClaimWhenReleased(ctx, name)
		var nte *mesh.NameTakenError
		if n.cfg.Brief || !errors.As(err, &nte) || !n.transient(nte.Holder) {
			return err
		}
		if !wanting {
			wanting = true
			n.log.Info("a brief peer (a shell command) holds the name; asking it to give the name up", "name", nte.Name, "holder", nte.Holder)
			n.setWants(ctx, nte.Name)
		}
		t := time.NewTimer(claimRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// transient reports whether peer id is a brief peer.
func (n *Node) transient(id string) bool {
	m, ok := n.peer.Member(id)
	return ok && m.Meta.Transient
}

// setWants announces the name this long-lived peer waits for ("" for none).
func (n *Node) setWants(ctx context.Context, name string) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := n.peer.SetMeta(sctx, func(m *mesh.Meta) { m.SetTag(tagWants, name) }); err != nil {
		n.log.Debug("announce the name this peer waits for", "err", err)
	}
}

// reclaim takes back a name this long-lived peer lost to a brief peer that
// claimed it at the same moment. It reports the loss on Lost only if that
// fails.
func (n *Node) reclaim(ctx context.Context, e mesh.Event) {
	defer n.bg.Done()
	if err := n.claimPatiently(ctx, e.Name); err != nil {
		if ctx.Err() == nil {
			n.log.Error("could not take back our name from a brief peer", "name", e.Name, "err", err)
			n.reportLost(e)
		}
		return
	}
	n.log.Info("took our name back from a brief peer", "name", e.Name)
}

func (n *Node) reportLost(e mesh.Event) {
	select {
	case n.lost <- e:
	default:
	}
	n.lostMu.Lock()
	defer n.lostMu.Unlock()
	for ch := range n.lostSubs {
		select {
		case ch <- e:
		default:
		}
	}
}

// reclaims reports whether this peer takes back, by itself, the name e says it lost: a
// long-lived peer that lost it to a brief peer (a shell command) claiming at the same moment.
// Such a loss is not news for the session (Backend.Subscribe leaves it out); a failure to
// take the name back is (reportLost).
func (n *Node) reclaims(e mesh.Event) bool {
	return e.Type == mesh.EventNameLost && !n.cfg.Brief && n.transient(e.PeerID)
}

// yieldIfWanted is a brief peer's side: when a long-lived peer wants the
// name it holds (or has taken it in a concurrent claim), it gives the name
// up and tells its Actor (Yielded), which goes on through that peer.
func (n *Node) yieldIfWanted(e mesh.Event) {
	if !n.cfg.Brief {
		return
	}
	name := n.cfg.Name
	lost := e.Type == mesh.EventNameLost && e.Name == name
	if !lost {
		if n.peer.Name() != name {
			return
		}
		wanted := false
		for _, m := range n.peer.Members() {
			if !m.Self && !m.Meta.Transient && (m.State == mesh.MemberAlive || m.State == mesh.MemberSuspect) &&
				(m.Meta.Tag(tagWants) == name || m.Meta.Name == name) {
				wanted = true
				break
			}
		}
		if !wanted {
			return
		}
	}
	n.yieldOnce.Do(func() {
		n.log.Info("a long-lived peer wants this name; giving it up", "name", name)
		if !lost {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := n.peer.Release(ctx); err != nil {
				n.log.Debug("release", "err", err)
			}
			cancel()
		}
		_ = n.relay.CloseInbox(name) // the long-lived peer's process needs the file
		close(n.yielded)
	})
}

// Yielded is closed when this brief peer gave its name up to a long-lived
// peer that wants it.
func (n *Node) Yielded() <-chan struct{} { return n.yielded }
