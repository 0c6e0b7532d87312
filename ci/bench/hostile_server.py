#!/usr/bin/env python3
"""Servers that make a conformance run slow or large, one per mode, for
ci/bench-harness.sh: the run must keep its time budget, and the harness its
memory bound, whatever the server does.

  silent        accepts and reads, never answers
  never-read    accepts, never reads, never answers
  never-close   answers every request with a close-framed "Hello, World!"
                and never closes the connection
  trickle       answers a complete response one byte a second
  die           answers one request, then exits
  slow-first    answers its first request after 4 s (a runtime warming up),
                every later one at once
  stop          answers its first 5 requests, then reads and never answers
  endless       answers every request with a 200 head framed by close, then
                writes body bytes as fast as it can until the client goes
  endless-chunked
                the same, chunked: 64 KiB chunks without a last one
  endless-length
                the same under a Content-Length just below the harness's
                64 MiB per-response cap, and past it: the bytes never stop

(ci/bench-harness.sh times all but stop; harness/tests/hostile_servers.rs
uses them all.) Each listens on $HOST:$PORT (default 127.0.0.1:8888) and serves every
connection in a thread of its own, so that only the mode's behaviour, not a
queue, is what the harness meets.
"""
import os
import socket
import sys
import threading
import time

MODES = (
    "silent",
    "never-read",
    "never-close",
    "trickle",
    "die",
    "slow-first",
    "stop",
    "endless",
    "endless-chunked",
    "endless-length",
)
HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!"
FRAMED = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!"
# Connections held open, so that no socket is closed by garbage collection.
held = []
# For slow-first: set once the first request has been taken.
first_taken = threading.Event()
# For stop: requests answered so far.
answered = [0]
answered_lock = threading.Lock()
STOP_AFTER = 5
# For the endless modes: what precedes the endless bytes, and the bytes.
ENDLESS_HEADS = {
    "endless": b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n",
    "endless-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "endless-length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % ((64 << 20) - 1),
}
ENDLESS_BLOCK = b"x" * (64 << 10)
ENDLESS_CHUNK = b"%x\r\n" % len(ENDLESS_BLOCK) + ENDLESS_BLOCK + b"\r\n"


def read_request(conn):
    """Reads until a blank line (or the peer's end); True if one came."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
        if len(data) > 1 << 20:
            return False
    return True


def serve(conn, mode):
    try:
        if mode == "never-read":
            held.append(conn)
            return
        if mode == "silent":
            while conn.recv(65536):
                pass
            return
        if not read_request(conn):
            return
        if mode == "never-close":
            conn.sendall(HELLO)
            held.append(conn)
            while conn.recv(65536):
                pass
        elif mode == "trickle":
            for byte in FRAMED:
                conn.sendall(bytes([byte]))
                time.sleep(1)
        elif mode == "die":
            conn.sendall(FRAMED)
            conn.close()
            os._exit(0)
        elif mode == "stop":
            with answered_lock:
                answered[0] += 1
                answering = answered[0] <= STOP_AFTER
            if answering:
                conn.sendall(FRAMED)
            else:
                while conn.recv(65536):
                    pass
        elif mode in ENDLESS_HEADS:
            conn.sendall(ENDLESS_HEADS[mode])
            block = ENDLESS_CHUNK if mode == "endless-chunked" else ENDLESS_BLOCK
            # Ends when the client closes or resets (EPIPE, ECONNRESET: Python
            # ignores SIGPIPE), never on its own.
            while True:
                conn.sendall(block)
        elif mode == "slow-first":
            if not first_taken.is_set():
                first_taken.set()
                time.sleep(4)
            conn.sendall(FRAMED)
    except OSError:
        pass
    finally:
        if mode not in ("never-read", "never-close"):
            conn.close()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in MODES:
        print(f"usage: hostile_server.py {{{'|'.join(MODES)}}}", file=sys.stderr)
        sys.exit(2)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8888"))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    print(f"listening on http://{host}:{listener.getsockname()[1]} ({mode})", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    main()
