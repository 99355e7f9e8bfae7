package procs

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// StockChildEnv names the stock memberlist node cmd/pafstock runs (the baseline of the
// membership rows and the idle row): see StockChild. Set in the runner's own environment, it
// makes the runner one instead (when cmd/pafstock could not be built).
const StockChildEnv = "PAFBENCH_STOCK_CHILD"

// stockIntervalsEnv, when set, gives a stock node memberlist's probe, gossip and push/pull
// intervals ("PROBE,GOSSIP,PUSHPULL", Go durations): the idle row's baseline runs stock memberlist
// at the intervals of paf's local preset.
const stockIntervalsEnv = "PAFBENCH_STOCK_INTERVALS"

// stockJoinEnv holds the gossip addresses of the nodes started before this one, comma
// separated: what the run dir gives a new paf peer.
const stockJoinEnv = "PAFBENCH_STOCK_JOIN"

// StockChild runs one stock memberlist node (memberlist.DefaultLocalConfig on 127.0.0.1, no
// tuning, no encryption) named name. It joins, one by one, the addresses of stockJoinEnv it
// does not know yet (as a paf peer joins the run dir's entries), and writes on out:
//
//	ready ADDR            once it is up
//	members N             whenever the number of alive members changes
//	meta NODE TEXT        whenever a node's meta changes (NotifyUpdate)
//
// It reads commands on in: "meta TEXT" sets its own meta (UpdateNode); end of input makes it
// leave and exit. It returns the exit code.
func StockChild(name string, in io.Reader, out io.Writer) int {
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	emit := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
		mu.Unlock()
	}
	d := &stockDelegate{}
	ev := &stockEvents{emit: emit}
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = name
	cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "127.0.0.1", 0, 0
	cfg.Delegate, cfg.Events = d, ev
	cfg.Logger = log.New(io.Discard, "", 0)
	if v := os.Getenv(stockIntervalsEnv); v != "" {
		var ds []time.Duration
		for _, f := range strings.Split(v, ",") {
			d, err := time.ParseDuration(f)
			if err != nil {
				fmt.Fprintf(os.Stderr, "stock memberlist: %s=%q: %v\n", stockIntervalsEnv, v, err)
				return 1
			}
			ds = append(ds, d)
		}
		if len(ds) != 3 {
			fmt.Fprintf(os.Stderr, "stock memberlist: %s=%q: want PROBE,GOSSIP,PUSHPULL\n", stockIntervalsEnv, v)
			return 1
		}
		cfg.ProbeInterval, cfg.GossipInterval, cfg.PushPullInterval = ds[0], ds[1], ds[2]
	}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stock memberlist: %v\n", err)
		return 1
	}
	ev.ml = ml
	emit("ready %s", ml.LocalNode().Address())
	for _, addr := range strings.Split(os.Getenv(stockJoinEnv), ",") {
		if addr == "" || stockKnows(ml, addr) {
			continue
		}
		_, _ = ml.Join([]string{addr}) // a failed join is seen as a missing member
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if text, ok := strings.CutPrefix(sc.Text(), "meta "); ok {
			d.set([]byte(text))
			_ = ml.UpdateNode(0)
		}
	}
	_ = ml.Leave(0)
	_ = ml.Shutdown()
	return 0
}

func stockKnows(ml *memberlist.Memberlist, addr string) bool {
	for _, n := range ml.Members() {
		if n.Address() == addr {
			return true
		}
	}
	return false
}

// stockDelegate carries the node's meta and nothing else.
type stockDelegate struct {
	mu   sync.Mutex
	meta []byte
}

func (d *stockDelegate) set(m []byte) { d.mu.Lock(); d.meta = m; d.mu.Unlock() }
func (d *stockDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return d.meta[:limit]
	}
	return d.meta
}
func (d *stockDelegate) NotifyMsg([]byte)                       {}
func (d *stockDelegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (d *stockDelegate) LocalState(bool) []byte                 { return nil }
func (d *stockDelegate) MergeRemoteState(buf []byte, join bool) {}

// stockEvents reports membership changes on the node's output.
type stockEvents struct {
	emit func(string, ...any)
	ml   *memberlist.Memberlist
	mu   sync.Mutex
	last int
}

func (e *stockEvents) count() {
	if e.ml == nil {
		return
	}
	// Under mu from the read to the line, so that the last line says the latest count.
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := e.ml.NumMembers(); n != e.last {
		e.last = n
		e.emit("members %d", n)
	}
}

// Memberlist calls these with its lock held: NumMembers takes the same lock, so count runs
// on a goroutine of its own.
func (e *stockEvents) NotifyJoin(*memberlist.Node)  { go e.count() }
func (e *stockEvents) NotifyLeave(*memberlist.Node) { go e.count() }
func (e *stockEvents) NotifyUpdate(n *memberlist.Node) {
	e.emit("meta %s %s", n.Name, string(n.Meta))
}
