// Package connlimit bounds what connections that have not authenticated yet can make a
// listener hold: how many one source address may have open and how many all may have open,
// and optionally how many bytes they have made it read. When a new connection (or a read)
// would pass a limit, the OLDEST connections are dropped first, so a flood cannot keep new
// connections out: it only makes its own connections short-lived. A legitimate connection is
// lost only if more newer ones than the limit arrive before it authenticates, which for a
// real peer takes one round trip.
//
// A Limiter knows nothing of the network: the caller admits each connection under the source
// address it came from (Source), releases its slot when the connection authenticates or ends,
// and says how to drop it. mesh puts memberlist's TCP listener under one (with byte budgets,
// since memberlist authenticates a stream only after reading all of it); relay/wire its
// connections awaiting their hello (counts only: the hello's size is bounded by the codec).
//
// Lock order: Limiter.mu only. The drop and notify functions are called after it is released.
package connlimit
