// Package mesh is the membership layer of paf-mesh: which peers are alive, where
// they can be reached, and which peer holds which name.
//
// It wraps hashicorp/memberlist. Every peer is a memberlist node whose node name
// is a random peer id; its node metadata carries the name it holds, a
// description, the host, its relay address and a few flags (see Meta). Names are
// therefore gossiped with membership itself and need no separate protocol:
//
//   - Uniqueness: when two live peers claim one name, every peer picks the same
//     owner with the same rule (earliest claim time, then lowest peer id), so the
//     mesh converges on one owner without a leader; the loser drops the name and
//     its Peer emits EventNameLost.
//   - Release: a name whose owner leaves is free at once; a name whose owner
//     fails is free after Config.NameGrace, so a flapping peer keeps it.
//   - Rename: the old name forwards to the new one for Config.ForwardTTL. The
//     forwarding table is replicated to every peer (gossip broadcasts that each
//     receiver re-gossips once, plus memberlist push/pull for anti-entropy) and
//     persisted by every peer, so it survives the restart of any single peer.
//   - Flood resistance: memberlist's TCP listener is wrapped (guard.go) so that
//     inbound streams, which memberlist authenticates only after reading them
//     whole, are bounded per source address and in total, in count, bytes and
//     time, with the oldest dropped first.
//
// Lock order: memberlist calls into the delegates with its own locks held, and
// the delegates take Peer.mu. Peer never calls memberlist while holding mu.
package mesh
