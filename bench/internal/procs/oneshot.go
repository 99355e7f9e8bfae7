package procs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// runOneShot times a one-shot `paf-peer send --as alice bob MESSAGE --json` run from a shell
// (sh -c, as an agent without MCP runs it) while `paf-peer serve --name alice` and `paf-peer
// serve --name bob` run on the machine, from exec of the shell to its exit; beside it,
// interleaved, `sh -c 'paf-peer version'`. Every send must report delivered.
func runOneShot(ctx context.Context, cfg Config) []Result {
	res := Result{Name: OneShot}
	n := count(cfg, 30, 6)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	w, err := newWorld()
	if err != nil {
		return failAll(err, OneShot)
	}
	defer w.close()
	for _, who := range []string{"alice", "bob"} {
		cmd := exec.Command(cfg.Bin, "serve", "--name", who)
		cmd.Env = w.env(who)
		errs := newTailBuffer(8 << 10)
		cmd.Stderr = errs
		if err := cmd.Start(); err != nil {
			return failAll(err, OneShot)
		}
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(stopTimeout):
				_ = cmd.Process.Kill()
				<-done
			}
		}()
	}
	env := w.env("alice")
	send := func(msg string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", `exec "$0" send --as alice bob "$1" --json`, cfg.Bin, msg)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("paf-peer send: %w: %s", err, strings.TrimSpace(errb.String()))
		}
		var r struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return 0, fmt.Errorf("paf-peer send --json printed %q: %w", out.String(), err)
		}
		if r.Status != "delivered" {
			return d, errNotDelivered{r.Status}
		}
		return d, nil
	}
	// Until both serves are up and see each other: a send that is delivered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := send("warm-up")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return failAll(fmt.Errorf("no send delivered within 30 s: %w", err), OneShot)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var sends, versions []time.Duration
	for i := range n {
		d, err := send(fmt.Sprintf("one-shot %d", i))
		if err != nil {
			return failAll(err, OneShot)
		}
		sends = append(sends, d)
		v, err := timeCmd(ctx, env, "sh", "-c", `exec "$0" version`, cfg.Bin)
		if err != nil {
			return failAll(err, OneShot)
		}
		versions = append(versions, v)
	}
	res.Metrics = []Metric{
		{ms(pct(sends, 50)), "send-p50-ms"}, {ms(pct(sends, 90)), "send-p90-ms"},
		{ms(pct(versions, 50)), "version-p50-ms"}, {float64(n), "runs"},
	}
	return []Result{res}
}

type errNotDelivered struct{ status string }

func (e errNotDelivered) Error() string { return "paf-peer send said " + e.status + ", not delivered" }

// runMCPStart times exec of `paf-peer mcp` until the initialize result (each in a fresh state
// and run dir, then closed), interleaved with exec to exit of `paf-peer version`; the CPU the
// process had used by then; and the size of the tools/list result as compact JSON.
func runMCPStart(ctx context.Context, cfg Config) []Result {
	res := Result{Name: MCPStart}
	n := count(cfg, 30, 6)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var inits, versions, cpus []time.Duration
	toolsList := 0
	for i := range n {
		w, err := newWorld()
		if err != nil {
			return failAll(err, MCPStart)
		}
		v, err := timeCmd(ctx, w.env("x"), cfg.Bin, "version")
		if err != nil {
			w.close()
			return failAll(err, MCPStart)
		}
		versions = append(versions, v)
		p, err := startMCP(cfg.Bin, w.env("x"), "x")
		if err == nil {
			err = p.initialize(ctx)
			inits = append(inits, time.Since(p.start))
			if s, serr := sampleProc(p.pid()); err == nil && serr == nil {
				cpus = append(cpus, time.Duration(s.cpuNS))
			}
			if err == nil && i == 0 {
				var raw json.RawMessage
				if raw, err = p.call(ctx, "tools/list", nil); err == nil {
					var c bytes.Buffer
					if err = json.Compact(&c, raw); err == nil {
						toolsList = c.Len()
					}
				}
			}
			p.close()
		}
		w.close()
		if err != nil {
			return failAll(err, MCPStart)
		}
	}
	res.Metrics = []Metric{
		{ms(pct(inits, 50)), "init-p50-ms"}, {ms(pct(inits, 90)), "init-p90-ms"},
		{ms(pct(versions, 50)), "version-p50-ms"}, {float64(toolsList), "tools-list-bytes"},
	}
	if len(cpus) > 0 {
		// The CPU a lone session's start costs, to its initialize result (every thread).
		res.Metrics = append(res.Metrics, Metric{ms(pct(cpus, 50)), "init-cpu-p50-ms"})
	}
	return []Result{res}
}
