// The Phone-a-Friend exchange between two `paf-peer mcp` processes, driven
// by the official TypeScript MCP SDK client (Client + StdioClientTransport)
// as Claude Code and other Node-based agents drive it. Run by
// cmd/paf-peer/ts_client_e2e_test.go; it can also be run by hand:
//
//   PAF_PEER_BIN=/path/to/paf-peer PAF_RUN_DIR=/tmp/r \
//   PAF_TS_LISTENER_STATE=/tmp/s1 PAF_TS_CALLER_STATE=/tmp/s2 node exchange.mjs
//
// Every step is asserted: a mismatch throws, the script prints what went
// wrong (with both peers' stderr) and exits 1. On success it prints one
// summary line on stdout.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { readFileSync } from "node:fs";

// The deadline for one peer to see another through gossip; generous, as the
// binary may run under the race detector on a loaded 2-core machine.
const SEE_DEADLINE_MS = 15_000;
const POLL_MS = 20;
// A blocking call waits at most this long on the server; the SDK's request
// timeout (60 s by default) is above it.
const WAIT_SECONDS = 30;

const TOOLS = [
  "paf_register", "paf_rename", "paf_list_sessions", "paf_send", "paf_broadcast", "paf_check",
  "paf_listen", "paf_connect", "paf_wait_response", "paf_respond", "paf_refocus", "paf_end_session",
];

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
}

function check(cond, what, got) {
  if (!cond) {
    throw new Error(`${what}${got === undefined ? "" : `; got: ${JSON.stringify(got)}`}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond) {
  const deadline = Date.now() + SEE_DEADLINE_MS;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${SEE_DEADLINE_MS} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

// A peer: one `paf-peer mcp` process with a client connected over stdio.
class Peer {
  constructor(who, stateDir) {
    this.who = who;
    this.stderr = "";
    this.errors = [];
    // Only what the peer needs: no PAF_SECRET or XDG_* leaks in.
    const env = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PAF_RUN_DIR: need("PAF_RUN_DIR"),
      PAF_STATE_DIR: stateDir,
    };
    if (process.env.GORACE) env.GORACE = process.env.GORACE;
    this.transport = new StdioClientTransport({
      command: need("PAF_PEER_BIN"),
      args: ["mcp"],
      env,
      stderr: "pipe",
    });
    this.transport.stderr.on("data", (d) => { this.stderr += d.toString(); });
    this.client = new Client({ name: "paf-ts-e2e", version: "1" }, { capabilities: {} });
    // A line on stdout that is not JSON-RPC, or a broken pipe, lands here.
    this.client.onerror = (err) => { this.errors.push(`${err}`); };
  }

  async connect() {
    await this.client.connect(this.transport);
    // The SDK keeps the child process private; its exit status is worth
    // checking (stdin closed must mean a clean exit 0), so look it up, but
    // only use it if this SDK version has it.
    const child = this.transport._process;
    this.exit = child
      ? new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
      : null;
  }

  // call calls a tool that must succeed and returns its structuredContent
  // (and text).
  async call(tool, args = {}, options) {
    const res = await this.client.callTool({ name: tool, arguments: args }, undefined, options);
    const text = (res.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");
    check(!res.isError, `${this.who}: ${tool}(${JSON.stringify(args)}) returned an error result: ${text}`);
    check(res.structuredContent && typeof res.structuredContent === "object",
      `${this.who}: ${tool}: no structuredContent`, res);
    return { data: res.structuredContent, text };
  }

  async sessions() {
    const { data } = await this.call("paf_list_sessions");
    check(Array.isArray(data.sessions), `${this.who}: paf_list_sessions: no sessions array`, data);
    return new Map(data.sessions.map((s) => [s.name, s]));
  }

  // close closes stdin (the end of input, on which the peer leaves and
  // exits) and checks how it ended.
  async close() {
    await this.client.close();
    if (this.exit) {
      const { code, signal } = await this.exit;
      check(code === 0, `${this.who}: paf-peer mcp exited with code ${code}, signal ${signal} after its stdin closed; want 0`);
    }
    check(!/DATA RACE|panic:|fatal error:/.test(this.stderr), `${this.who}: paf-peer mcp reported a race or a panic`);
    check(this.errors.length === 0, `${this.who}: transport errors: ${this.errors.join("; ")}`);
  }
}

async function main() {
  const t0 = Date.now();
  const listener = new Peer("listener", need("PAF_TS_LISTENER_STATE"));
  const caller = new Peer("caller", need("PAF_TS_CALLER_STATE"));
  const peers = [listener, caller];
  try {
    await Promise.all(peers.map((p) => p.connect()));

    // initialize: the Claude Code channel capability and instructions.
    const caps = listener.client.getServerCapabilities();
    check(caps?.experimental?.["claude/channel"] !== undefined,
      "initialize: capabilities.experimental lacks claude/channel", caps);
    check(caps?.tools !== undefined, "initialize: no tools capability", caps);
    const instructions = listener.client.getInstructions() ?? "";
    check(instructions.includes('<channel source="paf"'),
      "initialize: the instructions do not explain channel messages", instructions);
    const server = listener.client.getServerVersion();
    check(server?.name, "initialize: no serverInfo", server);

    // tools/list: exactly the 12 tools.
    const { tools } = await listener.client.listTools();
    const names = tools.map((t) => t.name).sort();
    check(JSON.stringify(names) === JSON.stringify([...TOOLS].sort()), "tools/list: not the 12 tools", names);
    for (const t of tools) {
      check(t.inputSchema?.type === "object", `tools/list: ${t.name} has no object input schema`, t.inputSchema);
    }

    // The listener registers; the caller sees it with its description.
    const description = "expert on the billing service (TypeScript SDK test)";
    const reg = await listener.call("paf_register", { name: "ts-expert", description });
    check(reg.data.name === "ts-expert", "paf_register: the name in the result", reg.data);
    await waitFor("the caller to list ts-expert with its description", async () =>
      (await caller.sessions()).get("ts-expert")?.description === description);

    // The listener blocks in paf_listen; the caller sees it listening.
    const listen = listener.call("paf_listen", { timeout_seconds: WAIT_SECONDS });
    listen.catch(() => {}); // awaited below; do not let an early failure go unhandled
    await waitFor("the caller to see ts-expert listening", async () =>
      (await caller.sessions()).get("ts-expert")?.activity === "listening");

    // The caller connects with an intent and asks.
    const intent = "why do payment retries double-charge?";
    const question = "Retries after a gateway timeout charge twice. Why?";
    const conn = await caller.call("paf_connect", { target_session: "ts-expert", intent, my_name: "ts-caller" });
    const conv = conn.data.conversation_id;
    check(typeof conv === "string" && conv !== "", "paf_connect: no conversation_id", conn.data);
    check(conn.data.status === "delivered", "paf_connect: status", conn.data);
    const sent = await caller.call("paf_send", { to: "ts-expert", message: question });
    check(sent.data.status === "delivered" && sent.data.conversation_id === conv,
      `paf_send: want delivered in conversation ${conv}`, sent.data);

    // The listener's paf_listen returns the question with the intent (the
    // opening may come alone: then listen again for the question).
    let got = [];
    let res = await listen;
    let texts = res.text;
    got.push(...res.data.messages);
    while (!got.some((m) => m.body === question)) {
      check(got.length < 10, "paf_listen: the question never arrived", got);
      res = await listener.call("paf_listen", { timeout_seconds: WAIT_SECONDS });
      check(!res.data.timed_out, "paf_listen timed out before the question arrived", got);
      texts += res.text;
      got.push(...res.data.messages);
    }
    check(got[0].new_conversation === true, "paf_listen: the first message does not open the conversation", got[0]);
    for (const m of got) {
      check(m.conversation_id === conv && m.intent === intent && m.from === "ts-caller",
        `paf_listen: want conversation ${conv}, intent and from ts-caller`, m);
    }
    check(texts.includes(`intent: ${intent}`), "paf_listen: the text does not show the intent", texts);

    // The listener answers; the caller's paf_wait_response returns it.
    const answer = "The idempotency key is made per attempt; make it per payment.";
    await listener.call("paf_respond", { message: answer });
    const wr = await caller.call("paf_wait_response", { conversation_id: conv, timeout_seconds: WAIT_SECONDS });
    const replies = wr.data.messages;
    check(replies.length === 1 && replies[0].kind === "reply" && replies[0].body === answer &&
      replies[0].conversation_id === conv && replies[0].from === "ts-expert",
      "paf_wait_response: want the listener's reply", replies);

    // The caller ends the conversation; the listener is told.
    const end = await caller.call("paf_end_session", { conversation_id: conv });
    check(end.text.includes(conv), "paf_end_session: the text does not name the conversation", end.text);
    const ended = await listener.call("paf_listen", { timeout_seconds: WAIT_SECONDS });
    const em = ended.data.messages;
    check(em.length === 1 && em[0].kind === "end" && em[0].conversation_id === conv,
      "the listener's paf_listen after the end: want the end of the conversation", em);

    for (const p of peers) await p.close();
    const version = listener.client.getServerVersion();
    console.log(`ts-client ok: @modelcontextprotocol/sdk ${sdkVersion} with ${version.name} ${version.version}, ${tools.length} tools, ` +
      `conversation ${conv} (listen, connect, send, respond, wait_response, end), ${Date.now() - t0} ms`);
  } catch (err) {
    for (const p of peers) {
      console.error(`--- stderr of paf-peer mcp (${p.who}):\n${p.stderr}`);
    }
    await Promise.allSettled(peers.map((p) => p.client.close()));
    throw err;
  }
}

const sdkVersion = JSON.parse(readFileSync(new URL(
  "./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url))).version;
main().catch((err) => {
  console.error(`ts-client FAILED (@modelcontextprotocol/sdk ${sdkVersion}): ${err.stack ?? err}`);
  process.exit(1);
});
