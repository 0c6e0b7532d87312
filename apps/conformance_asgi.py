"""The conformance app as an ASGI 3 application, for Python's asynchronous gateway servers.

The harness drives any HTTP/1.1 gateway server against one known application, so that
what it observes is the server's behaviour, not the app's. This module is that app for
ASGI servers (uvicorn, hypercorn, daphne, granian). Its contract is apps/contract.json,
the table in README.md's "The conformance app contract"; apps/test_conformance_asgi.py
runs every case of the contract against it. It stands alone: the standard library only,
nothing shared with the other apps in apps/.

Routes (PATH_INFO is what is routed; SCRIPT_NAME is only reported):

    GET|HEAD /  and  /hello   200 text/plain; charset=utf-8, body "Hello, World!".
                              Any other method: 405 with "Allow: GET, HEAD".
    /sleep?ms=N               N decimal 0..=60000: sleeps N ms (asyncio.sleep: the loop
                              keeps serving), then 200 "slept N ms". A bad N: 400.
    /echo, /echo/...          200 application/json, keys sorted, ASCII-only: the
                              meta-variables below, and "body" in base64.
    /pid                      200 text/plain, os.getpid().
    /bytes?n=N                N decimal 0..=1073741824: 200 application/octet-stream,
                              N bytes of b"x" in http.response.body messages of 64 KiB.
    anything else             404 text/plain "Not Found".

Every response carries Content-Type and Content-Length; HEAD gets the headers a GET
would have and an empty body.

ASGI hands the app a scope, not CGI meta-variables, so this app is the one that maps
them, as asgiref's WsgiToAsgi does:

    REQUEST_METHOD    scope["method"]
    SCRIPT_NAME       scope["root_path"] ("" when absent)
    PATH_INFO         scope["path"] with root_path taken off its front. The server has
                      already percent-decoded it and decoded the bytes as UTF-8; it is
                      encoded back to UTF-8 and read as ISO-8859-1, so that its text is
                      one character per byte like every other app's (a path that was not
                      UTF-8 was changed by the server and cannot be recovered).
    QUERY_STRING      scope["query_string"] as ISO-8859-1
    SERVER_PROTOCOL   "HTTP/" + scope["http_version"]
    SERVER_NAME/PORT  scope["server"] (host, port); "" when absent
    REMOTE_ADDR       scope["client"][0]; "" when absent
    headers           content-type and content-length as CONTENT_TYPE and CONTENT_LENGTH,
                      every other as HTTP_ + name upper-cased, "-" as "_"; a repeated
                      field joined with ", "; a name holding "_" dropped (it could pass
                      for its hyphenated twin). Values as ISO-8859-1.

The body is every http.request message's body until more_body is false. RFC 3875
section 4.1.2 wants CONTENT_LENGTH to be the decoded body's length, chunked bodies
included; a CGI or WSGI server sets it, but under ASGI nobody else can, so a request
with a Transfer-Encoding and no Content-Length gets CONTENT_LENGTH counted here.

Lifespan events are answered (startup.complete, shutdown.complete) so servers that send
them do not complain; a websocket is refused (closed before it is accepted, which the
server turns into 403).

Running it (from the repository root; PORT is any free port):

    uvicorn --app-dir apps --host 127.0.0.1 --port $PORT conformance_asgi:app
    cd apps && hypercorn --bind 127.0.0.1:$PORT conformance_asgi:app
    cd apps && daphne -b 127.0.0.1 -p $PORT conformance_asgi:app
    cd apps && granian --interface asgi --host 127.0.0.1 --port $PORT conformance_asgi:app

Query parameters are percent-decoded; when one is repeated, the first occurrence counts.
"""

import asyncio
import base64
import json
import os
from urllib.parse import unquote_to_bytes

_TEXT = b"text/plain; charset=utf-8"
_MAX_SLEEP_MS = 60_000
_MAX_BYTES = 1_073_741_824
_PIECE = 64 * 1024
_PIECE_BYTES = b"x" * _PIECE
# CGI meta-variables always reported by /echo, "" when the scope has nothing for one.
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


class BadRequest(Exception):
    """A request the app refuses with 400; the message becomes the response body."""


def _latin1(raw):
    return raw.decode("latin-1")


def _meta_variables(scope):
    """The CGI meta-variables of an HTTP scope (see the module docstring), as text."""
    root_path = scope.get("root_path", "") or ""
    script_name = root_path.encode("utf-8").decode("latin-1")
    path_info = scope.get("path", "").encode("utf-8").decode("latin-1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("", None)
    client = scope.get("client") or ("", None)
    http_version = scope.get("http_version", "")
    variables = {
        "REQUEST_METHOD": scope.get("method", ""),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": _latin1(scope.get("query_string", b"")),
        "SERVER_PROTOCOL": "HTTP/" + http_version if http_version else "",
        "SERVER_NAME": server[0] or "",
        "SERVER_PORT": "" if server[1] is None else str(server[1]),
        "REMOTE_ADDR": client[0] or "",
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = _latin1(raw_name)
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = _latin1(raw_value)
        variables[key] = variables[key] + ", " + value if key in variables else value
    return variables


def _query_param(scope, name):
    """Return the first value of query parameter `name` as bytes, or None if it is absent."""
    wanted = name.encode("ascii")
    for field in scope.get("query_string", b"").split(b"&"):
        if not field:
            continue
        key, _, value = field.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == wanted:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def _bounded_int(scope, name, maximum):
    """Parse query parameter `name` as a decimal integer in 0..=maximum."""
    raw = _query_param(scope, name)
    if raw is None:
        raise BadRequest("missing query parameter %s (want %s=N with N in 0..=%d)\n" % (name, name, maximum))
    # bytes.isdigit is ASCII digits only; ten digits already exceed every limit.
    if not (raw.isdigit() and len(raw) <= 10):
        raise BadRequest("query parameter %s=%r is not a decimal integer in 0..=%d\n" % (name, _latin1(raw), maximum))
    value = int(raw)
    if value > maximum:
        raise BadRequest("query parameter %s=%d is out of range 0..=%d\n" % (name, value, maximum))
    return value


async def _read_body(receive):
    """Every http.request message's body, until more_body is false or the client left."""
    pieces = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        pieces.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(pieces)


async def _echo(variables, receive):
    """Build the /echo JSON document (as bytes) from the request's meta-variables and body."""
    body = await _read_body(receive)
    if "CONTENT_LENGTH" not in variables and "HTTP_TRANSFER_ENCODING" in variables:
        variables["CONTENT_LENGTH"] = str(len(body))
    document = {key: variables.get(key, "") for key in _ECHO_KEYS}
    for key, value in variables.items():
        if key.startswith("HTTP_") or (key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value):
            document[key] = value
    document["body"] = base64.b64encode(body).decode("ascii")
    return json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def _start(send, status, content_type, length, extra_headers=()):
    headers = [(b"content-type", content_type), (b"content-length", str(length).encode("ascii"))]
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _respond(send, head, status, content_type, body, extra_headers=()):
    """Send a response whose body is fully known; HEAD gets its headers only."""
    await _start(send, status, content_type, len(body), extra_headers)
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


async def _send_x_bytes(send, count):
    """Send `count` bytes of b"x" in messages of at most 64 KiB, the last one closing the body.

    Each message waits on the server (send applies its flow control), so even 1 GiB
    is never more than one piece in this app's memory.
    """
    sent = 0
    while sent < count:
        piece = _PIECE_BYTES if count - sent >= _PIECE else _PIECE_BYTES[: count - sent]
        sent += len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": sent < count})
    if count == 0:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _http(scope, receive, send):
    variables = _meta_variables(scope)
    method = variables["REQUEST_METHOD"]
    path = variables["PATH_INFO"] or "/"
    head = method == "HEAD"
    try:
        if path in ("/", "/hello"):
            if method not in ("GET", "HEAD"):
                await _respond(send, head, 405, _TEXT, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            else:
                await _respond(send, head, 200, _TEXT, b"Hello, World!")
        elif path == "/sleep":
            ms = _bounded_int(scope, "ms", _MAX_SLEEP_MS)
            await asyncio.sleep(ms / 1000.0)
            await _respond(send, head, 200, _TEXT, ("slept %d ms" % ms).encode("ascii"))
        elif path == "/echo" or path.startswith("/echo/"):
            await _respond(send, head, 200, b"application/json", await _echo(variables, receive))
        elif path == "/pid":
            await _respond(send, head, 200, _TEXT, str(os.getpid()).encode("ascii"))
        elif path == "/bytes":
            count = _bounded_int(scope, "n", _MAX_BYTES)
            await _start(send, 200, b"application/octet-stream", count)
            if head:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await _send_x_bytes(send, count)
        else:
            await _respond(send, head, 404, _TEXT, b"Not Found")
    except BadRequest as error:
        # Raised only before a response was started.
        await _respond(send, head, 400, _TEXT, str(error).encode("utf-8"))


async def _lifespan(receive, send):
    """Answer startup and shutdown, so servers that send lifespan events do not warn."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _refuse_websocket(receive, send):
    """Close a websocket before accepting it: the server answers the handshake with 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})


async def app(scope, receive, send):
    """The ASGI 3 entry point (a single async callable)."""
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
    elif kind == "websocket":
        await _refuse_websocket(receive, send)
    else:
        # The ASGI spec: an app raises for a scope type it does not know.
        raise ValueError("conformance_asgi: unknown scope type %r" % kind)


application = app
