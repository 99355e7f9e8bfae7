// Package statedir gives each peer its own slot in the state directory shared by all peers of
// one user on one machine (PAF_STATE_DIR), and writes files there crash-safely.
//
// Layout: root/peers/<slot>/ holds one peer's state (held messages, forwards, inbox), and
// root/peers/<slot>/lock is flocked by the peer using the slot for as long as it runs. The
// kernel drops the lock when the process dies, however it dies, so a free lock means exactly
// "nobody uses this slot". [Open] prefers a free existing slot, which is how a new peer adopts
// what a dead one left ("every session closed, a new one opened days later"); a running peer
// can also adopt other dead peers' slots with [Orphans] and [LockOrphan].
//
// Guarantees: two live peers never hold the same slot; a new slot becomes visible only with its
// lock already taken (it is built under a dot name and renamed into place), so no other peer can
// grab it first; a lock taken on a file that was meanwhile unlinked is detected and not
// trusted. A directory under peers/ without a lock file, or whose name starts with '.', is not
// a slot. To delete a slot, hold its lock, unlink the lock file first and then the rest, so
// that nobody can take the slot while it is half gone.
//
// The package starts no goroutines and uses flock(2), so it builds on Unix systems only.
package statedir
