package owner

import (
	"fmt"
	"net"
)

// PeerUID returns the user id of the process at the other end of c, a unix
// socket connection, as the kernel recorded it at connect (peerUID: per OS).
func PeerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid uint32
	var serr error
	if err := raw.Control(func(fd uintptr) { uid, serr = peerUID(int(fd)) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("%s: %w", peerCredName, serr)
	}
	return uid, nil
}

// CheckPeer returns nil when the process at the other end of c runs as this
// user, and otherwise an error wrapping ErrNotOwned.
func CheckPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("a %T is not a unix socket connection: %w", c, ErrNotOwned)
	}
	uid, err := PeerUID(uc)
	if err != nil {
		return fmt.Errorf("cannot read the peer's credentials: %v: %w", err, ErrNotOwned)
	}
	if uid != Me() {
		return fmt.Errorf("the process at the other end runs as uid %d, not as you (uid %d): %w", uid, Me(), ErrNotOwned)
	}
	return nil
}
