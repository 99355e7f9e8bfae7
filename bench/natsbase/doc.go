// Package natsbase measures the broker baseline of the benchmarks: a real NATS server
// (github.com/nats-io/nats-server/v2, embedded, on 127.0.0.1 with a random port, no auth, no
// JetStream outside the JetStream cases), with the subscriber in this process and the
// publishers in a child process (this executable re-executed with ChildEnv set), so that
// every message crosses a process boundary as it does in the relay benchmarks.
//
// A second embedded server takes only TLS 1.3 clients, for the relay (which authenticates
// every frame) to be compared with a broker at comparable security: its certificate is a
// self-signed ECDSA P-256 one for 127.0.0.1, made afresh by Start; the subscriber and the
// child (which gets the certificate's PEM in its job) trust it alone and verify it, so both
// hops of a TLS case are encrypted and authenticated. No client certificates.
//
// What it measures:
//   - one-way latency (Latency): each publisher stamps a message with time.Now().UnixNano() in
//     its first 8 bytes and sends it as a NATS request; the subscriber takes now - stamp the
//     moment the message is delivered to it (same machine, same clock), then replies, and the
//     publisher waits for that reply before sending its next message. The reply only paces the
//     publisher, as the relay's acknowledgement paces Relay.Send: the interval measured is
//     publish to delivery (publisher -> server -> subscriber, two loopback TCP hops).
//     Concurrent publishers are goroutines sharing one NATS connection, as concurrent relay
//     senders share one peer and its connection.
//   - throughput (Throughput): requesters in the child (goroutines sharing one connection)
//     each send requests back to back; the subscriber replies at once (an acknowledgement);
//     messages per second over the timed part, measured by the child.
//   - durable throughput (JetStream): publishers in the child (goroutines sharing one
//     connection) each publish to a JetStream stream back to back, each publish waiting for
//     its PubAck, which the server sends only once it has stored the message; messages per
//     second over the timed part, measured by the child. No subscriber: the broker's ack is
//     the acknowledgement. Each case has an embedded server of its own, started for it, with
//     JetStream, file storage in a fresh temporary directory (removed after) and sync
//     always (every message fsync'd before its ack, as the relay fdatasyncs the recipient's
//     inbox log before acknowledging) or the default sync (acknowledged once in the page
//     cache, fsync'd every 2 minutes); the plain and TLS servers stay without JetStream.
//     After the run the stream must hold every message sent, warm-up included.
//
// Every case sends untimed warm-up messages first (on another subject, which the subscriber
// acknowledges but does not time; in a JetStream case, stored like the rest). Guarantees:
// Close stops the servers and every connection, and a JetStream case stops its server and
// removes its store before it returns; a child that fails or outlives its context fails the
// case with its stderr in the error.
package natsbase
