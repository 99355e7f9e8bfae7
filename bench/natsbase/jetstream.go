package natsbase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream baseline's stream and subjects: the warm-up and the timed messages both go
// to the stream (both are stored), on two subjects so that a stored message says which it was.
const (
	jsStream      = "PAFBENCH"
	jsSubjects    = "pafbench.js.>"
	jsSubject     = "pafbench.js.tput"
	jsWarmSubject = "pafbench.js.warm"
)

// setupTimeout bounds starting a JetStream server, creating its stream and reading its state.
const setupTimeout = 10 * time.Second

// jsBroker is an embedded server with JetStream for one case, with its own store directory.
type jsBroker struct {
	ns  *server.Server
	dir string
}

// startJetStream starts a server with JetStream (file storage in a fresh temporary
// directory) on 127.0.0.1, random port, sync always or the default sync. The directory is
// made with os.MkdirTemp, as testing's B.TempDir makes the relay benchmarks' inbox
// directories: both under $TMPDIR (else /tmp), so both fsync to the same file system. It is
// its own server, not the plain one with JetStream added, so that the other cases measure a
// broker without JetStream, as before; one per case, so that each case starts with an empty
// store and its stored count is its own. On error, what was started is in the broker, for close.
func startJetStream(syncAlways bool) (*jsBroker, error) {
	b := &jsBroker{}
	dir, err := os.MkdirTemp("", "pafbench-js-")
	if err != nil {
		return b, fmt.Errorf("natsbase: jetstream store: %w", err)
	}
	b.dir = dir
	ns, err := server.NewServer(&server.Options{
		Host:                   "127.0.0.1",
		Port:                   server.RANDOM_PORT,
		NoLog:                  true,
		NoSigs:                 true,
		JetStream:              true,
		StoreDir:               dir,
		SyncAlways:             syncAlways, // "sync: always" in a config file
		DisableJetStreamBanner: true,
	})
	if err != nil {
		return b, fmt.Errorf("natsbase: new jetstream server: %w", err)
	}
	b.ns = ns
	ns.Start()
	if !ns.ReadyForConnections(setupTimeout) {
		return b, fmt.Errorf("natsbase: jetstream server not ready within %v", setupTimeout)
	}
	if !ns.JetStreamEnabled() {
		return b, errors.New("natsbase: jetstream server started without JetStream")
	}
	return b, nil
}

// close stops the server and removes its store.
func (b *jsBroker) close() error {
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	if b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}

// JetStream runs one durable publish case on a JetStream server of its own (started for the
// case, its store removed after): it creates the stream, has the child publish, then checks
// that the stream holds every message sent, warm-up included.
func (s *Server) JetStream(ctx context.Context, c JetStreamCase) (res JetStreamResult, err error) {
	if c.Size < stampLen || c.Publishers < 1 || c.Msgs < 1 || c.Warmup < 0 {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: bad case %+v", c.Name(), c)
	}
	b, err := startJetStream(c.SyncAlways)
	defer func() {
		if cerr := b.close(); cerr != nil && err == nil {
			err = fmt.Errorf("natsbase: %s: %w", c.Name(), cerr)
		}
	}()
	if err != nil {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: %w", c.Name(), err)
	}
	s.cfg.Logger.Debug("nats jetstream server up", "url", b.ns.ClientURL(), "store", b.dir, "sync-always", c.SyncAlways)
	nc, err := nats.Connect(b.ns.ClientURL(), nats.Name("pafbench-js-admin"), nats.NoReconnect())
	if err != nil {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: connect: %w", c.Name(), err)
	}
	defer nc.Close()
	stream, err := createStream(ctx, nc)
	if err != nil {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: %w", c.Name(), err)
	}
	j := job{
		Mode: modeJetStream, URL: b.ns.ClientURL(), Size: c.Size, Workers: c.Publishers,
		Count: perWorker(c.Msgs, c.Publishers), Warmup: perWorker(c.Warmup, c.Publishers),
	}
	elapsed, err := s.runChild(ctx, j)
	if err != nil {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: %w", c.Name(), err)
	}
	if elapsed <= 0 {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: child reported %v", c.Name(), elapsed)
	}
	// Every publish waited for its ack, so every message is in the stream by now; a count
	// short of what was sent means the broker acknowledged a message it did not keep.
	ictx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	info, err := stream.Info(ictx)
	if err != nil {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: stream info: %w", c.Name(), err)
	}
	if want := uint64((j.Count + j.Warmup) * j.Workers); info.State.Msgs != want {
		return JetStreamResult{}, fmt.Errorf("natsbase: %s: the stream holds %d messages, %d were acknowledged", c.Name(), info.State.Msgs, want)
	}
	n := j.Count * j.Workers
	return JetStreamResult{
		Case: c, Msgs: n, Stored: info.State.Msgs, Elapsed: elapsed, MsgsPerSec: float64(n) / elapsed.Seconds(),
	}, nil
}

// createStream creates the baseline's stream: file storage, one replica, every subject of
// the baseline, no limit on messages, bytes or age, so that nothing sent is dropped. Were a
// limit reached anyway, DiscardNew refuses the publish (the child fails) rather than dropping
// an old message silently.
func createStream(ctx context.Context, nc *nats.Conn) (jetstream.Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              jsStream,
		Subjects:          []string{jsSubjects},
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	return stream, nil
}
