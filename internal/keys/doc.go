// Package keys turns a shared secret, or a per-user key file, into the per-purpose keys a peer
// uses: the memberlist gossip key, the relay frame HMAC key and the announceable mesh id.
//
// Guarantees: a secret is first stretched with argon2id (64 MiB, 3 passes) into a master key,
// and each key is derived from the master key with HKDF-SHA256 under its own "info" string. So
// knowing one key (for example the mesh id, which is announced in the clear over mDNS) reveals
// nothing about the others, and testing a guessed secret against anything a peer sends or
// announces costs one memory-hard derivation. Peers cache the master key per user
// (FromSecretCached), in a private file that is never served for another secret. Secrets are
// never logged or printed: Keys formats itself without key bytes. Secret, cache and key files
// that other users could read or write are refused with an error that says how to fix the
// permissions, never silently accepted or replaced. In open mode (no secret) LocalKeys creates
// one random key file per user and state directory, atomically, so that peers started at the
// same moment all end up with the same key; a random key needs no stretching.
package keys
