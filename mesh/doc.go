// Package mesh is the membership layer of paf-mesh: which peers are alive, where
// they can be reached, and which peer holds which name.
//
// It wraps hashicorp/memberlist. Every peer is a memberlist node whose node name
// is a random peer id; its node metadata (Meta, at most 512 bytes) carries the
// name it holds with its claim time, the host, secure or open mode, the software
// version, two flags (leaving, transient), and opaque tags that upper layers set
// and read (serf's model): the relay announces its address and held-message
// counts there, the MCP server the session's description and presence. The mesh
// never interprets a tag; it only checks keys, UTF-8 and the size cap, and
// shortens the free-text tags a caller lists in Meta.Shorten when the metadata
// would not fit. Names are gossiped with membership itself and need no separate
// protocol:
//
//   - Uniqueness is eventual, not a lock: a name is unique among live peers once
//     gossip has spread the claims. Claim refuses a name that this peer sees held;
//     two peers that claim one name within a gossip round (or in two meshes that
//     later merge) may both succeed. Every peer then ranks the claims with the
//     same rule on the same gossiped metadata (earliest claim time, then lowest
//     peer id), so all converge on one owner without a leader; the loser drops
//     the name and its Peer emits EventNameLost. Claim times are wall-clock
//     milliseconds of the claimant: skewed clocks change who wins, not whether
//     the peers agree.
//   - A suspect owner still holds its name.
//   - Release: a name whose owner leaves gracefully (Close) is free at once. A
//     name whose owner fails stays reserved for Config.NameGrace after it is
//     declared dead, so a peer wrongly declared dead refutes and keeps it; a
//     claim meanwhile fails with a NameTakenError saying when it is released.
//     Peers pass their reservations on in push/pull, so a peer that joins during
//     the grace period respects them too. The exception: a peer that already
//     holds the name when it learns of an older reservation keeps it; the
//     reservation lapses and the others then agree.
//   - Rename: the old name forwards to the new one for Config.ForwardTTL, and a
//     live owner of a name always beats a forward. The forwarding table is
//     replicated to every peer (gossip broadcasts that each receiver re-gossips
//     once, plus memberlist push/pull for anti-entropy) and persisted by every
//     peer, so it survives the restart of any single peer.
//   - Flood resistance: memberlist's TCP listener is wrapped (guard.go) so that
//     inbound streams, which memberlist authenticates only after reading them
//     whole, are bounded per source address and in total, in count, bytes and
//     time, with the oldest dropped first.
//
// Metadata is encoded as version 2; version 1 (the previous release, whose relay
// and MCP fields were fields of Meta) is still decoded, those fields becoming tags
// under their old keys. A version 1 peer cannot read version 2 metadata.
//
// Lock order: memberlist calls into the delegates with its own locks held, and
// the delegates take Peer.mu. Peer never calls memberlist while holding mu.
// Peer.announceMu (serialising metadata updates) is taken without mu held.
package mesh
