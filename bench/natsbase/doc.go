// Package natsbase measures the broker baseline of the benchmarks: a real NATS server
// (github.com/nats-io/nats-server/v2, embedded, on 127.0.0.1 with a random port, no auth, no
// JetStream), with the subscriber in this process and the publishers in a child process (this
// executable re-executed with ChildEnv set), so that every message crosses a process boundary
// as it does in the relay benchmarks.
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
//
// Every case sends untimed warm-up messages first (on another subject, which the subscriber
// acknowledges but does not time). Guarantees: Close stops the server and every connection; a
// child that fails or outlives its context fails the case with its stderr in the error.
package natsbase
