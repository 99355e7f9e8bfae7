// Package keys turns a shared secret, or a per-user key file, into the per-purpose keys a peer
// uses: the memberlist gossip key, the relay frame HMAC key and the announceable mesh id.
//
// Guarantees: each key is derived with HKDF-SHA256 under its own "info" string, so knowing one
// key (for example the mesh id, which is announced in the clear over mDNS) reveals nothing about
// the others or about the secret. Secrets are never logged or printed: Keys formats itself
// without key bytes. Secret and key files that other users could read or write are refused with
// an error that says how to fix the permissions, never silently accepted or replaced. In open
// mode (no secret) LocalKeys creates one key file per user and state directory, atomically, so
// that peers started at the same moment all end up with the same key.
package keys
