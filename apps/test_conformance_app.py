"""Tests for apps/conformance_app.py: the WSGI app called directly, and its wsgiref server.

Every case of apps/contract.json runs first (ContractTest), through wsgiref's PEP 3333
validator; the tests after it pin what the contract cannot say for every interface.

Run from the repository root:  python3 -m unittest discover -s apps -p 'test_*.py'
(apps/test.sh runs these and every other app's tests).
"""

import base64
import http.client
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import unittest
from wsgiref import validate
from wsgiref.util import setup_testing_defaults

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conformance_app  # noqa: E402  (needs the path set above)
import contract  # noqa: E402

APP_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance_app.py")


def call(path="/", method="GET", query="", body=None, extra=None):
    """Call the app with a constructed environ; return (status, headers dict, body bytes)."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    if body is not None:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra or {})
    setup_testing_defaults(environ)
    started = []

    def start_response(status, headers, exc_info=None):
        started.append((status, headers))

    result = conformance_app.app(environ, start_response)
    try:
        chunks = list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert len(started) == 1, "start_response must be called exactly once"
    status, headers = started[0]
    header_map = {}
    for name, value in headers:
        header_map[name.lower()] = value
    return status, header_map, b"".join(chunks)


def run_case(request):
    """Call the app, wrapped in wsgiref's validator, as a server would for a contract request."""
    environ = dict(contract.meta_variables(request))
    body = contract.request_body(request)
    environ.update(
        {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body or b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
    )
    started = []

    def start_response(status, headers, exc_info=None):
        started.append((status, headers))
        return lambda data: None

    begin = time.monotonic()
    result = validate.validator(conformance_app.app)(environ, start_response)
    try:
        pieces = list(result)
    finally:
        result.close()
    elapsed_ms = (time.monotonic() - begin) * 1000.0
    status, headers = started[0]
    return contract.Response(
        status=int(status.split(" ", 1)[0]),
        headers=headers,
        body=b"".join(pieces),
        pieces=[len(piece) for piece in pieces],
        elapsed_ms=elapsed_ms,
        pid=os.getpid(),
    )


class ContractTest(unittest.TestCase):
    """apps/contract.json: one test per case (test_hello_get_root, ...), added below."""


contract.add_case_tests(ContractTest, run_case)


class HelloTest(unittest.TestCase):
    def test_root_and_hello_say_hello_with_length_and_type(self):
        for path in ("/", "/hello"):
            status, headers, body = call(path)
            self.assertEqual(status, "200 OK")
            self.assertEqual(body, b"Hello, World!")
            self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")
            self.assertEqual(headers["content-length"], "13")

    def test_head_keeps_length_and_drops_body(self):
        status, headers, body = call("/", method="HEAD")
        self.assertEqual(status, "200 OK")
        self.assertEqual(headers["content-length"], "13")
        self.assertEqual(body, b"")

    def test_other_methods_get_405_with_allow(self):
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            status, headers, body = call("/hello", method=method)
            self.assertEqual(status, "405 Method Not Allowed")
            self.assertEqual(headers["allow"], "GET, HEAD")
            self.assertEqual(headers["content-length"], str(len(body)))
            self.assertIn("content-type", headers)


class SleepTest(unittest.TestCase):
    def test_sleeps_and_reports(self):
        status, headers, body = call("/sleep", query="ms=5")
        self.assertEqual(status, "200 OK")
        self.assertEqual(body, b"slept 5 ms")
        self.assertEqual(headers["content-length"], str(len(body)))

    def test_zero_and_any_method(self):
        status, _, body = call("/sleep", method="POST", query="ms=0")
        self.assertEqual((status, body), ("200 OK", b"slept 0 ms"))

    def test_bad_values_get_400_saying_why(self):
        for query in ("", "ms=", "ms=abc", "ms=-1", "ms=+5", "ms=60001", "ms=1.5", "ms=99999999999999", "x=1"):
            status, headers, body = call("/sleep", query=query)
            self.assertEqual(status, "400 Bad Request", query)
            self.assertIn(b"ms", body, query)
            self.assertEqual(headers["content-length"], str(len(body)))


class EchoTest(unittest.TestCase):
    def echo(self, **kwargs):
        status, headers, body = call(**kwargs)
        self.assertEqual(status, "200 OK")
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["content-length"], str(len(body)))
        body.decode("ascii")  # ensure_ascii: the document is pure ASCII.
        return json.loads(body)

    def test_reports_meta_variables_headers_and_body(self):
        doc = self.echo(
            path="/echo/a/b",
            method="POST",
            query="x=1&y=%20",
            body=b"\x00hello\xff",
            extra={"HTTP_X_FOO": "bar", "CONTENT_TYPE": "application/octet-stream", "wsgi.extra": 3},
        )
        self.assertEqual(doc["REQUEST_METHOD"], "POST")
        self.assertEqual(doc["PATH_INFO"], "/echo/a/b")
        self.assertEqual(doc["QUERY_STRING"], "x=1&y=%20")
        self.assertEqual(doc["HTTP_X_FOO"], "bar")
        self.assertEqual(doc["CONTENT_TYPE"], "application/octet-stream")
        self.assertEqual(doc["CONTENT_LENGTH"], "7")
        self.assertEqual(base64.b64decode(doc["body"]), b"\x00hello\xff")
        for key in conformance_app._ECHO_KEYS:
            self.assertIn(key, doc)
        self.assertFalse([k for k in doc if k.startswith("wsgi.")])
        for value in doc.values():
            self.assertIsInstance(value, str)

    def test_keys_are_sorted(self):
        _, _, raw = call("/echo", extra={"HTTP_Z": "1", "HTTP_A": "2"})
        keys = list(json.loads(raw).keys())
        self.assertEqual(keys, sorted(keys))

    def test_latin1_path_is_reported_as_is(self):
        # PEP 3333: the server decodes the raw path bytes as latin-1.
        raw_path = "/echo/caf\u00e9".encode("utf-8").decode("latin-1")
        doc = self.echo(path=raw_path)
        self.assertEqual(doc["PATH_INFO"], raw_path)
        self.assertEqual(doc["PATH_INFO"].encode("latin-1"), "/echo/caf\u00e9".encode("utf-8"))

    def test_empty_content_meta_variables_are_left_out(self):
        doc = self.echo(path="/echo", extra={"CONTENT_TYPE": "", "CONTENT_LENGTH": ""})
        self.assertNotIn("CONTENT_TYPE", doc)
        self.assertNotIn("CONTENT_LENGTH", doc)
        self.assertEqual(doc["body"], "")

    def test_reads_only_content_length_bytes(self):
        doc = self.echo(path="/echo", extra={"wsgi.input": io.BytesIO(b"abcdef"), "CONTENT_LENGTH": "3"})
        self.assertEqual(base64.b64decode(doc["body"]), b"abc")

    def test_reads_to_eof_when_input_is_terminated(self):
        # gunicorn hands chunked bodies over with no CONTENT_LENGTH.
        big = bytes(range(256)) * 1000
        doc = self.echo(
            path="/echo",
            method="POST",
            extra={"wsgi.input": io.BytesIO(big), "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
        )
        self.assertEqual(base64.b64decode(doc["body"]), big)

    def test_no_length_and_no_transfer_encoding_means_no_body(self):
        class NeverRead(io.RawIOBase):
            def read(self, size=-1):
                raise AssertionError("the app read a body the request cannot have")

        doc = self.echo(path="/echo", extra={"wsgi.input": NeverRead()})
        self.assertEqual(doc["body"], "")

    def test_bad_content_length_is_400(self):
        status, _, body = call("/echo", extra={"CONTENT_LENGTH": "-1"})
        self.assertEqual(status, "400 Bad Request")
        self.assertIn(b"CONTENT_LENGTH", body)

    def test_echo_prefix_needs_a_slash(self):
        status, _, _ = call("/echoes")
        self.assertEqual(status, "404 Not Found")


class PidTest(unittest.TestCase):
    def test_reports_this_process(self):
        status, headers, body = call("/pid")
        self.assertEqual(status, "200 OK")
        self.assertEqual(body, str(os.getpid()).encode("ascii"))
        self.assertEqual(headers["content-length"], str(len(body)))


class BytesTest(unittest.TestCase):
    def test_streams_exact_length_in_64k_pieces(self):
        n = 3 * 65536 + 123
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bytes", "QUERY_STRING": "n=%d" % n}
        setup_testing_defaults(environ)
        started = []
        result = conformance_app.app(environ, lambda status, headers, exc_info=None: started.append(headers))
        self.assertNotIsInstance(result, (list, tuple, bytes))  # A generator, not a built body.
        total = 0
        pieces = 0
        for piece in result:
            self.assertLessEqual(len(piece), 65536)
            self.assertEqual(piece.strip(b"x"), b"")
            total += len(piece)
            pieces += 1
        self.assertEqual(total, n)
        self.assertEqual(pieces, 4)
        headers = dict((k.lower(), v) for k, v in started[0])
        self.assertEqual(headers["content-length"], str(n))
        self.assertEqual(headers["content-type"], "application/octet-stream")

    def test_largest_allowed_is_not_built_in_memory(self):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bytes", "QUERY_STRING": "n=1073741824"}
        setup_testing_defaults(environ)
        started = []
        result = conformance_app.app(environ, lambda status, headers, exc_info=None: started.append(status))
        self.assertEqual(started, ["200 OK"])
        self.assertEqual(len(next(iter(result))), 65536)
        result.close()

    def test_zero_is_empty(self):
        status, headers, body = call("/bytes", query="n=0")
        self.assertEqual((status, headers["content-length"], body), ("200 OK", "0", b""))

    def test_bad_values_get_400(self):
        for query in ("", "n=", "n=x", "n=-5", "n=1073741825", "n=0x10"):
            status, _, body = call("/bytes", query=query)
            self.assertEqual(status, "400 Bad Request", query)
            self.assertIn(b"n", body)


class NotFoundTest(unittest.TestCase):
    def test_unknown_paths_get_404(self):
        for path, method in (("/nope", "GET"), ("/hello/", "GET"), ("/pidx", "POST")):
            status, headers, body = call(path, method=method)
            self.assertEqual((status, body), ("404 Not Found", b"Not Found"))
            self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")
            self.assertEqual(headers["content-length"], "9")


class Pep3333ValidatorTest(unittest.TestCase):
    """wsgiref.validate checks the app's side of PEP 3333 on every route."""

    def test_every_route_passes_the_validator(self):
        app = validate.validator(conformance_app.app)
        cases = [
            ("GET", "/", "", b""),
            ("HEAD", "/hello", "", b""),
            ("POST", "/hello", "", b"x"),
            ("GET", "/sleep", "ms=1", b""),
            ("GET", "/sleep", "ms=oops", b""),
            ("PUT", "/echo/z", "q=1", b"body"),
            ("GET", "/pid", "", b""),
            ("GET", "/bytes", "n=70000", b""),
            ("HEAD", "/bytes", "n=70000", b""),
            ("GET", "/missing", "", b""),
        ]
        for method, path, query, body in cases:
            environ = {
                "REQUEST_METHOD": method,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)),
                "SCRIPT_NAME": "",
            }
            setup_testing_defaults(environ)
            result = app(environ, lambda status, headers, exc_info=None: None)
            try:
                for _ in result:
                    pass
            finally:
                result.close()


class WsgirefServerTest(unittest.TestCase):
    """Start `python3 apps/conformance_app.py` for real and talk to it over loopback."""

    STARTUP_DEADLINE = 30.0
    EXIT_DEADLINE = 20.0

    def setUp(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, APP_PATH, "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Own process group, so tearDown can kill it whole.
        )
        self.addCleanup(self.kill_group)
        self.port = self.wait_for_port()

    def kill_group(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def wait_for_port(self):
        deadline = time.monotonic() + self.STARTUP_DEADLINE
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                self.fail("no listening line (got %r, exit %r)" % (line, self.proc.poll()))
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                byte = os.read(self.proc.stdout.fileno(), 1)
                if not byte:
                    self.fail("server closed stdout before listening (got %r)" % line)
                line += byte
        text = line.decode("ascii").strip()
        self.assertTrue(text.startswith("listening on http://127.0.0.1:"), text)
        return int(text.rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            conn.close()

    def test_serves_hello_and_echo_then_exits_0_on_sigterm(self):
        status, content_type, body = self.request("GET", "/")
        self.assertEqual((status, body), (200, b"Hello, World!"))
        self.assertEqual(content_type, "text/plain; charset=utf-8")

        status, content_type, body = self.request("POST", "/echo/x?a=b", body=b"payload", headers={"X-Foo": "bar"})
        self.assertEqual((status, content_type), (200, "application/json"))
        doc = json.loads(body)
        self.assertEqual(doc["PATH_INFO"], "/echo/x")
        self.assertEqual(doc["QUERY_STRING"], "a=b")
        self.assertEqual(doc["HTTP_X_FOO"], "bar")
        self.assertEqual(doc["REMOTE_ADDR"], "127.0.0.1")
        self.assertEqual(base64.b64decode(doc["body"]), b"payload")

        # A bodiless GET /echo must not wait for a body that never comes.
        status, _, body = self.request("GET", "/echo")
        self.assertEqual((status, json.loads(body)["body"]), (200, ""))

        status, _, body = self.request("GET", "/pid")
        self.assertEqual((status, body), (200, str(self.proc.pid).encode("ascii")))

        os.killpg(self.proc.pid, signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=self.EXIT_DEADLINE), 0)
        self.assertEqual(self.proc.stderr.read(), b"", "no access log, no errors")

    def test_sigterm_during_a_long_request_still_exits_0(self):
        client = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.addCleanup(client.close)
        client.sendall(b"GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Give the server a moment to pick the request up. Not needed for correctness:
        # an idle server must exit 0 on SIGTERM as well; this only makes the
        # mid-request path the likely one.
        time.sleep(0.3)
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=self.EXIT_DEADLINE), 0)
        self.assertEqual(client.recv(1024), b"", "connection closed, no 200 after SIGTERM")


if __name__ == "__main__":
    unittest.main()
