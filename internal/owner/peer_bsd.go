//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package owner

import "golang.org/x/sys/unix"

const peerCredName = "LOCAL_PEERCRED"

func peerUID(fd int) (uint32, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}
