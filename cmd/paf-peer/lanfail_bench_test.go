package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// lanFailHosts is the size of the failure-detection lab: five hosts on one bridge; stockPort
// the baseline's memberlist port on each (memberlist's default, 7946, is the serves').
const (
	lanFailHosts = 5
	stockPort    = 17946
)

// BenchmarkLANFailureDetection is SPEC section 10's row "a crashed (SIGKILL) peer marked dead
// by all, LAN (netns)" in its own layout: one `paf-peer serve` (secure mode, the LAN preset)
// on each of five hosts, network namespaces on a private bridge (internal/netns; needs root).
// A converged mesh loses one serve to SIGKILL, and the time runs from the kill until every
// other host's serve lists it dead (its control socket's status, polled every 20 ms):
// ms/dead-max is the last of them, the row's figure; ms/dead-mean their mean. Three kills,
// each of a different host (quick: one), the mesh reconverging (a fresh serve on the host)
// between them. Baseline, ms/stock-dead-max: stock memberlist (DefaultLANConfig), one node per
// host in the same lab, in this process (its sockets opened inside each namespace), a node
// shut down without a leave as SIGKILL would, until every other node's event delegate has
// been told it left (memberlist declares it dead).
func BenchmarkLANFailureDetection(b *testing.B) {
	netns.Require(b)
	kills := 3
	if testutil.BenchQuick() {
		kills = 1
	}
	var all, mean []time.Duration
	var stock []time.Duration
	for range b.N {
		names := make([]string, lanFailHosts)
		for i := range names {
			names[i] = fmt.Sprintf("f%d", i)
		}
		hosts := newLANHosts(b, names...)
		secret := lanSecret(b)
		for _, h := range hosts {
			h.secret = secret
			h.startServe(b)
		}
		for _, h := range hosts {
			waitServing(b, h.serve)
		}
		for k := range kills {
			testutil.WaitFor(b, lanMeshDeadline, "every host to see every other alive", func() bool {
				return seeAlive(b, hosts, names...)
			})
			victim := hosts[1+k%(len(hosts)-1)]
			id := victim.serve.peerID()
			victim.serve.kill(b)
			killed := time.Now()
			// Every host polled each round, each one's first sighting kept.
			seen := map[*lanHost]time.Duration{}
			testutil.WaitForEvery(b, 20*time.Millisecond, lanMeshDeadline, "every host to list the killed peer dead", func() bool {
				for _, h := range hosts {
					if _, done := seen[h]; done || h == victim {
						continue
					}
					if v := h.view(b); v != nil {
						if p := v.peerID(id); p == nil || p.State == "dead" {
							seen[h] = time.Since(killed)
						}
					}
				}
				return len(seen) == len(hosts)-1
			})
			var last, sum time.Duration
			for _, took := range seen {
				sum += took
				last = max(last, took)
			}
			all = append(all, last)
			mean = append(mean, sum/time.Duration(len(hosts)-1))
			victim.startServe(b) // back, for the next kill
			waitServing(b, victim.serve)
		}
		stock = append(stock, stockLANFailure(b, hosts, kills)...)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(testutil.Millis(testutil.Percentile(all, 1)), "ms/dead-max")
	b.ReportMetric(testutil.Millis(testutil.Percentile(all, 0.5)), "ms/dead-p50")
	b.ReportMetric(testutil.Millis(testutil.Percentile(mean, 0.5)), "ms/dead-mean")
	b.ReportMetric(testutil.Millis(testutil.Percentile(stock, 1)), "ms/stock-dead-max")
	b.ReportMetric(testutil.Millis(testutil.Percentile(stock, 0.5)), "ms/stock-dead-p50")
}

// stockLANChildEnv makes this test binary a stock memberlist node of the baseline
// (stockLANChild): its value is the address to bind, stockLANJoinEnv the node to join.
const (
	stockLANChildEnv = "PAF_STOCK_LAN_NODE"
	stockLANJoinEnv  = "PAF_STOCK_LAN_JOIN"
)

// stockLANChild runs one stock memberlist node (DefaultLANConfig, no tuning, no encryption)
// bound to the address in stockLANChildEnv, in the namespace it was started in (`ip netns
// exec`), joined to stockLANJoinEnv if set. It prints "members N" whenever the count of alive
// members changes and "gone NAME" when memberlist declares a node dead or left, and runs until
// killed. It returns the exit code.
func stockLANChild() int {
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	c := memberlist.DefaultLANConfig()
	addr := os.Getenv(stockLANChildEnv)
	c.Name = "stock-" + addr
	c.BindAddr, c.BindPort, c.AdvertiseAddr, c.AdvertisePort = addr, stockPort, addr, stockPort
	ev := &stockEvents{emit: emit}
	c.Events = ev
	c.LogOutput = io.Discard
	ml, err := memberlist.Create(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stock memberlist: %v\n", err)
		return 1
	}
	if seed := os.Getenv(stockLANJoinEnv); seed != "" {
		for {
			if _, err := ml.Join([]string{net.JoinHostPort(seed, strconv.Itoa(stockPort))}); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // the seed's process is starting: a child's retry, not a test's wait
		}
	}
	select {}
}

// stockGone is a node's report that memberlist declared name gone, stamped when it arrived.
type stockGone struct {
	name string
	at   time.Time
}

// stockEvents reports memberlist's membership news on stdout. It counts members itself:
// memberlist calls it with its node lock held, so asking memberlist would deadlock.
type stockEvents struct {
	emit func(string, ...any)
	mu   sync.Mutex
	n    int
}

func (e *stockEvents) NotifyJoin(*memberlist.Node) { e.add(1) }
func (e *stockEvents) NotifyLeave(n *memberlist.Node) {
	e.emit("gone %s", n.Name)
	e.add(-1)
}
func (e *stockEvents) NotifyUpdate(*memberlist.Node) {}
func (e *stockEvents) add(d int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n += d
	e.emit("members %d", e.n)
}

// stockLANFailure runs the baseline on the lab's hosts: a stock memberlist process on each
// (this test binary as stockLANChild, under `ip netns exec`, a port of its own beside the
// serve's), joined to the first; then, kills times, once all see all, one is SIGKILLed and the
// time runs until every other has printed that it is gone. Returns one figure (the last
// observer) per kill.
func stockLANFailure(b *testing.B, hosts []*lanHost, kills int) []time.Duration {
	b.Helper()
	type node struct {
		cmd     *exec.Cmd
		name    string
		members atomic.Int32
		gone    chan stockGone
	}
	start := func(h *lanHost) *node {
		n := &node{name: "stock-" + h.IP, gone: make(chan stockGone, 64)}
		n.cmd = h.Command(context.Background(), os.Args[0])
		n.cmd.Env = append(os.Environ(), stockLANChildEnv+"="+h.IP)
		if h != hosts[0] {
			n.cmd.Env = append(n.cmd.Env, stockLANJoinEnv+"="+hosts[0].IP)
		}
		var stderr bytes.Buffer
		n.cmd.Stderr = &stderr
		out, err := n.cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := n.cmd.Start(); err != nil {
			b.Fatalf("stock node on %s: %v", h.name, err)
		}
		b.Cleanup(func() {
			_ = n.cmd.Process.Kill() // by its PID
			_ = n.cmd.Wait()
			if b.Failed() {
				b.Logf("stock node %s: %d members; stderr: %s", n.name, n.members.Load(), stderr.String())
			}
		})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case len(f) == 2 && f[0] == "members":
					c, _ := strconv.Atoi(f[1])
					n.members.Store(int32(c))
				case len(f) == 2 && f[0] == "gone":
					select {
					case n.gone <- stockGone{f[1], time.Now()}:
					default:
					}
				}
			}
		}()
		return n
	}
	alive := make([]*node, len(hosts))
	for i, h := range hosts {
		alive[i] = start(h)
	}
	var out []time.Duration
	for k := range kills {
		testutil.WaitFor(b, lanMeshDeadline, "the stock nodes to see each other", func() bool {
			for _, n := range alive {
				if int(n.members.Load()) != len(alive) {
					return false
				}
			}
			return true
		})
		victim := alive[1+k%(len(alive)-1)]
		_ = victim.cmd.Process.Kill() // SIGKILL, by its PID
		killed := time.Now()
		var last time.Duration
		for _, n := range alive {
			if n == victim {
				continue
			}
			deadline := time.After(lanMeshDeadline)
		wait:
			for {
				select {
				case g := <-n.gone:
					if g.name == victim.name {
						last = max(last, g.at.Sub(killed))
						break wait
					}
				case <-deadline:
					b.Fatalf("stock node %s was not told %s is gone within %v", n.name, victim.name, lanMeshDeadline)
				}
			}
		}
		out = append(out, last)
		alive = slices.DeleteFunc(alive, func(n *node) bool { return n == victim })
	}
	return out
}
