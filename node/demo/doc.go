// Package demo is the script of `paf-peer demo`: a few agent sessions, each a
// node.Node with its MCP server and an in-process MCP client, play a
// conversation, a message for a session not yet started, a rename and a
// broadcast through the same tools an agent calls, and the transcript is
// written out. It needs no setup: the caller gives it a run dir and a state
// dir of its own (the command uses a temporary directory it removes), and
// every peer is closed before Play returns.
package demo
