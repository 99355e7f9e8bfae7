"""A non-durable hub for pafbench's baseline: the Phone-a-Friend seed's architecture.

One asyncio TCP server on 127.0.0.1; each agent session (an MCP server process in the seed)
keeps one connection to it and speaks newline-delimited JSON, one request at a time:

  {"op": "register", "name": N}        -> {"ok": true}
  {"op": "send", "to": N, "body": B}   -> {"ok": true, "status": "delivered"} once the message
                                          is queued for N (in memory only: nothing is durable)
  {"op": "listen"}                     -> {"ok": true, "messages": [...]} as soon as at least
                                          one message is queued for this session

Written for the benchmark from the seed's description (shared/seeds/phone-a-friend.md); it
prints "listening PORT" once it accepts connections and runs until killed.
"""
import asyncio
import json
import sys


class Hub:
    def __init__(self):
        self.queues = {}

    def queue(self, name):
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = asyncio.Queue()
        return q

    async def serve(self, reader, writer):
        me = None
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                req = json.loads(line)
                op = req.get("op")
                if op == "register":
                    me = req["name"]
                    self.queue(me)
                    resp = {"ok": True}
                elif op == "send":
                    if req["to"] not in self.queues:
                        resp = {"ok": False, "error": "no session named " + req["to"]}
                    else:
                        self.queues[req["to"]].put_nowait({"from": me, "body": req["body"]})
                        resp = {"ok": True, "status": "delivered"}
                elif op == "listen":
                    q = self.queue(me)
                    msgs = [await q.get()]
                    while not q.empty():
                        msgs.append(q.get_nowait())
                    resp = {"ok": True, "messages": msgs}
                else:
                    resp = {"ok": False, "error": "unknown op %r" % (op,)}
            except (KeyError, TypeError, ValueError) as e:
                resp = {"ok": False, "error": "bad request: %s" % (e,)}
            writer.write((json.dumps(resp) + "\n").encode())
            await writer.drain()
        writer.close()


async def main():
    hub = Hub()
    server = await asyncio.start_server(hub.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("listening %d\n" % port)
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
