#!/usr/bin/env python3
"""What hostile and careless clients do to a running Board, measured as a client would.

Usage: scripts/hostile-clients.py [MAIL_DIR] [HOST:PORT]
       (defaults: .local/mail and 127.0.0.1:8080, i.e. `make run` with MAIL_TRANSPORT=file)

It signs up a few accounts of its own (through the mail folder), then prints one line per
case: made-up HTTP methods against /metrics' size; invisible nicknames; 256 keyed POSTs, 64
at a time, from one member with a log-in in the middle; 2,000 half requests from one
address; a request whose headers trickle in. The limits it meets are described in the
README ("Limits on clients"). Standard library only.
"""
import asyncio, json, socket, time, uuid, glob, os, re, sys

MAIL = sys.argv[1] if len(sys.argv) > 1 else ".local/mail"
HOST, PORT = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8080").rsplit(":", 1)
PORT = int(PORT)

async def http(method, path, body=None, headers=None, timeout=30):
    r, w = await asyncio.open_connection(HOST, PORT)
    h = {"Host": "board", "Connection": "close"}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(data))
    h.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    w.write(req.encode() + data)
    await w.drain()
    raw = await asyncio.wait_for(r.read(), timeout)
    w.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, rest

def link_for(email):
    for f in sorted(glob.glob(os.path.join(MAIL, "*.eml"))):
        t = open(f).read()
        if f"To: {email}" in t:
            m = re.search(r"verify\?verify_id=(\S+)", t)
            if m: return m.group(1)

async def member(email, nick, pw="correct horse battery"):
    s, b = await http("POST", "/signup", {"email": email, "password": pw, "nickname": nick})
    assert s == 201, (s, b)
    for _ in range(100):
        tok = link_for(email)
        if tok: break
        await asyncio.sleep(0.05)
    s, _ = await http("GET", f"/verify?verify_id={tok}")
    assert s == 200
    s, b = await http("POST", "/auth", {"email": email, "password": pw})
    assert s == 200, (s, b)
    return json.loads(b)["accessToken"]

async def row1():
    run = uuid.uuid4().hex[:8]
    tok = await member(f"flood-{run}@example.com", f"fl{run[:6]}")
    other = f"other-{run}@example.com"
    await member(other, f"ot{run[:6]}")
    sem = asyncio.Semaphore(64)
    statuses = {}
    async def one():
        async with sem:
            s, _ = await http("POST", f"/board/categories/{uuid.uuid4()}/posts", {"title": "t", "content": "c"},
                              {"Authorization": f"Bearer {tok}", "Idempotency-Key": uuid.uuid4().hex})
            statuses[s] = statuses.get(s, 0) + 1
    async def login():
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        s, _ = await http("POST", "/auth", {"email": other, "password": "correct horse battery"})
        return s, time.monotonic() - t0
    results = await asyncio.gather(login(), *[one() for _ in range(256)])
    print(f"row1: 256 keyed POSTs 64 at a time -> {dict(sorted(statuses.items()))}; login meanwhile -> {results[0][0]} in {results[0][1]*1000:.0f} ms")

async def metrics_lines():
    s, b = await http("GET", "/metrics")
    return len(b.decode().splitlines()), len(b)

async def row2():
    before = await metrics_lines()
    for i in range(300):
        try:
            await http(f"X{i}Y", "/")
        except Exception:
            pass
    after = await metrics_lines()
    print(f"row2: /metrics before {before[0]} lines / {before[1]} B, after 300 made-up methods {after[0]} lines / {after[1]} B")

async def row3():
    r, w = await asyncio.open_connection(HOST, PORT)
    w.write(b"GET /health/live HTTP/1.1\r\nX-Slow: ")
    t0 = time.monotonic()
    closed = None
    for _ in range(200):  # up to 40 s
        try:
            w.write(b"a"); await w.drain()
        except Exception:
            closed = time.monotonic() - t0; break
        try:
            data = await asyncio.wait_for(r.read(1024), 0.2)
            if data == b"" or data:
                closed = time.monotonic() - t0; break
        except asyncio.TimeoutError:
            pass
    print(f"row3: headers trickling in: closed by the server after {closed:.1f} s" if closed else "row3: still open after 40 s")

async def row4():
    socks = []
    for _ in range(2000):
        s = socket.create_connection((HOST, PORT))
        s.sendall(b"GET /health/li")
        socks.append(s)
    await asyncio.sleep(1)
    answered = {}
    for s in socks:
        s.settimeout(0.05)
        try:
            d = s.recv(64)
            key = d.split(b"\r\n")[0].decode() if d else "closed"
        except socket.timeout:
            key = "held"
        except ConnectionResetError:
            key = "reset"
        answered[key] = answered.get(key, 0) + 1
    for s in socks: s.close()
    print(f"row4: 2000 half requests from one address -> {answered}")

async def row5():
    run = uuid.uuid4().hex[:8]
    out = []
    for nick in ["\u200b\u200b", "ab\u202ecd"]:
        s, b = await http("POST", "/signup", {"email": f"n{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery", "nickname": nick})
        out.append(s)
    print(f"row5: nickname zero-width spaces -> {out[0]}, right-to-left override -> {out[1]}")

async def main():
    for row in [row2, row5, row1, row4, row3]:
        await row()
asyncio.run(main())
