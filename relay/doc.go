// Package relay carries messages directly between peers: frames, HMAC, connections, acks,
// de-duplication and store-and-forward.
//
// The wire unit is a length-prefixed frame (see Codec). Every frame is authenticated with
// HMAC-SHA256 under the mesh's relay key and carries its send time and a random nonce: a
// frame with a wrong MAC, an unknown version, a length over the maximum or a time outside the
// accepted clock-skew window is rejected with a sentinel error before its payload is used, and
// an oversize length is rejected before anything is allocated for it. Frames that open a
// connection are also checked against a ReplayGuard, so a captured handshake cannot be
// replayed within the window. Decoding never panics on any input (fuzzed).
//
// A Transport keeps one persistent connection per remote peer for its own requests
// (responses come back on it; the other side dials its own): a handshake binds the
// connection to the two peer ids and a session id, and every later frame carries that
// session id and a strictly increasing sequence number as its nonce, so a replayed,
// reordered or injected frame breaks the sequence and closes the connection. Requests are
// pipelined and handled in order per connection.
//
// A Relay sends Messages over it. A message is acknowledged only once the recipient's
// peer has it on disk (inbox.go, inboxlog.go: a per-name append-only log with group commit,
// and a bbolt file of ids already received), carries a ULID,
// and is de-duplicated at the recipient, so it is shown exactly once. Messages for names
// no live peer holds are kept by Config.Replicas holders and handed over when the name
// appears (holders.go, held.go).
package relay
