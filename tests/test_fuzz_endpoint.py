"""Property-based bad input for the endpoint: the real server over HTTP, and the handlers in-process.

Complements the fixed cases in tests/test_serve.py (``BAD_HTTP``, hostile bodies) and
tests/test_inference.py (``BAD``); the Lambda proxy and the local front have their own property tests
(tests/test_proxy_handler.py, tests/test_local_front.py).

The claims (docs/architecture.md, docs/reliability.md):

* every answer to any body and any Content-Type is a 4xx with ``{"error": "<non-empty message>"}``
  or a valid prediction, never a 5xx for the caller's mistake; over HTTP the status is exactly what
  the in-process handler says (``input_fn``), except that a body over the limit is refused (413)
  before its content type is looked at;
* any request head (request line, headers, Content-Length) gets an answer, never a dead worker;
* a body far over the limit (10 MB) is refused from its Content-Length, before it is sent;
* afterwards the same worker processes are still there and ``/ping`` answers 200.

Example counts are modest so the file runs in well under 30 s on a busy 2-core machine.
"""
from __future__ import annotations

import json
import math
import re
import select
import socket
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fixtures_model import ServeProcess, http
from fixtures_model import read_answer as shared_read_answer
from model import inference
from model.inference import MAX_BODY_BYTES, MAX_INSTANCES, RequestError, input_fn

WORD = re.compile(r"[a-z0-9]+")
OK_STATUSES = {200, 400, 413, 415}

# --------------------------------------------------------------------------- strategies

HOSTILE_TEXTS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)"> great',
    "<svg onload=alert(1)>superb</svg><iframe src=javascript:alert(1)>",
    '"><b onmouseover=alert(1)>bold</b>',
    "x" * 100_000,                       # a single 100 KB word
    "great " * 20_000,                   # 120 KB of words: at the limit once wrapped in JSON
    "<b>" * 300 + "dull",                # (30,000 tags: tests/test_serve.py; ~1.5 s of parsing each)
    "\u202egreat\u202c \u200b\u200d\ufeff",  # bidi override, zero-width, BOM
    "\x00" * 64 + "film",
    "\U0010ffff\U000e0001\U0001f600\U00020000\U000f0000",  # planes 16, 14, 1, 2, 15
    "a\u0301" * 2000,                    # combining marks
    "\U0001f3f3\ufe0f\u200d\U0001f308" * 200,
    "\u0661\u0662\u0663 \u07c0 \uff11\uff12",  # non-ASCII digits
    "\u212a\u0130\u00df\ufb01",          # Kelvin sign, dotted I, sharp s, ligature: lower() changes them
]
WHITESPACE = st.text(st.sampled_from(" \t\r\n\x0b\x0c\x1c\x85\u00a0\u1680\u2003\u2028\u2029\u3000"),
                     max_size=40)
reviews = st.one_of(st.text(st.characters(codec="utf-8"), max_size=120),  # every plane
                    WHITESPACE, st.sampled_from(HOSTILE_TEXTS))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
explain_values = st.one_of(st.booleans(), st.none(), json_values)
payloads = st.one_of(
    json_values,  # any shape and type
    st.fixed_dictionaries({"text": reviews | json_values}, optional={"explain": explain_values}),
    st.fixed_dictionaries({"instances": st.lists(reviews | json_values, max_size=MAX_INSTANCES + 3)
                           | json_values}, optional={"explain": explain_values}),
    st.fixed_dictionaries({"text": reviews, "instances": st.lists(reviews, max_size=2)}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)
# Byte sequences that are not UTF-8: a lone continuation byte, overlong "/", a UTF-16 surrogate
# (CESU-8), beyond U+10FFFF, a truncated 3-byte sequence, bytes that never occur.
BAD_UTF8 = [b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xff", b"\xfe"]
NESTED = [
    b"[" * 100_000,                                    # 100k '[': under the limit, too deep to parse
    b"[" * 5_000 + b"]" * 5_000,
    b'{"text": ' + b"[" * 60_000 + b"]" * 60_000 + b"}",
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"text": "ok", "explain": ' + b"{" * 30_000,
    b"[" * 100_000 + b"]" * 100_000,                   # 200 KB: over the limit
]
OVER_THE_LIMIT = [MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES, 1_000_000]


def _json_body(payload, ascii_only: bool) -> bytes:
    # ``surrogatepass``: a lone surrogate becomes CESU-8, i.e. invalid UTF-8, another bad input
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _insert(text: str, bad: bytes, at: int) -> bytes:
    raw = text.encode("utf-8")
    at = min(at, len(raw))
    return raw[:at] + bad + raw[at:]


# (the content type the body was made for, the body)
bodies = st.one_of(
    st.tuples(st.just("application/json"), st.builds(_json_body, payloads, st.booleans())),
    st.tuples(st.just("text/plain"), reviews.map(lambda t: t.encode("utf-8"))),
    st.tuples(st.sampled_from(["text/plain", "application/json"]), st.binary(max_size=300)),
    st.tuples(st.sampled_from(["text/plain", "application/json"]),
              st.builds(_insert, reviews, st.sampled_from(BAD_UTF8), st.integers(0, 200))),
    st.tuples(st.just("application/json"), st.sampled_from(NESTED)),
    st.tuples(st.sampled_from(["text/plain", "application/json"]),
              st.sampled_from(OVER_THE_LIMIT).map(lambda n: (b"great " * (n // 6 + 1))[:n])),
)
LATIN1_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                 exclude_characters="\x7f", exclude_categories=["Cc"])
other_content_types = st.one_of(
    st.none(),
    st.sampled_from(["", "text/plain; charset=utf-8", "TEXT/PLAIN", "text/plain; charset=latin-1",
                     "text/plain; charset=\"utf-16\"", "application/json; charset=UTF-8",
                     "application/json; charset=ascii", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "application/octet-stream", "text/html",
                     "application/xml", "image/png", "application/jsonx", "application/json;;;",
                     "; charset=utf-8", "*/*", "text/*"]),
    st.text(LATIN1_PRINTABLE, max_size=40),
)


@st.composite
def requests(draw):
    natural, body = draw(bodies)
    ctype = draw(st.one_of(st.just(natural), st.just(natural), other_content_types))
    return ctype, body


# --------------------------------------------------------------------------- checks

def check_answer(status: int, body: bytes, parsed: inference.Request | None) -> None:
    """A 4xx with a JSON error a person can read, or a prediction of the contract's shape."""
    assert status in OK_STATUSES, (status, body[:300])
    answer = json.loads(body)
    assert isinstance(answer, dict)
    if status >= 400:
        assert set(answer) == {"error"} and isinstance(answer["error"], str) and answer["error"].strip()
        assert "Traceback" not in answer["error"]
        return
    assert parsed is not None
    results = answer["predictions"] if parsed.batch else [answer]
    assert len(results) == len(parsed.texts)
    for result in results:
        assert set(result) == {"label", "score", "words_read"} | ({"explanation"} if parsed.explain else set())
        read = sum(e["weight"] is not None for e in result.get("explanation", []))
        assert result["words_read"] >= 0 and (not parsed.explain or result["words_read"] == read)
        score = result["score"]
        assert isinstance(score, float) and 0.0 <= score <= 1.0 and math.isfinite(score)
        assert result["label"] == ("positive" if score >= 0.5 else "negative")
        for entry in result.get("explanation", []):
            assert set(entry) == {"word", "weight"} and WORD.fullmatch(entry["word"]), entry
            assert entry["weight"] is None or (isinstance(entry["weight"], float) and math.isfinite(entry["weight"]))


def in_process(body, ctype):
    """(status, parsed request or None) as the handlers see it."""
    try:
        return 200, input_fn(body, ctype)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip()
        return exc.status, None


# --------------------------------------------------------------------------- the handlers, in-process

@pytest.fixture(scope="module")
def loaded(model_dir):
    return inference.model_fn(str(model_dir))


def test_handlers_any_body_any_content_type(loaded):
    @settings(max_examples=200, deadline=None, database=None)
    @given(request=requests(), as_text=st.booleans())
    @example(request=("application/json", b"[" * 100_000), as_text=False)
    @example(request=("text/plain", b"x" * 100_000), as_text=False)
    @example(request=("text/plain", "\ud800 lone surrogate"), as_text=True)
    def run(request, as_text):
        ctype, body = request
        if as_text and isinstance(body, bytes):  # the toolkit may hand over a str
            body = body.decode("utf-8", "replace")
        status, parsed = in_process(body, ctype)  # a RequestError: 4xx with a message, checked there
        assert status in OK_STATUSES
        if status == 200:
            answer, out_type = inference.output_fn(inference.predict_fn(parsed, loaded), "text/html")
            assert out_type == "application/json"
            check_answer(200, answer, parsed)
    run()


# --------------------------------------------------------------------------- the server, over HTTP

@pytest.fixture(scope="module")
def fuzz_server(model_dir, tmp_path_factory):
    proc = ServeProcess(tmp_path_factory.mktemp("fuzz") / "serve.log", model_dir, workers=1)
    proc.initial_workers = sorted(proc.workers())
    yield proc
    proc.stop()


def exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 30.0):
    """Send one request (the body after the head, tolerating a server that refused it early) and read
    one Content-Length framed answer: (status, headers, body), or None if the server closed first."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except OSError:  # refused and closed before the whole body was sent: the answer is waiting
            pass
        return read_answer(s)


def read_answer(s: socket.socket):
    """One answer, or None when the server closed (or reset) the connection first."""
    return shared_read_answer(s, closed_ok=True)


def post_head(path: str, ctype: str | None, length: int, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: fuzz"]
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(body: bytes, size: int = 65536) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def assert_still_healthy(server: ServeProcess) -> None:
    events = {r.get("event") for r in server.log_records()}
    assert not events & {"worker_crashed", "worker_exited", "request_failed"}, [
        r for r in server.log_records() if r.get("level") == "error"][:3]
    assert sorted(server.workers()) == server.initial_workers
    status, _, body = http("GET", server.url + "/ping")
    assert status == 200 and json.loads(body) == {"status": "healthy"}


def test_server_any_body_any_content_type(fuzz_server):
    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=requests(), chunked=st.integers(0, 9).map(lambda n: n == 0),
           path=st.sampled_from(["/invocations", "/endpoints/imdb-sentiment/invocations", "/invocations?x=%ff"]))
    @example(request=("application/json", b"[" * 100_000), chunked=False, path="/invocations")
    @example(request=("application/json", json.dumps({"text": "x" * 100_000, "explain": True}).encode()),
             chunked=False, path="/invocations")
    @example(request=("text/plain", b"great " * 200_000), chunked=True, path="/invocations")
    def run(request, chunked, path):
        ctype, body = request
        if len(body) > MAX_BODY_BYTES:  # refused by its length, whatever its type
            expected, parsed = 413, None
        else:
            expected, parsed = in_process(body, ctype)
        head = post_head(path, ctype, len(body), chunked)
        got = exchange(fuzz_server.port, head, chunk(body) if chunked else body)
        assert got is not None, "the connection closed without an answer"
        status, headers, answer = got
        assert status == expected, (status, expected, answer[:200])
        assert headers["content-type"] == "application/json"
        check_answer(status, answer, parsed)
    run()
    assert_still_healthy(fuzz_server)


# Header values as the server reads them: any byte but CR and LF, decoded as latin-1.
header_text = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF, exclude_characters="\r\n"),
                      max_size=40)


@st.composite
def heads(draw):
    method = draw(st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "OPTIONS"])
                  | st.text(LATIN1_PRINTABLE, min_size=1, max_size=8).filter(lambda m: m != "HEAD"))
    path = draw(st.sampled_from(["/invocations", "/ping", "/endpoints/x/invocations", "/endpoints//invocations",
                                 "*", "http://host/invocations", "/" + "a" * 20000])
                | st.text(LATIN1_PRINTABLE, max_size=30).map(lambda p: "/" + p))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", "HTTP/1.1x", ""]))
    length = draw(st.one_of(
        st.integers(0, 300).map(str),
        st.sampled_from(["", " 12 ", "+5", "-1", "0x10", "1e3", "5 5", "\xb2", "\xb3", "\xb9", "1\xb2",
                         "\xbd", "\xa05\xa0", "\x855", "1" * 5000, "0" * 5000 + "7", "9" * 30,
                         str(MAX_BODY_BYTES), str(MAX_BODY_BYTES + 1), str(10 * 1024 * 1024)]),
        header_text))
    names = st.text(LATIN1_PRINTABLE, max_size=20).filter(
        lambda n: n.strip().lower() not in ("content-length", "transfer-encoding", "expect"))
    extra = draw(st.lists(st.tuples(names, st.sampled_from([": ", ":", " : ", ""]), header_text), max_size=4))
    return method, path, version, length, extra


def _declared(value: str) -> int | None:
    """What a correct server makes of a Content-Length value (the server strips header values with
    ``str.strip()``): the length, or None when it is not a number (400)."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= 30 else 10 ** 30


def test_server_any_request_head(fuzz_server):
    """Request line, headers and Content-Length of any shape: always an answer, never a dead worker."""
    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(head=heads())
    @example(head=("POST", "/invocations", "HTTP/1.1", "\xb2", []))         # '²'.isdigit() is True
    @example(head=("POST", "/invocations", "HTTP/1.1", "1" * 5000, []))     # int() refuses > 4300 digits
    @example(head=("POST", "/invocations", "HTTP/1.1", "0" * 5000 + "7", []))
    def run(head):
        method, path, version, length, extra = head
        lines = [f"{method} {path} {version}", "Host: fuzz", "Content-Type: text/plain"]
        lines += [f"{name}{sep}{value}" for name, sep, value in extra]
        lines.append(f"Content-Length: {length}")
        raw_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        declared = _declared(length)
        body = b"a" * declared if declared is not None and declared <= MAX_BODY_BYTES else b""
        got = exchange(fuzz_server.port, raw_head, body)
        assert got is not None, f"no answer to {raw_head[:300]!r}"
        status, headers, answer = got
        assert 200 <= status < 500 and status != 408, (status, answer[:200], raw_head[:300])
        if status >= 400:
            error = json.loads(answer)["error"]
            assert isinstance(error, str) and error.strip()
    run()
    assert_still_healthy(fuzz_server)


@pytest.mark.parametrize("value", ["\xb2", "1\xb3", "1" * 5000])
def test_content_length_that_is_not_ascii_digits_is_400_not_a_crash(fuzz_server, value):
    """'²'.isdigit() is True and int() refuses more than 4300 digits: both once killed the worker."""
    head = ("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {value}\r\n\r\n").encode("latin-1")
    got = exchange(fuzz_server.port, head)
    assert got is not None, "the worker died instead of answering"
    status, _, answer = got
    assert status == (413 if value.isascii() else 400) and json.loads(answer)["error"]
    assert_still_healthy(fuzz_server)


# --------------------------------------------------------------------------- far over the limit

TEN_MB = 10 * 1024 * 1024


def test_ten_megabytes_are_refused_by_content_length_before_they_are_sent(fuzz_server):
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=10) as s:
        s.sendall(post_head("/invocations", "text/plain", TEN_MB))
        started = time.monotonic()
        status, headers, answer = read_answer(s)  # not one byte of the body sent yet
        assert time.monotonic() - started < 5
        assert status == 413 and headers["connection"] == "close"
        assert str(MAX_BODY_BYTES) in json.loads(answer)["error"]
        sent = 0
        try:  # a caller that sends anyway is read and dropped for a moment, then cut off
            block = b"a" * 262144
            while sent < TEN_MB:
                s.sendall(block)
                sent += len(block)
        except OSError:
            pass
    assert_still_healthy(fuzz_server)


def test_ten_megabytes_chunked_are_refused_once_past_the_limit(fuzz_server):
    """No Content-Length to go by: the server counts while it reads and answers 413 past the limit,
    long before the caller is done (it never holds more than limit + chunk overhead)."""
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=10) as s:
        s.sendall(post_head("/invocations", "text/plain", 0, chunked=True))
        piece = b"%x\r\n%s\r\n" % (16384, b"a" * 16384)
        sent = 0
        answered = None
        try:
            while sent < TEN_MB:
                s.sendall(piece)
                sent += 16384
                if select.select([s], [], [], 0.005)[0]:
                    answered = sent
                    break
        except OSError:
            answered = answered or sent
        got = read_answer(s)
    assert got is not None and got[0] == 413 and json.loads(got[2])["error"]
    assert answered is not None and answered < TEN_MB, answered  # before the caller was done
    assert_still_healthy(fuzz_server)
