package mesh

import (
	"fmt"
	"io"
	"log"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// Baselines of the membership benchmarks: plain memberlist, no paf code,
// with memberlist's own memberlist.DefaultLocalConfig() (127.0.0.1, port 0,
// logger discarded), started, joined, polled and torn down exactly as the
// product benchmarks do it. Beside BenchmarkConvergence,
// BenchmarkNamePropagation and BenchmarkFailureDetection, they show what
// paf's preset (RetransmitMult 4, PushPullInterval 30 s (LAN: 10 s), GossipInterval
// 100 ms over the stock 2, 15 s and 100 ms) and its name logic cost or gain.
//
// A stock node carries the least a measurement needs: its metadata is a
// version counter (so an update can be told from the one before), and an
// event delegate records, per node, the last version seen and whether it
// was reported gone, so that polling a node costs a map lookup under a
// mutex, as polling a paf peer does.

// stockNode is one plain memberlist node.
type stockNode struct {
	ml *memberlist.Memberlist
	d  *stockDelegate
}

// stockDelegate is a stock node's memberlist.Delegate and EventDelegate.
type stockDelegate struct {
	mu   sync.Mutex
	meta []byte           // our own metadata: a decimal version
	ver  map[string]int64 // node name -> last metadata version seen
	gone map[string]bool  // node name -> reported dead or left
}

func (d *stockDelegate) NodeMeta(int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}

func (d *stockDelegate) NotifyMsg([]byte)                {}
func (d *stockDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *stockDelegate) LocalState(bool) []byte          { return nil }
func (d *stockDelegate) MergeRemoteState([]byte, bool)   {}
func (d *stockDelegate) NotifyJoin(n *memberlist.Node)   { d.saw(n, false) }
func (d *stockDelegate) NotifyUpdate(n *memberlist.Node) { d.saw(n, false) }
func (d *stockDelegate) NotifyLeave(n *memberlist.Node)  { d.saw(n, true) }
func (d *stockDelegate) setMeta(v int64) {
	d.mu.Lock()
	d.meta = strconv.AppendInt(nil, v, 10)
	d.mu.Unlock()
}
func (d *stockDelegate) version(name string) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ver[name], d.gone[name]
}

func (d *stockDelegate) saw(n *memberlist.Node, gone bool) {
	v, _ := strconv.ParseInt(string(n.Meta), 10, 64)
	d.mu.Lock()
	d.ver[n.Name] = v
	d.gone[n.Name] = gone
	d.mu.Unlock()
}

// stockConfig is memberlist's stock local configuration on 127.0.0.1, port
// 0, with its logger discarded.
func stockConfig(name string, d *stockDelegate) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.AdvertisePort = 0
	c.Logger = log.New(io.Discard, "", 0)
	c.Delegate = d
	c.Events = d
	return c
}

// stockCluster is the nodes of one baseline iteration.
type stockCluster struct {
	nodes      []*stockNode
	firstNew   time.Time
	started    time.Time
	joinFailed int
}

// startStock starts n stock nodes, each joining the first as soon as it is
// up, as startPeers does (a join that fails every retry is counted).
func startStock(b *testing.B, n int) *stockCluster {
	b.Helper()
	c := &stockCluster{nodes: make([]*stockNode, 0, n)}
	c.firstNew = time.Now()
	for i := range n {
		d := &stockDelegate{meta: []byte("0"), ver: map[string]int64{}, gone: map[string]bool{}}
		ml, err := memberlist.Create(stockConfig(fmt.Sprintf("stock-%d", i), d))
		if err != nil {
			c.close()
			b.Fatalf("memberlist.Create %d of %d: %v", i, n, err)
		}
		c.nodes = append(c.nodes, &stockNode{ml: ml, d: d})
		if i == 0 {
			continue
		}
		if err := joinRetry(i, c.firstNew, func(k int) error {
			_, err := ml.Join([]string{c.nodes[k].addr()})
			return err
		}); err != nil {
			c.joinFailed++
			b.Logf("join stock node %d of %d: %v", i, n, err)
		}
	}
	c.started = time.Now()
	return c
}

func (s *stockNode) addr() string { return s.ml.LocalNode().Address() }

// close shuts every node down in parallel without a leave, as
// benchCluster.close does.
func (c *stockCluster) close() {
	var wg sync.WaitGroup
	for _, s := range c.nodes {
		wg.Go(func() { _ = s.ml.Shutdown() })
	}
	wg.Wait()
}

// seesAll reports whether s counts n live (alive or suspect) members.
func seesAll(n int) func(*stockNode) bool {
	return func(s *stockNode) bool { return s.ml.NumMembers() == n }
}

// settle brings a started stock cluster to convergence as
// benchCluster.settle does: gossip first, then a push/pull with the seed for
// every node that still misses someone.
func (c *stockCluster) settle(b *testing.B) {
	b.Helper()
	err := settleNodes(c.nodes, seesAll(len(c.nodes)), func(s *stockNode) error {
		_, err := s.ml.Join([]string{c.nodes[0].addr()})
		return err
	})
	if err != nil {
		b.Fatalf("stock cluster of %d nodes: %v", len(c.nodes), err)
	}
}

// BenchmarkStockConvergence is BenchmarkConvergence's baseline: N stock
// memberlist nodes, each joining the first as soon as it is up, until every
// one counts N live members, capped at convergeCap() after the last Join
// (with the stock RetransmitMult of 2 that cap is the rule from 50 nodes
// on). Quick mode: the sizes of curveSizes (10 and 100).
func BenchmarkStockConvergence(b *testing.B) {
	for _, n := range curveSizes() {
		b.Run(fmt.Sprintf("peers-%d", n), func(b *testing.B) {
			var r convergeResult
			for range b.N {
				func() {
					c := startStock(b, n)
					defer c.close()
					at, err := pollAll(c.nodes, convergeCap(), seesAll(n))
					r.add(c.firstNew, c.started, at, err, func() float64 { return sharePct(c.nodes, seesAll(n)) })
					r.joinFailed += c.joinFailed
				}()
			}
			r.report(b)
		})
	}
}

// BenchmarkStockPropagation is BenchmarkNamePropagation's baseline: on a
// stock cluster brought to convergence (settle), nodes in turn (the same
// ones as the claimers) set new metadata and call UpdateNode, as a claim does
// (with the same 1 s bound), and the time runs from that call until every
// node has seen the new metadata: mean, nearest-rank p99 and max over all
// updates of the run. With the stock RetransmitMult of 2, an update often
// misses a node and then waits for push/pull (tens of seconds): each update
// is capped at propagationCap and counted in capped/op, and a capped
// update counts as the cap, so mean, p99 and max are then lower bounds.
// Quick mode: the sizes of curveSizes (10 and 100). 3 updates each.
func BenchmarkStockPropagation(b *testing.B) {
	for _, n := range curveSizes() {
		b.Run(fmt.Sprintf("peers-%d", n), func(b *testing.B) {
			var seen, returned []time.Duration
			version, capped := int64(0), 0
			for range b.N {
				func() {
					c := startStock(b, n)
					defer c.close()
					c.settle(b)
					for k := range claimsPerCluster() {
						version++
						took, ret, over := timeUpdate(c.nodes, c.nodes[claimerOf(k, n)], version)
						if over {
							capped++
						}
						seen = append(seen, took)
						returned = append(returned, ret)
					}
				}()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(meanMS(seen), "ms/update-mean")
			b.ReportMetric(testutil.Millis(testutil.Percentile(seen, 0.99)), "ms/update-p99")
			b.ReportMetric(testutil.Millis(testutil.Percentile(seen, 1)), "ms/update-max")
			b.ReportMetric(meanMS(returned), "ms/update-return")
			b.ReportMetric(float64(capped)/float64(b.N), "capped/op")
		})
	}
}

// timeUpdate has u announce metadata version v and returns how long until
// every node saw it (at most propagationCap: capped is then set), and how
// long UpdateNode took to return; it polls while UpdateNode is still
// blocked, as timeClaim does.
func timeUpdate(nodes []*stockNode, u *stockNode, v int64) (seen, returned time.Duration, capped bool) {
	name := u.ml.LocalNode().Name
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	u.d.setMeta(v)
	go func() {
		err := u.ml.UpdateNode(time.Second)
		done <- result{err, time.Since(start)}
	}()
	at, err := pollAll(nodes, propagationCap, func(s *stockNode) bool {
		got, _ := s.d.version(name)
		return s == u || got >= v
	})
	r := <-done
	// UpdateNode's error is a timeout waiting for the broadcast to be
	// retransmitted in full, not a failure: the update is out, as the product's
	// announce treats it.
	_ = r.err
	if err != nil {
		return propagationCap, r.took, true
	}
	return at.Sub(start), r.took, false
}

// BenchmarkStockFailureDetection is BenchmarkFailureDetection's baseline:
// on a stock cluster brought to convergence (settle), nodes are shut down
// without a leave (as SIGKILL would), as many and as the product's benchmark
// kills them (killPlan), and the time runs until every other node has
// reported each gone (memberlist's NotifyLeave, which it sends when it
// declares a node dead): mean and max over all victims of the run. Sizes 10
// and 100 (quick mode: 10, 1 kill). memberlist tells the event delegate
// nothing about suspicion, so there are no phases here.
func BenchmarkStockFailureDetection(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("peers-%d", n), func(b *testing.B) {
			skipQuick(b, n)
			var took []time.Duration
			for range b.N {
				func() {
					c := startStock(b, n)
					defer c.close()
					c.settle(b)
					ds, err := killAll(c.nodes, func(s *stockNode) string { return s.ml.LocalNode().Name },
						func(s *stockNode) { _ = s.ml.Shutdown() },
						func(s *stockNode, id string) MemberState {
							if _, gone := s.d.version(id); gone {
								return MemberDead
							}
							return MemberAlive
						})
					if err != nil {
						b.Fatal(err)
					}
					for _, d := range ds {
						took = append(took, d.took)
					}
				}()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(meanMS(took), "ms/dead-mean")
			b.ReportMetric(testutil.Millis(testutil.Percentile(took, 1)), "ms/dead-max")
		})
	}
}
