package procs

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// runCrashReclaim: a `paf-peer serve --name watcher` and a session `paf-peer mcp --name
// crashy` on one machine; once each sees the other, the session's process is SIGKILLed and
// restarted at once, as a client restarts its MCP server, with the same state dir and no name;
// the new session calls paf_register for crashy until it succeeds. Timed from the kill to the
// successful paf_register (the restart's own start included); 5 rounds (quick 2), median and
// max.
func runCrashReclaim(ctx context.Context, cfg Config) []Result {
	res := Result{Name: CrashReclaim}
	rounds := count(cfg, 5, 2)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	w, err := newWorld()
	if err != nil {
		return failAll(err, CrashReclaim)
	}
	defer w.close()
	watcher := exec.Command(cfg.Bin, "serve", "--name", "watcher")
	watcher.Env = w.env("watcher")
	watcher.Stderr = newTailBuffer(8 << 10)
	if err := watcher.Start(); err != nil {
		return failAll(err, CrashReclaim)
	}
	defer func() {
		_ = watcher.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = watcher.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = watcher.Process.Kill()
			<-done
		}
	}()
	var took []time.Duration
	for range rounds {
		p, err := startMCP(cfg.Bin, w.env("crashy"), "crashy", "--name", "crashy")
		if err == nil {
			err = p.initialize(ctx)
		}
		if err == nil {
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			err = waitSee(sctx, p, []string{"watcher"})
			scancel()
		}
		if err != nil {
			if p != nil {
				p.close()
			}
			return failAll(err, CrashReclaim)
		}
		killed := time.Now()
		_ = p.cmd.Process.Kill() // SIGKILL: no goodbye
		<-p.done
		q, err := startMCP(cfg.Bin, w.env("crashy"), "crashy-restarted")
		if err == nil {
			err = q.initialize(ctx)
		}
		for err == nil {
			_, rerr := q.tool(ctx, "paf_register", map[string]any{"name": "crashy"})
			if rerr == nil {
				took = append(took, time.Since(killed))
				break
			}
			if time.Since(killed) > 60*time.Second {
				err = fmt.Errorf("the restarted session could not claim its name within 60 s: %w", rerr)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if q != nil {
			q.close()
		}
		if err != nil {
			return failAll(err, CrashReclaim)
		}
	}
	res.Metrics = []Metric{{ms(pct(took, 50)), "ms/reclaim-p50"}, {ms(pct(took, 100)), "ms/reclaim-max"}, {float64(rounds), "rounds"}}
	return []Result{res}
}
