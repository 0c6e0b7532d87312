#!/usr/bin/env python3
"""The conformance app: a tiny WSGI (PEP 3333) application for testing gateway servers.

The harness drives any HTTP/1.1 gateway server against one known application, so that
what it observes is the server's behaviour, not the app's. This module is that app for
Python WSGI servers (gunicorn, waitress, wsgiref, ...). Its contract is the same as
the Rust reference server's built-in app; keep the two in step.

Contract (PATH_INFO is what is routed; SCRIPT_NAME is only reported):

    GET|HEAD /  and  /hello   200 text/plain; charset=utf-8, body "Hello, World!".
                              Any other method: 405 with "Allow: GET, HEAD".
    /sleep?ms=N               N decimal 0..=60000: sleeps N ms, then 200 "slept N ms".
                              Missing, invalid or out-of-range N: 400.
    /echo, /echo/...          200 application/json: one object (keys sorted, ASCII-only
                              JSON) with the CGI meta-variables as the app saw them:
                              REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
                              SERVER_PROTOCOL, SERVER_NAME, SERVER_PORT, REMOTE_ADDR
                              (absent ones as ""), CONTENT_TYPE and CONTENT_LENGTH only
                              when present and non-empty, every HTTP_* key, and "body":
                              the request body in standard base64. Values are environ
                              native strings as-is (PEP 3333: bytes decoded as latin-1).
    /pid                      200 text/plain, os.getpid() of the handling process.
    /bytes?n=N                N decimal 0..=1073741824: 200 application/octet-stream,
                              N bytes of b"x", streamed in 64 KiB pieces with a correct
                              Content-Length. Invalid N: 400.
    anything else             404 text/plain "Not Found".

Every response carries Content-Type and Content-Length; 400 bodies say what was wrong.
Routes other than / and /hello accept any method. HEAD responses carry the headers a
GET would have (Content-Length included) and an empty body, because not every WSGI
server strips the body of a HEAD response itself (wsgiref does not).

How /echo reads the body: with a non-empty CONTENT_LENGTH it reads exactly that many
bytes (fewer only if the input ends early). Without one it reads until EOF when the
server says the input is terminated (``wsgi.input_terminated``, set by gunicorn for
chunked bodies) or the request had a Transfer-Encoding; otherwise the body is empty,
as RFC 9112 section 6.3 says for a request with neither header. Reading to EOF in that
last case would block forever on servers that hand over the raw socket (wsgiref).

Running it (from the repository root; PORT is any free port):

    gunicorn --chdir apps -b 127.0.0.1:$PORT conformance_app:app
    cd apps && waitress-serve --listen=127.0.0.1:$PORT conformance_app:app
    python3 apps/conformance_app.py --host 127.0.0.1 --port $PORT   # wsgiref, iterative

The wsgiref server also reads HOST and PORT from the environment (defaults 127.0.0.1
and 8888; port 0 picks a free one), prints "listening on http://HOST:PORT" once it
listens, logs errors (not requests) to stderr, and exits 0 on SIGTERM or SIGINT at
once; a request in progress then sees its connection closed without a response.

Query parameters are percent-decoded; when one is repeated, the first occurrence counts.
"""

import base64
import json
import os
import re
import signal
import socket
import sys
import time
from urllib.parse import parse_qsl

_TEXT = "text/plain; charset=utf-8"
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
}
_MAX_SLEEP_MS = 60_000
_MAX_BYTES = 1_073_741_824
_PIECE = 64 * 1024
_PIECE_BYTES = b"x" * _PIECE
# Plain ASCII digits only: int() alone would also accept "+5", " 5", "5_0" and
# non-ASCII digits. Ten digits already exceed every limit, so longer strings are
# rejected before int() sees them.
_DECIMAL = re.compile(r"[0-9]{1,10}")
# CGI meta-variables always reported by /echo, "" when the server left one out.
_ECHO_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
)
_ECHO_OPTIONAL_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")
# Size of each read from wsgi.input, so a large body is never asked for in one call.
_READ_CHUNK = 64 * 1024


class BadRequest(Exception):
    """A request the app refuses with 400; the message becomes the response body."""


def _query_param(environ, name):
    """Return the first value of query parameter `name`, or None if it is absent."""
    query = environ.get("QUERY_STRING", "")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def _bounded_int(environ, name, maximum):
    """Parse query parameter `name` as a decimal integer in 0..=maximum."""
    raw = _query_param(environ, name)
    if raw is None:
        raise BadRequest("missing query parameter %s (want %s=N with N in 0..=%d)\n" % (name, name, maximum))
    if not _DECIMAL.fullmatch(raw):
        raise BadRequest("query parameter %s=%r is not a decimal integer in 0..=%d\n" % (name, raw, maximum))
    value = int(raw)
    if value > maximum:
        raise BadRequest("query parameter %s=%d is out of range 0..=%d\n" % (name, value, maximum))
    return value


def _read_body(environ):
    """Read the whole request body as /echo defines it (see the module docstring)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length_text = environ.get("CONTENT_LENGTH", "")
    if length_text:
        if not re.fullmatch(r"[0-9]{1,19}", length_text):
            raise BadRequest("CONTENT_LENGTH %r is not a decimal integer\n" % length_text)
        remaining = int(length_text)
        pieces = []
        while remaining > 0:
            piece = stream.read(min(remaining, _READ_CHUNK))
            if not piece:
                break  # The client sent less than it announced; report what arrived.
            pieces.append(piece)
            remaining -= len(piece)
        return b"".join(pieces)
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING"):
        pieces = []
        while True:
            piece = stream.read(_READ_CHUNK)
            if not piece:
                break
            pieces.append(piece)
        return b"".join(pieces)
    return b""


def _echo(environ):
    """Build the /echo JSON document (as bytes)."""
    document = {}
    for key in _ECHO_KEYS:
        value = environ.get(key, "")
        document[key] = value if isinstance(value, str) else ""
    for key in _ECHO_OPTIONAL_KEYS:
        value = environ.get(key)
        if isinstance(value, str) and value:
            document[key] = value
    for key, value in environ.items():
        if isinstance(key, str) and key.startswith("HTTP_") and isinstance(value, str):
            document[key] = value
    document["body"] = base64.b64encode(_read_body(environ)).decode("ascii")
    return json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _x_bytes(count):
    """Yield `count` bytes of b"x" in pieces of at most 64 KiB."""
    full, rest = divmod(count, _PIECE)
    for _ in range(full):
        yield _PIECE_BYTES
    if rest:
        yield _PIECE_BYTES[:rest]


def _respond(start_response, code, content_type, body, extra_headers=()):
    """Start a response with a fully known body and return the body iterable."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers.extend(extra_headers)
    start_response(_STATUS[code], headers)
    return [body]


def _route(environ, start_response):
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "") or "/"

    if path in ("/", "/hello"):
        if method not in ("GET", "HEAD"):
            return _respond(
                start_response,
                405,
                _TEXT,
                b"Method Not Allowed",
                [("Allow", "GET, HEAD")],
            )
        return _respond(start_response, 200, _TEXT, b"Hello, World!")

    if path == "/sleep":
        ms = _bounded_int(environ, "ms", _MAX_SLEEP_MS)
        time.sleep(ms / 1000.0)
        return _respond(start_response, 200, _TEXT, ("slept %d ms" % ms).encode("ascii"))

    if path == "/echo" or path.startswith("/echo/"):
        return _respond(start_response, 200, "application/json", _echo(environ))

    if path == "/pid":
        return _respond(start_response, 200, _TEXT, str(os.getpid()).encode("ascii"))

    if path == "/bytes":
        count = _bounded_int(environ, "n", _MAX_BYTES)
        start_response(
            _STATUS[200],
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(count))],
        )
        return _x_bytes(count)

    return _respond(start_response, 404, _TEXT, b"Not Found")


def app(environ, start_response):
    """The WSGI entry point (PEP 3333)."""
    try:
        body = _route(environ, start_response)
    except BadRequest as error:
        body = _respond(start_response, 400, _TEXT, str(error).encode("utf-8"))
    if environ.get("REQUEST_METHOD") == "HEAD":
        # Headers (Content-Length included) stay those of GET; the body goes.
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return []
    return body


application = app


class _Terminate(BaseException):
    """Raised from the SIGTERM/SIGINT handler to leave the idle serving loop at once.

    A BaseException so that no `except Exception` on the way swallows it.
    """


def main(argv=None):
    """Serve `app` with wsgiref's iterative server until SIGTERM or SIGINT."""
    import argparse
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    parser = argparse.ArgumentParser(description="Serve the conformance app with wsgiref.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8888")))
    args = parser.parse_args(argv)

    # True while a connection is being handled. wsgiref's handler has a bare `except`
    # around the application, so an exception raised into a request would be turned
    # into a 500 and swallowed; a signal that lands mid-request therefore ends the
    # process outright (the client sees the connection close), and one that lands
    # while idle unwinds the serving loop normally.
    busy = [False]

    class QuietHandler(WSGIRequestHandler):
        def handle(self):
            busy[0] = True
            try:
                super().handle()
            finally:
                busy[0] = False

        def log_request(self, code="-", size="-"):
            # Per-request access lines would swamp a benchmark; log_error (and thus
            # errors) still reaches stderr through log_message.
            pass

    def on_signal(signum, frame):
        if busy[0]:
            os._exit(0)
        raise _Terminate()

    server_class = WSGIServer
    shown_host = args.host
    if ":" in args.host:  # An IPv6 literal such as ::1.

        class IPv6Server(WSGIServer):
            address_family = socket.AF_INET6

        server_class = IPv6Server
        shown_host = "[%s]" % args.host

    server = make_server(args.host, args.port, app, server_class=server_class, handler_class=QuietHandler)
    try:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        print("listening on http://%s:%d" % (shown_host, server.server_port), flush=True)
        while True:
            server.handle_request()
    except _Terminate:
        pass
    finally:
        # Ignore a second signal while closing so the exit status stays 0.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
