// Package node is one running paf peer: it wires discovery (run dir, seeds,
// mDNS), mesh membership, the relay and the control socket together, and is
// the only package besides cmd/paf-peer that imports them all.
//
// New starts a peer from a Config and returns once it has joined the mesh,
// claimed its name (waiting up to ClaimPatience for a name still held by a
// peer that stopped answering), serves its control socket and is advertised
// in the run dir. Close leaves the mesh first, so senders stop routing to it,
// then lets the relay finish what is in flight; it is idempotent and waits
// for every goroutine the peer started.
//
// What a peer guarantees beyond its parts:
//   - Orphan adoption: a peer that is not Brief takes over the held messages
//     of peers that died (their state slots are unlocked): at start, then
//     often for a while after its start and after each peer it sees leave or
//     fail (a slot is freed a moment after its peer left), and otherwise
//     every minute, so messages survive every session closing, a total
//     restart included.
//   - Long-lived claims win: a peer that is not Brief never loses its name
//     to a Brief one (claim.go); the Brief peer gives the name up and its
//     Actor goes on through the long-lived peer.
//   - A lost name (two long-lived peers claimed it at the same moment and
//     the other won) closes the inbox file at once and is reported on Lost.
//   - The rendezvous entry in the run dir always names the name held.
//
// Above that sit the three ways a peer is used: Backend is the MCP server's
// view of a session's peer (started in the background so the MCP client is
// answered at once), Actor is a shell command acting as a name (through the
// live local peer that holds it, over package control, or as a Brief peer),
// and Status is the model of `paf-peer status` (printing is the CLI's).
//
// Every default is a named constant in config.go; cmd/paf-peer's flag help
// and environment parsing read them, so there is one source for each.
package node
