// Package owner answers "does this belong to the user running us?" for the
// local rendezvous: files and directories (by their owner uid and mode) and
// the process at the other end of a unix socket (by its credentials:
// SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS and the BSDs). Another local
// user is the first attacker of SPEC section 7: what they planted in a shared
// directory, or a socket they listen on, must be refused, never trusted.
package owner
