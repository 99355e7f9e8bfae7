package mesh

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// netTransport is memberlist's network transport, UDP packets and TCP streams on one port,
// as memberlist.NetTransport (v0.7.0) does it, with one difference: NetTransport reads every
// packet into a new 64 KiB buffer and hands memberlist that buffer, so each packet received
// is 64 KiB of garbage. While 50 sessions started together those buffers were half of all the
// bytes a peer allocated, and the garbage collections they caused a tenth of its CPU (issue
// 18; an idle peer receives a few packets a second too). This one reads into one buffer and
// hands memberlist a copy of the packet's own size, which memberlist may keep as long as it
// likes. guardedTransport puts the inbound streams under its guard.
type netTransport struct {
	bindAddr string
	logger   *log.Logger
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	stop     chan struct{}
	closing  atomic.Bool
	once     sync.Once
	wg       sync.WaitGroup
}

// maxPacket is the largest UDP payload: a packet is read whole whatever its size.
const maxPacket = 65536

// udpReadBuffer is the socket receive buffer asked for (halved until the system grants
// it), as memberlist asks: gossip comes in bursts.
const udpReadBuffer = 2 << 20

// newNetTransport listens on bindAddr (an IP, "0.0.0.0" for every address) at port, TCP
// first, then UDP on the same port (the one TCP picked when port is 0).
func newNetTransport(bindAddr string, port int, logger *log.Logger) (*netTransport, error) {
	ip := net.ParseIP(bindAddr)
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("failed to start TCP listener on %q port %d: %w", bindAddr, port, err)
	}
	if port == 0 {
		port = tcp.Addr().(*net.TCPAddr).Port
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("failed to start UDP listener on %q port %d: %w", bindAddr, port, err)
	}
	for size := udpReadBuffer; size > 0; size /= 2 {
		if err = udp.SetReadBuffer(size); err == nil {
			break
		}
	}
	if err != nil {
		_ = tcp.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("failed to resize UDP buffer: %w", err)
	}
	t := &netTransport{
		bindAddr: bindAddr, logger: logger, tcp: tcp, udp: udp,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), stop: make(chan struct{}),
	}
	t.wg.Add(2)
	go t.accept()
	go t.read()
	return t, nil
}

var _ memberlist.NodeAwareTransport = (*netTransport)(nil)

// port is the port listened on.
func (t *netTransport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is ip and port when ip is given; else a private IP of this host when
// bound to every address, or the bound IP, with the bound port (as NetTransport).
func (t *netTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
		}
		if ip4 := addr.To4(); ip4 != nil {
			addr = ip4
		}
		return addr, port, nil
	}
	if t.bindAddr != "0.0.0.0" {
		return t.tcp.Addr().(*net.TCPAddr).IP, t.port(), nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("failed to get interface addresses: %w", err)
	}
	if private == "" {
		return nil, 0, fmt.Errorf("no private IP address found, and explicit IP not provided")
	}
	addr := net.ParseIP(private)
	if addr == nil {
		return nil, 0, fmt.Errorf("failed to parse advertise address: %q", private)
	}
	return addr, t.port(), nil
}

func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b as one packet, from the listening socket.
func (t *netTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, udpAddr)
	return time.Now(), err
}

func (t *netTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *netTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the listeners and waits for their goroutines; it may be called more than
// once.
func (t *netTransport) Shutdown() error {
	t.once.Do(func() {
		t.closing.Store(true)
		close(t.stop)
		_ = t.tcp.Close()
		_ = t.udp.Close()
		t.wg.Wait()
	})
	return nil
}

// accept hands each accepted connection to StreamCh, backing off (5 ms doubling to 1 s) while
// accepting fails, as NetTransport does.
func (t *netTransport) accept() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			select {
			case <-time.After(delay):
			case <-t.stop:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streams <- c:
		case <-t.stop:
			_ = c.Close()
			return
		}
	}
}

// read hands each packet received to PacketCh, in a buffer of its own size.
func (t *netTransport) read() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if t.closing.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			t.logger.Printf("[ERR] memberlist: UDP packet too short (%d bytes) %s", n, memberlist.LogAddress(from))
			continue
		}
		select {
		case t.packets <- &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: at}:
		case <-t.stop:
			return
		}
	}
}
