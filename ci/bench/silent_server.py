#!/usr/bin/env python3
"""A server that fails everything: it accepts connections, reads what it is
sent, and never answers. ci/bench-harness.sh runs the harness against it to
show that a run does not wait out its timeouts one after another."""
import os
import selectors
import socket

host = os.environ.get("HOST", "127.0.0.1")
port = int(os.environ.get("PORT", "8888"))
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(1024)
listener.setblocking(False)
print(f"listening on http://{host}:{listener.getsockname()[1]}", flush=True)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is listener:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ)
        else:
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
