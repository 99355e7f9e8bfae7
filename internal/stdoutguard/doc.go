// Package stdoutguard keeps a process's stdout for one channel alone (the MCP
// JSON-RPC stream of `paf-peer mcp`): whatever else writes to stdout, a
// library included, lands on stderr instead of corrupting the stream.
package stdoutguard
