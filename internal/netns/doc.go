// Package netns builds throw-away "hosts" for tests: Linux network namespaces joined by a
// bridge, so that LAN behaviour (mDNS multicast, partitions) can be tested on one machine
// without a single packet reaching its real interfaces.
//
// A [Lab] is one bridge namespace holding a Linux bridge and n host namespaces, each linked to
// the bridge by a veth pair and given an address 10.77.<k>.<i>/24, where k is random per Lab.
// Every name a Lab creates starts with "paf-<random>-", so labs of parallel tests never share
// anything, and tearing a Lab down touches only what it created: its own namespaces and the
// processes left running inside them, found and ended by PID. Interfaces are created inside
// the lab's namespaces from the start, never in the caller's namespace.
//
// Code runs on a host either as a separate process ([Host.Command], via `ip netns exec`) or in
// this process ([Host.Run]) on an OS thread switched into the namespace with setns(2). Sockets
// keep the namespace they were created in, so a server started inside Run keeps serving in the
// namespace after Run returns, from whatever goroutine. A thread whose namespace could not be
// switched back is never reused.
//
// The harness needs root, the `ip` tool (iproute2) and Linux. Tests call [Require], which skips
// when [Available] fails, unless PAF_REQUIRE_NETNS=1, where a missing harness is a failure.
//
// The package starts no goroutines of its own beyond the short-lived one [Host.Run] uses.
package netns
