#!/usr/bin/env python3
"""half_sent.py HOST PORT N [ROUNDS | hold]: open N connections to the HTTP
server that send half a request head and then nothing, as a slowloris
client does.  With ROUNDS (default 3), print the worst latency in
milliseconds of that many GET /api/v1/status requests made meanwhile (or
'timeout' after 30 s).  With 'hold', print 'held' and keep them open until
killed, so that another user can measure; every 0.2 s print 'kept K closed
C': how many the server has not yet closed (or answered) and how many it
has."""
import select
import socket
import sys
import time


def status_ms(host, port):
    t0 = time.monotonic()
    c = socket.create_connection((host, port), timeout=30)
    c.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
              % (host.encode(), port))
    reply = c.recv(64)
    c.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise OSError("answer: " + reply[:24].decode(errors="replace"))
    return (time.monotonic() - t0) * 1000


host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "3"
held = []
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: %s:%d\r\nX-Slow: " % (host.encode(), port))
    held.append(s)
if mode == "hold":
    print("held", flush=True)
    for _ in range(3000):
        time.sleep(0.2)
        ready = select.select(held, [], [], 0)[0]
        print("kept %d closed %d" % (n - len(ready), len(ready)), flush=True)
    sys.exit(0)
time.sleep(0.2)
try:
    print("%d" % max(status_ms(host, port) for _ in range(int(mode))))
except OSError as e:
    print("timeout" if isinstance(e, socket.timeout) else str(e))
