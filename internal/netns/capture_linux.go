package netns

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	// captureBuf is the socket's receive buffer: room for seconds of a lab's traffic if the
	// reader falls behind on a loaded machine, so the kernel drops nothing.
	captureBuf = 32 << 20
	// captureFrameMax is the largest frame read: offloaded TCP packets on a veth reach 64 KiB
	// plus headers before they are split, and they are captured unsplit.
	captureFrameMax = 1 << 17
	// capturePoll is how long one read waits before the reader looks whether it was stopped.
	capturePollMicros = 50_000
)

// StartCapture starts recording every frame entering the lab's bridge (see [Capture]): an
// AF_PACKET socket in the bridge namespace, taking each frame at the bridge port it came in by
// (frames leaving by the other ports, and the bridge's own copies, are the same frames again
// and are skipped). It needs what the lab needs (root); [Capture.Stop] ends it, and closing
// the lab does not.
func (l *Lab) StartCapture() (*Capture, error) {
	var (
		fd     = -1
		ports  = map[int]string{}
		bridge int
	)
	err := runIn(l.bridge, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			ports[i.Index] = i.Name
			if i.Name == bridgeName {
				bridge = i.Index
			}
		}
		// Every protocol, on every interface of the bridge namespace.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns: capture in %s: %w", l.bridge, err)
	}
	fail := func(what string, err error) (*Capture, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("netns: capture in %s: %s: %w", l.bridge, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuf); err != nil {
		return fail("receive buffer", err)
	}
	tv := unix.Timeval{Usec: capturePollMicros}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}
	// Reading the statistics resets them: start counting drops from here.
	if _, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
		return fail("statistics", err)
	}

	c := &Capture{}
	var (
		stopping atomic.Bool
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, captureFrameMax)
		for !stopping.Load() {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
			switch {
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				c.mu.Lock()
				c.err = fmt.Errorf("netns: capture: read: %w", err)
				c.mu.Unlock()
				return
			}
			ll, ok := from.(*unix.SockaddrLinklayer)
			if !ok || ll.Pkttype == unix.PACKET_OUTGOING || ll.Ifindex == bridge {
				continue
			}
			if n > len(buf) {
				c.mu.Lock()
				c.err = fmt.Errorf("netns: capture: a frame of %d bytes on %s, more than the %d read", n, ports[ll.Ifindex], len(buf))
				c.mu.Unlock()
				n = len(buf)
			}
			c.record(Packet{Port: ports[ll.Ifindex], Frame: append([]byte(nil), buf[:n]...)})
		}
	}()
	c.stop = func() error {
		stopping.Store(true)
		wg.Wait()
		var errs []error
		if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
			errs = append(errs, fmt.Errorf("netns: capture: statistics: %w", err))
		} else if st.Drops > 0 {
			errs = append(errs, fmt.Errorf("netns: capture: the kernel dropped %d of %d frames", st.Drops, st.Packets))
		}
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("netns: capture: close: %w", err))
		}
		return errors.Join(errs...)
	}
	return c, nil
}

// htons converts a 16-bit value to network byte order, as AF_PACKET wants its protocol.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
