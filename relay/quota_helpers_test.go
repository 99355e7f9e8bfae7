package relay

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Helpers of the quota and rate attack tests, apart from them because they use the API the
// attacks are checked against (store quotas, a Handler's source address).

// quotaLimits sets a holder's store quotas: bytes in total, per source and per name, and
// messages per name (0: the default, negative: none).
func quotaLimits(total, perSource, perName int64, perNameMsgs int) nodeOpt {
	return func(c *Config) {
		c.HeldBytes, c.SourceHeldBytes, c.NameHeldBytes, c.Quota = total, perSource, perName, perNameMsgs
	}
}

// hosts stands for other machines in tests whose peers all run on 127.0.0.1: a relay started
// with its opt sees the requests of the peer ids it maps come from the mapped address, as a
// peer on another machine's would.
type hosts struct {
	mu sync.Mutex
	by map[string]netip.Addr
}

func (h *hosts) set(id, addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = map[string]netip.Addr{}
	}
	h.by[id] = netip.MustParseAddr(addr)
}

func (h *hosts) opt() nodeOpt {
	return func(c *Config) {
		c.wrapHandler = func(next wire.Handler) wire.Handler { return hostsHandler{h, next} }
	}
}

type hostsHandler struct {
	h    *hosts
	next wire.Handler
}

func (w hostsHandler) HandleRequest(from string, src netip.Addr, body []byte, respond func([]byte, error)) {
	w.h.mu.Lock()
	if a, ok := w.h.by[from]; ok {
		src = a
	}
	w.h.mu.Unlock()
	w.next.HandleRequest(from, src, body, respond)
}

// heldBytes is what n holds for others, in the bytes the store quotas count.
func heldBytes(t *testing.T, n *node) int64 {
	t.Helper()
	return n.relay.held.Usage().Bytes
}
