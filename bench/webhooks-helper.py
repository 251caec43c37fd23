"""Helpers of bench/webhooks: a webhook receiver that fails a share of
its deliveries, a load of createLead mutations, and many GraphQL
subscriptions over WebSocket (graphql-transport-ws) timing what they get.

    python3 bench/webhooks-helper.py receive PORT FAIL_RATE LOG
    python3 bench/webhooks-helper.py load HOST PORT TOKEN COUNT THREADS OUT
    python3 bench/webhooks-helper.py live HOST PORT TOKEN CONNECTIONS PER_CONNECTION EVENTS FILTER OUT
"""

import asyncio
import http.client
import http.server
import json
import random
import sys
import threading
import time

CREATE = "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }"


def receive(port, fail_rate, log_path):
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            arrived = time.time()
            status = 500 if random.random() < fail_rate else 204
            try:
                record = json.loads(body)["data"]["id"]
            except Exception:
                record = "-"
            with lock:
                log.write(f"{arrived:.6f}\t{self.headers.get('webhook-id')}\t{record}\t{status}\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        # The default backlog (5) drops connections a burst opens at once,
        # and the kernel retries them a second later.
        request_queue_size = 1024
        daemon_threads = True

    server = Server(("127.0.0.1", port), Handler)
    server.serve_forever()


def create(conn, token, last_name):
    body = json.dumps({"query": CREATE, "variables": {"input": {"lastName": last_name, "company": "Bench"}}})
    conn.request("POST", "/graphql", body, {"content-type": "application/json", "authorization": f"Bearer {token}"})
    answer = json.loads(conn.getresponse().read())
    return answer["data"]["createLead"]["id"], time.time()


def load(host, port, token, count, threads, out_path):
    results = []
    lock = threading.Lock()
    counter = iter(range(count))

    def work():
        conn = http.client.HTTPConnection(host, port)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            made = create(conn, token, f"Load {n}")
            with lock:
                results.append(made)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    with open(out_path, "w") as out:
        for record, at in results:
            out.write(f"{record}\t{at:.6f}\n")
    print(f"{count} leads in {time.time() - started:.1f} s", file=sys.stderr)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] if values else 0


async def live(host, port, token, connections, per_connection, events, with_filter, out_path):
    import websockets

    arrivals = {}
    ready = 0
    query = (
        'subscription { recordChanged(object: "Lead", events: [CREATED]'
        + (', filter: { company: { eq: "Bench" } }' if with_filter == "filter" else "")
        + ") { id record { ... on Lead { lastName } } } }"
    )

    async def client(n):
        nonlocal ready
        async with websockets.connect(
            f"ws://{host}:{port}/graphql", subprotocols=["graphql-transport-ws"], max_queue=None
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for s in range(per_connection):
                await ws.send(json.dumps({"type": "subscribe", "id": str(s), "payload": {"query": query}}))
            ready += 1
            async for message in ws:
                message = json.loads(message)
                if message["type"] == "next":
                    record = message["payload"]["data"]["recordChanged"]["id"]
                    arrivals.setdefault(record, []).append(time.time())

    tasks = [asyncio.create_task(client(n)) for n in range(connections)]
    while ready < connections:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    print("listening", flush=True)
    sys.stdin.readline()  # the bench reads the server's memory and CPU, then says go
    loop = asyncio.get_running_loop()
    conn = http.client.HTTPConnection(host, port)
    committed = {}
    started = time.time()
    for n in range(events):
        record, at = await loop.run_in_executor(None, create, conn, token, f"Live {n}")
        committed[record] = at
        await asyncio.sleep(0.1)
    deadline = time.time() + 30
    expected = connections * per_connection
    while time.time() < deadline and sum(len(arrivals.get(r, [])) for r in committed) < expected * events:
        await asyncio.sleep(0.1)
    elapsed = time.time() - started
    latencies = [(t - committed[r]) * 1000 for r in committed for t in arrivals.get(r, [])]
    got = len(latencies)
    with open(out_path, "w") as out:
        json.dump(
            {
                "subscriptions": expected,
                "events": events,
                "expected": expected * events,
                "received": got,
                "p50": percentile(latencies, 0.5),
                "p95": percentile(latencies, 0.95),
                "max": max(latencies) if latencies else 0,
                "seconds": elapsed,
            },
            out,
        )
    print("done", flush=True)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "receive":
        receive(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    elif mode == "load":
        load(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    elif mode == "live":
        a = sys.argv
        asyncio.run(live(a[2], int(a[3]), a[4], int(a[5]), int(a[6]), int(a[7]), a[8], a[9]))
