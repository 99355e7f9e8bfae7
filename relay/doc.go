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
package relay
