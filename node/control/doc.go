// Package control is the local control protocol of a paf peer: how the shell
// commands (status, send, check, listen, the hook) act through a live peer
// on this machine instead of joining the mesh themselves, as tailscale's
// LocalAPI does for its CLI.
//
// The transport is a Unix socket in the run dir, created with mode 0600 in a
// directory of mode 0700, so only this user reaches it. A connection carries
// one JSON Request and one JSON Response. Every request names the protocol
// Version; a peer refuses another version with an error that says so. A
// request is bounded (MaxRequest), and the server reads it within a deadline.
// After its request the client sends nothing: when its side closes, the
// server cancels the operation in progress (a `listen` interrupted with
// Ctrl-C stops waiting at once).
//
// Guarantees: check, listen and watch never mark messages read; the client does
// that with a separate ack once it has shown them, so a client killed in
// between loses nothing. Server.Close is idempotent, waits for every
// connection in progress and removes the socket.
//
// The server calls into a Handler (the running peer, implemented by package
// node), so this package depends on no peer code: node imports control,
// never the reverse.
package control
