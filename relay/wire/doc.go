// Package wire is how paf-mesh peers talk to each other directly: authenticated frames,
// connections and the request/response transport over them, and the Message that the relay
// carries with its binary encoding and validation. It stores nothing.
//
// The wire unit is a length-prefixed frame (see Codec). Every frame is authenticated with
// HMAC-SHA256 under the mesh's relay key and carries its send time and a random nonce: a
// frame with a wrong MAC, an unknown version, a length over the maximum or a time outside the
// accepted clock-skew window is rejected with a sentinel error before its payload is used, and
// an oversize length is rejected before anything is allocated for it. Frames that open a
// connection are also checked against a ReplayGuard, so a captured handshake cannot be
// replayed within the window.
//
// A Transport keeps one persistent connection per remote peer for its own requests
// (responses come back on it; the other side dials its own): a handshake binds the
// connection to the two peer ids and a session id, and every later frame carries that
// session id and a strictly increasing sequence number as its nonce, so a replayed,
// reordered or injected frame breaks the sequence and closes the connection. Requests are
// pipelined and handled in order per connection. A request that fails at the remote end comes
// back as a *RemoteError with a Code (sent as a byte beside the text), and callers decide by
// the Code, never by the text.
//
// Before a connection authenticates (SPEC section 7, "Limits before authentication"), a peer
// reads no more than the largest hello from it, allocates no more than that for it, holds it
// for at most HandshakeTimeout, and holds at most 64 such connections per source address and
// 256 in all, dropping the oldest first (internal/connlimit), so that a flood from one host or
// many cannot keep other peers from connecting.
//
// Guarantees: no decoder of network input (frames, hello and ack, requests and responses,
// messages) panics on any input (each is fuzzed), and each refuses a version, type, flag or
// code it does not know. The Transport is safe for concurrent use, and its Close waits for
// every goroutine it started. Configuration: CodecConfig and Config, whose zero
// fields mean the Default* constants.
package wire
