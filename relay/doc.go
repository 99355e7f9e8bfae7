// Package relay delivers messages between the agents of a paf-mesh: Send to the peer that
// holds the recipient's name (following forwards), acknowledgements, de-duplication, per-sender
// order, conversations as message kinds, and store-and-forward for names no live peer holds.
//
// A message is acknowledged only once the recipient's peer has it on disk (package store),
// carries a ULID, and is de-duplicated at the recipient, so it is shown exactly once; one
// sender's messages are shown in send order. Messages for names no live peer holds are kept by
// Config.Replicas holders, chosen by rendezvous hashing, and handed over in send order when the
// name appears (holders.go); they expire after Config.StoreTTL and their senders are told.
// Send never answers an error once a message may have left this process: it is delivered,
// stored, or queued in this peer's outbox (outbox.go, on disk in the state dir) and retried
// with the same id, in order, until one of the first two; a peer whose clock is outside the
// recipient's window is told so by its result (clock.go).
// Every refusal crosses the wire with a code (package wire's Code) and the sender decides by
// the code (retry, store, give up), never by the text. Frames, connections, the transport and
// the Message encoding are package wire's; inboxes and held messages are package store's.
package relay
