// Package setup is `paf-peer install` and `paf-peer doctor`: it adds paf-peer
// to the configuration of each agent client the way that client expects
// (Claude Code: an MCP server entry and the hooks; Gemini CLI: an MCP server
// entry, and a note about trusted folders; Codex: an [mcp_servers.paf] table
// with env_vars), and checks a machine's set-up and says what to fix.
//
// Guarantees of install: the user's other settings are kept (JSON objects
// keep their keys and order; in TOML only the lines of [mcp_servers.paf] that
// paf-peer owns are touched, comments and layout elsewhere stay as they are);
// a file that does not parse is reported and nothing at all is written; every
// file is backed up next to itself (NAME.bak-YYYYMMDD-HHMMSS) before it is
// changed and replaced atomically; a second run finds nothing to change and
// says so; a dry run prints the exact edits as a diff and writes nothing.
// Where the files are comes from the environment handed in (HOME, XDG_*,
// and the clients' own CLAUDE_CONFIG_DIR, GEMINI_CLI_HOME, CODEX_HOME), never
// from the process's own, so tests run against a temporary HOME.
package setup
