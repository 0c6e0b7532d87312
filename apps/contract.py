"""apps/contract.json for Python tests: its cases, the request a server would hand an app, and the checks.

The Python apps' tests (WSGI, ASGI, CGI) run every case of the contract through this
module, so that the three read it one way. The apps themselves import nothing from here:
each app stands alone, and only the tests share the reading of the contract.

A case's request is turned into what a conforming server would give the app
(``meta_variables`` for WSGI and CGI, ``asgi_scope`` for ASGI); the app's answer is
collected into a ``Response`` and judged by ``problems``, which lists every way the
answer breaks the case, each saying what was expected and what came.
"""

import base64
import json
import os
from urllib.parse import unquote, unquote_to_bytes

CONTRACT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract.json")

with open(CONTRACT_PATH, encoding="ascii") as _file:
    CONTRACT = json.load(_file)

CONNECTION = CONTRACT["connection"]


def cases():
    """Every case of the contract, in file order."""
    return CONTRACT["cases"]


def add_case_tests(test_class, run):
    """Give `test_class` one test per case, test_<name>, that runs the case through `run`.

    `run(request)` returns a Response; the test fails with every problem found, the
    case's rule as the message. One test per case, so that a failure names its case and
    the count of tests run says how many cases ran.
    """
    for case in cases():
        method_name = "test_" + "".join(c if c.isalnum() else "_" for c in case["name"])
        if hasattr(test_class, method_name):
            raise ValueError("two cases make the test name %s" % method_name)

        def test(self, case=case):
            self.assertEqual(problems(case, run(case["request"])), [], "%s: %s" % (case["name"], case["rule"]))

        test.__doc__ = "%s: %s" % (case["name"], case["rule"])
        setattr(test_class, method_name, test)
    return test_class


def request_body(request):
    """The request's body as bytes, or None when the request has none."""
    if "body_base64" in request:
        return base64.b64decode(request["body_base64"])
    if "body" in request:
        return request["body"].encode("utf-8")
    return None


def _latin1(value):
    """A contract text whose characters are bytes (ISO-8859-1) as those bytes."""
    return value.encode("latin-1")


def meta_variables(request):
    """The CGI meta-variables a conforming server would set for this request (text, one char a byte).

    The header rules are the contract's (meta_variables.headers): CONTENT_TYPE and
    CONTENT_LENGTH without a prefix, HTTP_ + upper-cased name with "-" as "_",
    repeated fields joined with ", ", names holding "_" dropped.
    """
    variables = {
        "REQUEST_METHOD": request["method"],
        "SCRIPT_NAME": CONNECTION["SCRIPT_NAME"],
        "PATH_INFO": unquote_to_bytes(request["path"]).decode("latin-1"),
        "QUERY_STRING": request.get("query", ""),
        "SERVER_PROTOCOL": CONNECTION["SERVER_PROTOCOL"],
        "SERVER_NAME": CONNECTION["SERVER_NAME"],
        "SERVER_PORT": CONNECTION["SERVER_PORT"],
        "REMOTE_ADDR": CONNECTION["REMOTE_ADDR"],
    }
    for name, value in request.get("headers", []):
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        variables[key] = variables[key] + ", " + value if key in variables else value
    body = request_body(request)
    if body is not None:
        variables["CONTENT_LENGTH"] = str(len(body))
    return variables


def asgi_scope(request):
    """The ASGI HTTP scope a conforming server would pass for this request (uvicorn's reading)."""
    headers = [(_latin1(name.lower()), _latin1(value)) for name, value in request.get("headers", [])]
    body = request_body(request)
    if body is not None:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": CONNECTION["SERVER_PROTOCOL"].split("/", 1)[1],
        "method": request["method"],
        "scheme": "http",
        # The spec's path: percent-decoded and then UTF-8 decoded (uvicorn uses unquote).
        "path": unquote(request["path"]),
        "raw_path": request["path"].encode("ascii"),
        "query_string": _latin1(request.get("query", "")),
        "root_path": CONNECTION["SCRIPT_NAME"],
        "headers": headers,
        "server": (CONNECTION["SERVER_NAME"], int(CONNECTION["SERVER_PORT"])),
        "client": (CONNECTION["REMOTE_ADDR"], int(CONNECTION["REMOTE_PORT"])),
    }


class Response:
    """What an app answered, in the same shape whatever its interface."""

    def __init__(self, status, headers, body, pieces=None, elapsed_ms=0.0, pid=None):
        self.status = status  # int
        self.headers = headers  # [(name, value)] as the app gave them
        self.body = body  # bytes
        self.pieces = pieces  # lengths of the body's pieces, or None where not seen
        self.elapsed_ms = elapsed_ms
        self.pid = pid  # the pid of the process that ran the app

    def header(self, name):
        """The value of header `name` (any case), or None; a repeated header is a problem of its own."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None


def _is_decimal(text):
    return bool(text) and all("0" <= c <= "9" for c in text)


def _holds_word(body, word):
    """True if `word` (bytes) is in `body` with no ASCII letter, digit or "_" on either side."""
    def is_word_byte(byte):
        return chr(byte).isascii() and (chr(byte).isalnum() or byte == ord("_"))

    start = body.find(word)
    while start >= 0:
        end = start + len(word)
        if (start == 0 or not is_word_byte(body[start - 1])) and (end == len(body) or not is_word_byte(body[end])):
            return True
        start = body.find(word, start + 1)
    return False


def problems(case, response):
    """Every way `response` breaks `case`, as sentences (empty when it keeps it)."""
    found = []
    request, want = case["request"], case["response"]
    head = request["method"] == "HEAD"

    if response.status != want["status"]:
        found.append("status %r, expected %r" % (response.status, want["status"]))

    names = [name.lower() for name, _ in response.headers]
    for name in set(names):
        if names.count(name) > 1:
            found.append("header %s is sent %d times" % (name, names.count(name)))
    content_type = response.header("Content-Type")
    content_length = response.header("Content-Length")
    if content_type is None:
        found.append("no Content-Type (every response carries one)")
    if content_length is None or not _is_decimal(content_length):
        found.append("Content-Length %r is not a decimal (every response carries one)" % content_length)
    elif not head and int(content_length) != len(response.body):
        found.append("Content-Length %s but a body of %d bytes" % (content_length, len(response.body)))
    if head and response.body:
        found.append("HEAD answered with a body of %d bytes" % len(response.body))

    for name, expected in want.get("headers", {}).items():
        got = response.header(name)
        if isinstance(expected, dict):
            pattern = expected["pattern"]
            if pattern != "decimal":
                found.append("unknown pattern %r in the contract" % pattern)
            elif got is None or not _is_decimal(got):
                found.append("%s %r, expected a decimal" % (name, got))
        elif got != expected:
            found.append("%s %r, expected %r" % (name, got, expected))

    body_rule = want["body"]
    body = response.body
    if "text" in body_rule:
        if body != body_rule["text"].encode("utf-8"):
            found.append("body %r, expected %r" % (body[:200], body_rule["text"]))
    elif "word" in body_rule:
        if not _holds_word(body, body_rule["word"].encode("ascii")):
            found.append("body %r does not name %r" % (body[:200], body_rule["word"]))
    elif "repeat" in body_rule:
        byte = body_rule["repeat"]["byte"].encode("ascii")
        count = body_rule["repeat"]["count"]
        if len(body) != count or body.strip(byte):
            found.append("body of %d bytes (%r...), expected %d of %r" % (len(body), body[:20], count, byte))
    elif "pid" in body_rule:
        if body != str(response.pid).encode("ascii"):
            found.append("body %r, expected the pid %d" % (body[:200], response.pid))
    elif "json" in body_rule:
        found.extend(_json_problems(body_rule["json"], body))
    else:
        found.append("unknown body rule %r in the contract" % sorted(body_rule))

    if response.elapsed_ms < want.get("min_elapsed_ms", 0):
        found.append("answered after %.1f ms, expected at least %d" % (response.elapsed_ms, want["min_elapsed_ms"]))
    largest = want.get("max_piece_bytes")
    if largest is not None and response.pieces is not None:
        too_long = [n for n in response.pieces if n > largest]
        if too_long:
            found.append("pieces of %s bytes, expected at most %d" % (too_long[:5], largest))
    return found


def _json_problems(rule, body):
    found = []
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return ["the JSON is not ASCII-only: %r" % body[:200]]
    try:
        pairs = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except ValueError as error:
        return ["not JSON (%s): %r" % (error, body[:200])]
    if not isinstance(pairs, list):
        return ["the JSON is not an object: %r" % body[:200]]
    keys = [key for key, _ in pairs]
    if keys != sorted(keys):
        found.append("keys not sorted: %s" % keys)
    document = dict(pairs)
    for key, value in rule.get("fields", {}).items():
        if document.get(key) != value:
            found.append("%s = %r, expected %r" % (key, document.get(key), value))
    for key in rule.get("absent", []):
        if key in document:
            found.append("%s = %r is there, expected absent" % (key, document[key]))
    if rule.get("only"):
        extra = sorted(set(document) - set(rule.get("fields", {})))
        if extra:
            found.append("keys %s beyond the expected ones" % extra)
    return found
