package owner

import (
	"fmt"
	"net"
)

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
