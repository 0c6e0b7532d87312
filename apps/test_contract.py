"""Tests for apps/contract.json and its Python reader apps/contract.py.

The contract's checks must be able to fail: each defect below is one an app could have,
and the checker must report exactly it. The file itself must cover every route and every
error case the README's table names, so that no app's tests pass by having nothing to run.

Run from the repository root:  python3 -m unittest discover -s apps -p 'test_*.py'
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contract  # noqa: E402  (needs the path set above)

TEXT = "text/plain; charset=utf-8"


def case_named(name):
    return next(case for case in contract.cases() if case["name"] == name)


def hello(body=b"Hello, World!", length="13", content_type=TEXT, status=200, extra=()):
    headers = [("Content-Type", content_type), ("Content-Length", length)] if content_type else [("Content-Length", length)]
    return contract.Response(status, headers + list(extra), body)


def echo(body, length=None):
    return contract.Response(
        200, [("Content-Type", "application/json"), ("Content-Length", length or str(len(body)))], body
    )


class CheckerCatchesEachDefectTest(unittest.TestCase):
    """Every check of contract.problems, proven to fail on exactly its defect."""

    def assertOnlyProblem(self, case_name, response, expected):
        self.assertEqual(contract.problems(case_named(case_name), response), [expected])

    def test_a_correct_answer_has_no_problem(self):
        self.assertEqual(contract.problems(case_named("hello/get-root"), hello()), [])

    def test_wrong_status(self):
        self.assertOnlyProblem("hello/get-root", hello(status=201), "status 201, expected 200")

    def test_missing_content_type(self):
        problems = contract.problems(case_named("not-found/get"), hello(b"Not Found", "9", content_type=None, status=404))
        self.assertIn("no Content-Type (every response carries one)", problems)

    def test_content_length_that_is_not_a_decimal(self):
        problems = contract.problems(case_named("hello/get-root"), hello(length="+13"))
        self.assertIn("Content-Length '+13' is not a decimal (every response carries one)", problems)

    def test_content_length_that_is_not_the_body_length(self):
        problems = contract.problems(case_named("hello/get-root"), hello(length="12"))
        self.assertIn("Content-Length 12 but a body of 13 bytes", problems)

    def test_head_with_a_body(self):
        problems = contract.problems(case_named("hello/head-root"), hello())
        self.assertIn("HEAD answered with a body of 13 bytes", problems)

    def test_header_sent_twice(self):
        self.assertOnlyProblem("hello/get-root", hello(extra=[("content-type", TEXT)]), "header content-type is sent 2 times")

    def test_exact_header_value(self):
        case = case_named("hello/post-root-405")
        wrong = hello(b"Method Not Allowed", "18", status=405, extra=[("Allow", "GET")])
        self.assertEqual(contract.problems(case, wrong), ["Allow 'GET', expected 'GET, HEAD'"])

    def test_header_names_are_compared_without_case(self):
        right = hello(b"Method Not Allowed", "18", status=405, extra=[("allow", "GET, HEAD")])
        self.assertEqual(contract.problems(case_named("hello/put-hello-405"), right), [])

    def test_exact_text(self):
        problems = contract.problems(case_named("hello/get-root"), hello(b"Hello, world!"))
        self.assertEqual(problems, ["body b'Hello, world!', expected 'Hello, World!'"])

    def test_a_400_must_name_its_parameter_as_a_word(self):
        case = case_named("sleep/bad/letters")
        for body in (b"bad request", b"items are wrong", b"msg"):
            response = contract.Response(400, [("Content-Type", TEXT), ("Content-Length", str(len(body)))], body)
            self.assertEqual(contract.problems(case, response), ["body %r does not name 'ms'" % body], body)
        for body in (b"ms must be a number", b"bad ms=abc", b"query parameter 'ms'"):
            response = contract.Response(400, [("Content-Type", TEXT), ("Content-Length", str(len(body)))], body)
            self.assertEqual(contract.problems(case, response), [], body)

    def test_repeated_bytes(self):
        case = case_named("bytes/several-pieces")
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", "70000")]
        self.assertEqual(contract.problems(case, contract.Response(200, headers, b"x" * 70000)), [])
        wrong = b"x" * 69999 + b"y"
        self.assertEqual(
            contract.problems(case, contract.Response(200, headers, wrong)),
            ["body of 70000 bytes (b'xxxxxxxxxxxxxxxxxxxx'...), expected 70000 of b'x'"],
        )

    def test_pieces_longer_than_64_kib(self):
        case = case_named("bytes/several-pieces")
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", "70000")]
        response = contract.Response(200, headers, b"x" * 70000, pieces=[70000])
        self.assertEqual(contract.problems(case, response), ["pieces of [70000] bytes, expected at most 65536"])

    def test_pid(self):
        response = contract.Response(200, [("Content-Type", TEXT), ("Content-Length", "3")], b"123", pid=124)
        self.assertEqual(contract.problems(case_named("pid/get"), response), ["body b'123', expected the pid 124"])

    def test_sleeping_too_little(self):
        response = hello(b"slept 50 ms", "11")
        response.elapsed_ms = 49.0
        self.assertEqual(contract.problems(case_named("sleep/50"), response), ["answered after 49.0 ms, expected at least 50"])

    def test_json_must_be_ascii(self):
        body = b'{"HTTP_X_NAME":"caf\xc3\xa9"}'
        self.assertEqual(
            contract.problems(case_named("echo/latin1-header"), echo(body)),
            ["the JSON is not ASCII-only: %r" % body],
        )

    def test_json_keys_must_be_sorted(self):
        body = b'{"HTTP_X_MULTI":"a, b","CONTENT_TYPE":"x"}'
        self.assertEqual(
            contract.problems(case_named("echo/repeated-header"), echo(body)),
            ["keys not sorted: ['HTTP_X_MULTI', 'CONTENT_TYPE']"],
        )

    def test_json_field_value(self):
        body = b'{"HTTP_X_MULTI":"a,b"}'
        self.assertEqual(
            contract.problems(case_named("echo/repeated-header"), echo(body)),
            ["HTTP_X_MULTI = 'a,b', expected 'a, b'"],
        )

    def test_json_absent_and_only(self):
        fields = case_named("echo/get-without-body")["response"]["body"]["json"]["fields"]
        import json

        def document(extra):
            return json.dumps(dict(sorted(dict(fields, **extra).items())), separators=(",", ":")).encode("ascii")

        self.assertEqual(contract.problems(case_named("echo/get-without-body"), echo(document({}))), [])
        self.assertEqual(
            contract.problems(case_named("echo/get-without-body"), echo(document({"CONTENT_LENGTH": "0"}))),
            ["CONTENT_LENGTH = '0' is there, expected absent", "keys ['CONTENT_LENGTH'] beyond the expected ones"],
        )
        self.assertEqual(
            contract.problems(case_named("echo/get-without-body"), echo(document({"wsgi.input": "x"}))),
            ["keys ['wsgi.input'] beyond the expected ones"],
        )

    def test_not_json(self):
        problems = contract.problems(case_named("echo/sub-path"), echo(b"PATH_INFO=/echo/sub/path"))
        self.assertEqual(len(problems), 1)
        self.assertTrue(problems[0].startswith("not JSON"), problems)


class ServerEmulationTest(unittest.TestCase):
    """The request a conforming server would hand the app, by the contract's header rules."""

    def test_headers_become_meta_variables(self):
        variables = contract.meta_variables(
            {
                "method": "POST",
                "path": "/echo/a%20b",
                "headers": [["Content-Type", "x/y"], ["X-A", "1"], ["x-a", "2"], ["X_A", "forged"]],
                "body": "abc",
            }
        )
        self.assertEqual(variables["PATH_INFO"], "/echo/a b")
        self.assertEqual(variables["CONTENT_TYPE"], "x/y")
        self.assertEqual(variables["CONTENT_LENGTH"], "3")
        self.assertEqual(variables["HTTP_X_A"], "1, 2")
        self.assertNotIn("HTTP_CONTENT_TYPE", variables)

    def test_no_body_no_content_length(self):
        self.assertNotIn("CONTENT_LENGTH", contract.meta_variables({"method": "GET", "path": "/echo"}))

    def test_asgi_scope_path_is_utf8_text_and_raw_path_as_sent(self):
        scope = contract.asgi_scope({"method": "GET", "path": "/caf%C3%A9", "body": "xy"})
        self.assertEqual(scope["path"], "/caf\u00e9")
        self.assertEqual(scope["raw_path"], b"/caf%C3%A9")
        self.assertIn((b"content-length", b"2"), scope["headers"])


class ContractCoverageTest(unittest.TestCase):
    """The contract holds a case for every route and every error the README names."""

    def requests(self):
        return [(case["request"]["method"], case["request"]["path"], case["request"].get("query", ""), case)
                for case in contract.cases()]

    def test_names_are_unique_and_every_case_has_a_rule(self):
        names = [case["name"] for case in contract.cases()]
        self.assertEqual(len(names), len(set(names)))
        for case in contract.cases():
            self.assertTrue(case["rule"], case["name"])

    def test_every_route_and_the_404(self):
        paths = {path for _, path, _, _ in self.requests()}
        for path in ("/", "/hello", "/sleep", "/echo", "/echo/sub/path", "/pid", "/bytes", "/nope"):
            self.assertIn(path, paths)

    def test_every_bad_ms_value(self):
        bad = {query for _, path, query, case in self.requests() if path == "/sleep" and case["response"]["status"] == 400}
        for query in ("ms=", "ms=-1", "ms=+5", "ms=%2B5", "ms=60001", "ms=abc", "ms=5_0", ""):
            self.assertIn(query, bad)

    def test_bytes_zero_several_pieces_and_bad_n(self):
        queries = {(query, case["response"]["status"]) for _, path, query, case in self.requests() if path == "/bytes"}
        for expected in (("n=0", 200), ("n=70000", 200), ("n=x", 400), ("n=1073741825", 400), ("", 400)):
            self.assertIn(expected, queries)

    def test_head_405_echo_body_and_first_wins(self):
        seen = {(method, path, query) for method, path, query, _ in self.requests()}
        self.assertIn(("HEAD", "/", ""), seen)
        self.assertIn(("POST", "/", ""), seen)
        self.assertIn(("GET", "/sleep", "ms=2&ms=abc"), seen)
        self.assertIn(("GET", "/sleep", "ms=%35"), seen)
        echo_bodies = [("body" in case["request"]) or ("body_base64" in case["request"])
                       for _, path, _, case in self.requests() if path == "/echo"]
        self.assertIn(True, echo_bodies)
        self.assertIn(False, echo_bodies)

    def test_every_body_rule_is_one_the_readers_know(self):
        for case in contract.cases():
            self.assertEqual(len(case["response"]["body"]), 1, case["name"])
            self.assertIn(next(iter(case["response"]["body"])), ("text", "word", "repeat", "pid", "json"), case["name"])


if __name__ == "__main__":
    unittest.main()
