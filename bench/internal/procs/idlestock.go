package procs

import (
	"fmt"
	"time"
)

// The idle row's second baseline: what the same failure detection costs stock memberlist.
// Stock memberlist nodes (cmd/pafstock: no encryption, no delegate work, no run dir, no MCP
// server) probe, gossip and exchange state at the intervals of paf's local preset, on one
// processor as `paf-peer mcp` runs, and are measured in the same window as the peers. It is
// not a floor: memberlist's own transport allocates a 64 KiB buffer per packet, which paf's
// does not, and in the runs of issue 18 the stock nodes used more CPU than the peers.

// The local preset's intervals (mesh.DefaultLocalConfig: localProbeInterval,
// localGossipInterval, localPushPullInterval); TestIdleStockIntervals checks them.
const (
	idleStockProbe    = 3 * time.Second
	idleStockGossip   = 3 * time.Second
	idleStockPushPull = 30 * time.Second
)

// startIdleStock starts n stock memberlist nodes at the local preset's intervals, each
// joining the ones started before it, and waits until all see all.
func startIdleStock(cfg Config, n int) ([]*stockNode, error) {
	env := []string{
		stockIntervalsEnv + "=" + fmt.Sprintf("%s,%s,%s", idleStockProbe, idleStockGossip, idleStockPushPull),
		"GOMAXPROCS=1",
	}
	var nodes []*stockNode
	var addrs []string
	for i := range n {
		nd, err := startStock(cfg, fmt.Sprintf("idle-stock-%02d", i), addrs, n, env...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, nd)
		addrs = append(addrs, nd.addr)
	}
	deadline := time.Now().Add(convergeTimeout)
	for {
		c := 0
		for _, nd := range nodes {
			nd.mu.Lock()
			if !nd.allAt.IsZero() {
				c++
			}
			nd.mu.Unlock()
		}
		if c == n {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			return nodes, fmt.Errorf("idle baseline: %d of %d stock nodes saw all within %s", c, n, convergeTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling the nodes' reports, not synchronising them
	}
}
