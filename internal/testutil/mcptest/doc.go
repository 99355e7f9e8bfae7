// Package mcptest holds the helpers shared by tests that drive an MCP server through mcp-go's
// client: mcpserver's in-process sessions and cmd/paf-peer's `paf-peer mcp` processes. It
// initializes a client the way Claude Code does ([Initialize]), makes tool calls ([Call], and
// [Async] for one that blocks), reads results ([Text], [Structured]) and records the
// notifications a client receives ([Notes]).
//
// It is a package of its own, beside testutil, so that only the tests that speak MCP link
// mcp-go. Like testutil it imports nothing of paf-mesh's own. The only goroutine it starts is
// Async's, which ends when its call returns.
package mcptest
