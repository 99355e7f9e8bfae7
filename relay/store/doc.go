// Package store keeps a peer's messages on disk: the inbox of each name it holds (an
// append-only log of unread messages with group commit, and a bbolt file of the ids already
// received, for de-duplication), the bodies of large messages saved to their own files, and
// the messages it holds for names that are offline (held.db), and the messages it sent that are
// not confirmed yet (its outbox, outbox/<peer id>.db, which another peer of the state dir takes
// over when its peer is gone). It has no network code.
//
// Guarantees: a message is acknowledged (Inbox.Add's done) only once it is on disk (fdatasync),
// and a retry of a message already received is acknowledged again without being stored twice,
// for as long as its id is remembered (31 days, longer than a held message lives). Messages
// are read back in arrival order, each sender's in send order, and a message read (Take,
// Remove) is recorded on disk before it is returned, so it is shown once. A crash at any
// point loses no acknowledged message: a torn record at the end of a log is dropped at the
// next open, and a checksummed record that fails to decode is reported, never guessed at.
// Every inbox record read from disk is validated as a message from the network would be
// (held messages are trusted as this peer's own state). Configuration:
// Config (inboxes) and OpenHeld's arguments (held messages).
package store
