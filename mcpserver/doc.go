// Package mcpserver is the MCP face of a paf peer: the tools, resources,
// prompts and push notifications one AI agent session uses to talk to the
// other sessions of the mesh, served over stdio with
// github.com/mark3labs/mcp-go.
//
// A Server serves one agent session. It keeps that session's conversations
// (SPEC section 4): who it talks to, the intent and its refocus history, and
// which conversation a reply belongs to, so that a listener can serve
// several callers and a caller's wait returns the right answer. Everything
// about names, delivery and storage is the Backend's (the peer's mesh
// membership and relay); the handlers are thin.
//
// Guarantees:
//   - Nothing but JSON-RPC is written to the output; logs go to the injected
//     logger.
//   - initialize never waits for the mesh: tools that need it wait for it,
//     bounded by Config.JoinWait, and otherwise say to retry.
//   - A message is marked read only after it has been put into a tool result
//     whose request was not cancelled; a cancelled or timed-out wait loses
//     nothing. Each arriving message is also pushed once as a
//     notifications/claude/channel notification, and stays unread until a
//     tool returns it; a message a tool returns before it was pushed (a
//     waiting paf_listen takes what arrives) is pushed after that result
//     (over stdio, right behind it in the same write).
//   - Over stdio, tool calls of this server's tools are decoded, checked and
//     answered by the server's own loop (toolcall.go; a plain line is read
//     in one validating pass, members.go), with the answers mcp-go gives;
//     every other request goes to mcp-go. Each message is written with one
//     write.
//   - Every tool result is readable text plus structuredContent, and says how
//     many messages are waiting unread. A mistake the model can fix is a
//     result with IsError and a sentence saying what to do, never a crash.
package mcpserver
