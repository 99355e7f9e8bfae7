// Package procs measures the rows of SPEC section 10 that only the real binary in separate
// processes can show, each beside a baseline measured in the same run: a question and its
// answer between two `paf-peer mcp` processes against a non-durable hub written in Python
// (the Phone-a-Friend seed's architecture) and the disk's write+fdatasync, the durable writes
// of that round trip counted with strace, 20 and 50 peers as separate processes against stock
// memberlist in the same layout, the idle cost of 20 sessions against an idle Python process,
// a one-shot `paf-peer send` and `paf-peer mcp`'s start against `paf-peer version`.
//
// Each scenario drives processes from this one (the runner): it plays the agent, speaking
// MCP (newline-delimited JSON-RPC) on each peer's stdio, and times what the agent sees. Every
// process it starts gets a temporary HOME, state and run dir of its own, in open mode (the
// product's default on a fresh machine), and is stopped by its PID.
package procs
