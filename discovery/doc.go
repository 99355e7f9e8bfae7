// Package discovery finds candidate addresses for the mesh to join.
//
// A [Source] yields [Candidate] addresses. This package does not poll: the node combines its
// sources into mesh.Config.Discover, which the mesh calls every DiscoverInterval (1 s in the
// local preset, 0.5 s in the LAN preset) and on demand, and joins the addresses of peers it
// does not know yet. Sources today:
//
//   - [Local]: a rendezvous directory (the "run dir") shared by all peers of one user on one
//     machine. Each peer advertises itself with an [Advert], a small JSON file named
//     <id>.json, and reads the others' files.
//   - [Static]: seed addresses from --join / PAF_JOIN, parsed by [ParseSeeds].
//   - [MDNS]: peers of the same mesh on the LAN, announced and browsed as _paf._tcp on
//     explicitly given interfaces only, with a mesh id in the TXT record (derived from the
//     secret's argon2id master key, see internal/keys) so that meshes with different secrets
//     ignore each other.
//
// [Multi] combines sources.
//
// # Liveness of local entries
//
// Liveness never depends on PIDs (they are recycled) or timestamps (clocks jump, processes
// stall). Instead every advertiser holds an advisory flock on its entry file for its whole
// life. The kernel drops that lock when the process dies, however it dies, so "the file is
// locked" means exactly "its owner is alive". An entry is written to a temp file in the same
// directory, locked, fsynced and only then renamed into place, and a rewrite ([Advert.Update])
// renames a new locked file over the old one before letting the old lock go, so a reader never
// sees a live peer's entry unlocked. Readers take a non-blocking shared lock: if they get it the
// owner is gone, and they delete the stale file after re-checking that the path still names the
// same file (a fresh replacement is never deleted). Corrupt entries and entries of a future
// format version are logged once at Warn and skipped, and removed when unlocked. Files that do
// not end in ".json" are ignored; crashed writers' temp files are swept once they are old.
//
// # Ownership
//
// The run dir must belong to the user and be private: NewLocal refuses a directory owned by
// someone else (or reached through another user's symbolic link) and makes one of ours that
// others can write private (0700). Entries owned by another user are skipped and never
// deleted, and [Local.ControlSocket] accepts an entry's control socket only at <dir>/<id>.sock
// and only as a socket owned by the user: what another local user planted is never trusted.
//
// The package imports no other package of this project but the helpers under internal/. Only [MDNS] starts goroutines (its
// browse loop; Close waits for them). Locking uses flock(2), so it builds on Unix systems only.
package discovery
