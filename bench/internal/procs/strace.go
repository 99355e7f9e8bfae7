package procs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runFsyncCount counts the durable writes of the question-and-answer round trip: strace
// (-f -c -e trace=fsync,fdatasync,io_submit,nanosleep,futex) attached to both `paf-peer mcp` processes,
// every thread, during rounds back to back after a warm-up. Counted: every fsync and
// fdatasync either process makes in that window, whatever for, and every io_submit: on
// Linux the inbox log hands its fdatasync to the kernel with AIO (one io_submit of
// IOCB_CMD_FDSYNC per sync, relay/store datasyncer), the only AIO the product submits. Not counted: what the inbox does once it has
// been quiet for half a second (it copies the ids it received into its bbolt file and
// empties its log), which is off the path of any message and once per quiet spell.
//
// Beside them, the Go runtime's own waits: nanosleep is the monitor thread's (sysmon's)
// polling sleep, which an ordinary system call after an idle spell sets going (see
// internal/rawio), and futex its and the scheduler's thread wake-ups.
func runFsyncCount(ctx context.Context, cfg Config) []Result {
	res := Result{Name: FsyncCount}
	st := lookPath(cfg.Strace, "strace")
	if st == "" {
		res.Skip = errNoStrace.Error()
		return []Result{res}
	}
	rounds := count(cfg, 60, 20)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	w, err := newWorld()
	if err != nil {
		return failAll(err, FsyncCount)
	}
	defer w.close()
	pair, err := newPafPair(ctx, cfg, w, true)
	if err != nil {
		return failAll(err, FsyncCount)
	}
	defer pair.close()
	for range 10 {
		if _, _, err := pair.round(ctx); err != nil {
			return failAll(err, FsyncCount)
		}
	}
	out := filepath.Join(w.root, "strace.out")
	cmd := exec.Command(st, "-f", "-c", "-e", "trace=fsync,fdatasync,io_submit,nanosleep,futex", "-o", out,
		"-p", strconv.Itoa(pair.a.pid()), "-p", strconv.Itoa(pair.b.pid()))
	errs := newTailBuffer(64 << 10)
	cmd.Stderr = errs
	if err := cmd.Start(); err != nil {
		return failAll(fmt.Errorf("strace: %w", err), FsyncCount)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			return nil
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("strace did not stop on SIGINT: %s", errs.String())
		}
	}
	defer stop()
	// strace says "Process N attached" for every thread it attaches to.
	deadline := time.Now().Add(20 * time.Second)
	for !(strings.Contains(errs.String(), fmt.Sprintf("Process %d attached", pair.a.pid())) &&
		strings.Contains(errs.String(), fmt.Sprintf("Process %d attached", pair.b.pid()))) {
		if time.Now().After(deadline) {
			return failAll(fmt.Errorf("strace did not attach within 20 s: %s", errs.String()), FsyncCount)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range rounds {
		if _, _, err := pair.round(ctx); err != nil {
			return failAll(err, FsyncCount)
		}
	}
	if err := stop(); err != nil {
		return failAll(err, FsyncCount)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		return failAll(fmt.Errorf("strace wrote no summary: %w; stderr: %s", err, errs.String()), FsyncCount)
	}
	calls := straceCalls(string(text))
	total := calls["fsync"] + calls["fdatasync"] + calls["io_submit"]
	res.Metrics = []Metric{
		{float64(total) / float64(rounds), "fsyncs/round-trip"},
		{float64(calls["fdatasync"]) / float64(rounds), "fdatasyncs/round-trip"},
		{float64(calls["io_submit"]) / float64(rounds), "aio-fdatasyncs/round-trip"},
		{float64(calls["fsync"]) / float64(rounds), "fsync-calls/round-trip"},
		{float64(calls["nanosleep"]) / float64(rounds), "runtime-sleeps/round-trip"},
		{float64(calls["futex"]) / float64(rounds), "futex/round-trip"},
		{float64(rounds), "rounds"},
	}
	return []Result{res}
}

// straceCalls parses the table of strace -c: the calls of each syscall. Its lines are
// "% time  seconds  usecs/call  calls  [errors]  syscall".
func straceCalls(text string) map[string]int {
	calls := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		calls[f[len(f)-1]] += n
	}
	return calls
}
