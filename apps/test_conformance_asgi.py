"""Tests for apps/conformance_asgi.py: the ASGI app called with fake receive and send.

Every case of apps/contract.json runs first (ContractTest), with the scope a server
would build for it; the tests after it pin what only ASGI has: a sleep that does not
block the loop, a body in several messages, lifespan and websocket scopes. No ASGI
server is needed: the standard library's asyncio drives the app.

Run from the repository root:  python3 -m unittest discover -s apps -p 'test_*.py'
"""

import asyncio
import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conformance_asgi  # noqa: E402  (needs the path set above)
import contract  # noqa: E402


class Exchange:
    """One call of the app: the messages it receives and the ones it sends, checked as sent."""

    def __init__(self, incoming):
        self.incoming = list(incoming)
        self.sent = []

    async def receive(self):
        if self.incoming:
            return self.incoming.pop(0)
        # A real server blocks here until the client disconnects; the app must not ask.
        raise AssertionError("the app asked for a message after the last one")

    async def send(self, message):
        if self.sent and self.sent[-1]["type"] == "http.response.body" and not self.sent[-1].get("more_body", False):
            raise AssertionError("the app sent %r after the body was complete" % message["type"])
        for key, value in message.get("headers", []):
            assert isinstance(key, bytes) and isinstance(value, bytes), (key, value)
            assert key == key.lower(), "ASGI header names are lower-case: %r" % key
        self.sent.append(message)

    def response(self):
        """The status, headers (as text) and body pieces of an HTTP response."""
        start = self.sent[0]
        assert start["type"] == "http.response.start", start
        bodies = self.sent[1:]
        assert bodies and all(m["type"] == "http.response.body" for m in bodies), bodies
        assert not bodies[-1].get("more_body", False), "the body never ended"
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return start["status"], headers, [m.get("body", b"") for m in bodies]


def request_messages(body):
    """The http.request messages a server would deliver for `body`."""
    return [{"type": "http.request", "body": body or b"", "more_body": False}]


async def call(scope, incoming):
    exchange = Exchange(incoming)
    await conformance_asgi.app(scope, exchange.receive, exchange.send)
    return exchange


def run_case(request):
    """Run one contract request through the app as an ASGI server would."""
    scope = contract.asgi_scope(request)
    begin = time.monotonic()
    exchange = asyncio.run(call(scope, request_messages(contract.request_body(request))))
    elapsed_ms = (time.monotonic() - begin) * 1000.0
    status, headers, pieces = exchange.response()
    return contract.Response(
        status=status,
        headers=headers,
        body=b"".join(pieces),
        pieces=[len(piece) for piece in pieces],
        elapsed_ms=elapsed_ms,
        pid=os.getpid(),
    )


class ContractTest(unittest.TestCase):
    """apps/contract.json: one test per case (test_hello_get_root, ...), added below."""


contract.add_case_tests(ContractTest, run_case)


def http_scope(path="/", method="GET", query=b"", headers=(), **extra):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query,
        "root_path": "",
        "headers": list(headers),
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
    }
    scope.update(extra)
    return scope


def echo(scope, incoming):
    exchange = asyncio.run(call(scope, incoming))
    status, _, pieces = exchange.response()
    assert status == 200, status
    return json.loads(b"".join(pieces))


class SleepDoesNotBlockTheLoopTest(unittest.TestCase):
    """/sleep uses asyncio.sleep: other requests on the same loop go on meanwhile."""

    def test_two_concurrent_sleeps_take_about_as_long_as_one(self):
        async def timed(count):
            begin = time.monotonic()
            await asyncio.gather(*(call(http_scope("/sleep", query=b"ms=300"), request_messages(None)) for _ in range(count)))
            return time.monotonic() - begin

        one = asyncio.run(timed(1))
        two = asyncio.run(timed(2))
        # Blocking sleeps would make two take twice as long as one; concurrent ones, the same.
        self.assertLess(two / one, 1.5, "one sleep %.3f s, two concurrent %.3f s" % (one, two))

    def test_a_hello_during_a_sleep_finishes_first(self):
        order = []

        async def run(path, query):
            await call(http_scope(path, query=query), request_messages(None))
            order.append(path)

        async def both():
            await asyncio.gather(run("/sleep", b"ms=200"), run("/hello", b""))

        asyncio.run(both())
        self.assertEqual(order, ["/hello", "/sleep"])


class BodyTest(unittest.TestCase):
    def test_body_in_several_messages_is_joined(self):
        incoming = [
            {"type": "http.request", "body": b"one,", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"two", "more_body": False},
        ]
        doc = echo(http_scope("/echo", "POST", headers=[(b"content-length", b"7")]), incoming)
        self.assertEqual(base64.b64decode(doc["body"]), b"one,two")
        self.assertEqual(doc["CONTENT_LENGTH"], "7")

    def test_chunked_body_gets_its_decoded_length(self):
        # RFC 3875 4.1.2: CONTENT_LENGTH is the length after transfer-codings are removed.
        incoming = [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"de", "more_body": False},
        ]
        doc = echo(http_scope("/echo", "POST", headers=[(b"transfer-encoding", b"chunked")]), incoming)
        self.assertEqual(doc["CONTENT_LENGTH"], "5")
        self.assertEqual(doc["HTTP_TRANSFER_ENCODING"], "chunked")

    def test_no_content_length_without_a_body(self):
        doc = echo(http_scope("/echo"), request_messages(None))
        self.assertNotIn("CONTENT_LENGTH", doc)
        self.assertEqual(doc["body"], "")

    def test_disconnect_ends_the_body(self):
        incoming = [
            {"type": "http.request", "body": b"part", "more_body": True},
            {"type": "http.disconnect"},
        ]
        doc = echo(http_scope("/echo", "POST"), incoming)
        self.assertEqual(base64.b64decode(doc["body"]), b"part")

    def test_routes_without_a_body_never_ask_for_one(self):
        # Exchange raises if the app calls receive with nothing left to give.
        exchange = asyncio.run(call(http_scope("/hello"), []))
        self.assertEqual(exchange.response()[0], 200)


class ScopeMappingTest(unittest.TestCase):
    def test_missing_server_and_client_are_empty(self):
        doc = echo(http_scope("/echo", server=None, client=None), request_messages(None))
        self.assertEqual((doc["SERVER_NAME"], doc["SERVER_PORT"], doc["REMOTE_ADDR"]), ("", "", ""))

    def test_unix_socket_server_has_no_port(self):
        doc = echo(http_scope("/echo", server=("/tmp/s.sock", None)), request_messages(None))
        self.assertEqual((doc["SERVER_NAME"], doc["SERVER_PORT"]), ("/tmp/s.sock", ""))

    def test_root_path_is_script_name_and_leaves_path_info(self):
        doc = echo(http_scope("/app/echo/x", root_path="/app"), request_messages(None))
        self.assertEqual((doc["SCRIPT_NAME"], doc["PATH_INFO"]), ("/app", "/echo/x"))

    def test_http_version_becomes_server_protocol(self):
        doc = echo(http_scope("/echo", http_version="1.0"), request_messages(None))
        self.assertEqual(doc["SERVER_PROTOCOL"], "HTTP/1.0")

    def test_query_string_is_latin1(self):
        doc = echo(http_scope("/echo", query=b"q=\xe9"), request_messages(None))
        self.assertEqual(doc["QUERY_STRING"], "q=\u00e9")


class BytesTest(unittest.TestCase):
    def test_largest_allowed_is_streamed_not_built(self):
        # Stop after the first piece: the app must have sent headers and one 64 KiB piece only.
        class Enough(Exception):
            pass

        sent = []

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body":
                raise Enough()

        async def receive():
            raise AssertionError("no body needed")

        with self.assertRaises(Enough):
            asyncio.run(conformance_asgi.app(http_scope("/bytes", query=b"n=1073741824"), receive, send))
        self.assertEqual(dict(sent[0]["headers"])[b"content-length"], b"1073741824")
        self.assertEqual((len(sent[1]["body"]), sent[1]["more_body"]), (65536, True))

    def test_exact_multiple_of_the_piece_ends_with_its_last_piece(self):
        exchange = asyncio.run(call(http_scope("/bytes", query=b"n=131072"), []))
        _, _, pieces = exchange.response()
        self.assertEqual([len(p) for p in pieces], [65536, 65536])


class OtherScopesTest(unittest.TestCase):
    def test_lifespan_startup_and_shutdown_are_answered(self):
        exchange = Exchange([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        asyncio.run(conformance_asgi.app({"type": "lifespan", "asgi": {"version": "3.0"}}, exchange.receive, exchange.send))
        self.assertEqual([m["type"] for m in exchange.sent], ["lifespan.startup.complete", "lifespan.shutdown.complete"])

    def test_websocket_is_refused_before_accept(self):
        exchange = Exchange([{"type": "websocket.connect"}])
        asyncio.run(conformance_asgi.app({"type": "websocket", "path": "/"}, exchange.receive, exchange.send))
        self.assertEqual([m["type"] for m in exchange.sent], ["websocket.close"])

    def test_unknown_scope_type_raises(self):
        with self.assertRaises(ValueError):
            asyncio.run(conformance_asgi.app({"type": "carrier-pigeon"}, None, None))


if __name__ == "__main__":
    unittest.main()
