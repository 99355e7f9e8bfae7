package natsbase

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ChildEnv, when set in the environment, makes the process a publishing child: its value is
// the job (JSON). Callers check IsChild first thing in main (or TestMain) and then exit with
// ChildMain's code.
const ChildEnv = "PAFBENCH_NATS_CHILD"

// Job modes.
const (
	modeLatency    = "latency"
	modeThroughput = "throughput"
	// modeJetStream publishes to the JetStream stream of a JetStream server (Server.JetStream)
	// instead of sending requests to the subscriber.
	modeJetStream = "jetstream"
)

// job is what a child does: Workers goroutines sharing one connection each send Warmup
// untimed requests (JetStream publishes in modeJetStream), wait for all to be warm, then send
// Count timed ones.
type job struct {
	Mode    string `json:"mode"`
	URL     string `json:"url"`
	Size    int    `json:"size"`
	Workers int    `json:"workers"`
	Count   int    `json:"count"`
	Warmup  int    `json:"warmup"`
	// PaceNS is think time in nanoseconds after each reply (latency mode).
	PaceNS int64 `json:"pace_ns,omitempty"`
	// CA, when set, is the PEM of the only certificate the child trusts: it then connects
	// with TLS 1.3 to a "tls://" URL and verifies the server against it.
	CA string `json:"ca,omitempty"`

	tlsConf *tls.Config // from CA, set by parseJob
}

// maxJobMsgs bounds what a child accepts to send, so that a garbled job cannot run for ever.
const maxJobMsgs = 10_000_000

// parseJob decodes and checks a job.
func parseJob(spec string) (job, error) {
	var j job
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		return j, fmt.Errorf("natsbase: child job: %w", err)
	}
	switch {
	case j.Mode != modeLatency && j.Mode != modeThroughput && j.Mode != modeJetStream:
		return j, fmt.Errorf("natsbase: child job: unknown mode %q", j.Mode)
	case j.URL == "":
		return j, errors.New("natsbase: child job: no url")
	case j.Size < stampLen || j.Size > 8<<20:
		return j, fmt.Errorf("natsbase: child job: size %d out of range", j.Size)
	case j.Workers < 1 || j.Workers > 4096:
		return j, fmt.Errorf("natsbase: child job: %d workers out of range", j.Workers)
	case j.PaceNS < 0 || j.PaceNS > int64(time.Second):
		return j, fmt.Errorf("natsbase: child job: pace %d ns out of range [0, 1 s]", j.PaceNS)
	case j.Count < 1 || j.Warmup < 0 || j.Count > maxJobMsgs/j.Workers || j.Warmup > maxJobMsgs/j.Workers:
		return j, fmt.Errorf("natsbase: child job: count %d, warm-up %d out of range", j.Count, j.Warmup)
	case (j.CA != "") != strings.HasPrefix(j.URL, "tls://"):
		return j, fmt.Errorf("natsbase: child job: url %q needs a CA exactly when it is tls://", j.URL)
	}
	if j.CA != "" {
		var err error
		if j.tlsConf, err = clientTLS([]byte(j.CA)); err != nil {
			return j, fmt.Errorf("natsbase: child job: %w", err)
		}
	}
	return j, nil
}

// IsChild reports whether this process was started as a publishing child.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// ChildMain runs the child's job and returns the process exit code. It prints
// "done <elapsed ns of the timed part>" on stdout, the pipe its parent reads;
// errors go to stderr.
func ChildMain() int { return childMain(os.Stdout, os.Stderr) }

func childMain(out, errOut io.Writer) int {
	j, err := parseJob(os.Getenv(ChildEnv))
	if err == nil {
		var d time.Duration
		if d, err = runJob(context.Background(), j); err == nil {
			fmt.Fprintf(out, "done %d\n", d.Nanoseconds())
			return 0
		}
	}
	fmt.Fprintln(errOut, err)
	return 1
}

// requestTimeout bounds one request (or publish and its ack): a lost message fails the case
// instead of hanging it.
const requestTimeout = 30 * time.Second

// sendFunc sends one message and waits for its acknowledgement.
type sendFunc func(ctx context.Context, subject string, data []byte) error

// request sends a request to the subscriber, which acknowledges it at once.
func request(nc *nats.Conn) sendFunc {
	return func(ctx context.Context, subject string, data []byte) error {
		_, err := nc.RequestWithContext(ctx, subject, data)
		return err
	}
}

// jsPublish publishes to the baseline's stream and waits for its PubAck, which the server
// sends only once it has stored the message (and, with sync always, fsync'd it). An ack from
// any other stream means the message went somewhere the parent does not count.
func jsPublish(js jetstream.JetStream) sendFunc {
	return func(ctx context.Context, subject string, data []byte) error {
		ack, err := js.Publish(ctx, subject, data)
		if err != nil {
			return err
		}
		if ack.Stream != jsStream {
			return fmt.Errorf("acknowledged by stream %q, want %q", ack.Stream, jsStream)
		}
		return nil
	}
}

func runJob(ctx context.Context, j job) (time.Duration, error) {
	opts := []nats.Option{nats.Name("pafbench-pub"), nats.NoReconnect()}
	if j.tlsConf != nil {
		opts = append(opts, nats.Secure(j.tlsConf))
	}
	nc, err := nats.Connect(j.URL, opts...)
	if err != nil {
		return 0, fmt.Errorf("natsbase: child: connect %s: %w", j.URL, err)
	}
	defer nc.Close()
	warmSubj, subject, what, publish := warmSubject, tputSubject, "request", request(nc)
	switch j.Mode {
	case modeLatency:
		subject = latSubject
	case modeJetStream:
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, fmt.Errorf("natsbase: child: jetstream: %w", err)
		}
		warmSubj, subject, what, publish = jsWarmSubject, jsSubject, "publish", jsPublish(js)
	}
	var (
		warm, done sync.WaitGroup
		start      = make(chan struct{})
		errs       = make(chan error, j.Workers)
	)
	warm.Add(j.Workers)
	done.Add(j.Workers)
	for range j.Workers {
		go func() {
			defer done.Done()
			buf := make([]byte, j.Size)
			for i := range buf {
				buf[i] = 'a' + byte(i%26)
			}
			send := func(subj string) error {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				defer cancel()
				binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
				err := publish(rctx, subj, buf)
				if j.PaceNS > 0 {
					time.Sleep(time.Duration(j.PaceNS)) // think time, not synchronisation
				}
				return err
			}
			var err error
			for i := 0; i < j.Warmup && err == nil; i++ {
				err = send(warmSubj)
			}
			warm.Done()
			<-start
			for i := 0; i < j.Count && err == nil; i++ {
				err = send(subject)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	warm.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("natsbase: child: %s: %w", what, err)
	}
	return elapsed, nil
}
