"""model/serve.py's limits, in-process: one Worker reading from a scripted socket.

The server tests (tests/test_serve.py, tests/test_fuzz_endpoint.py) send the same requests over
loopback, where the kernel's buffers blur how much the server itself read. Here the socket is a
script: every byte the worker takes is counted, a caller that never stops sending is one that never
blocks, and timeouts are checked with the clock passed to the sweep, without waiting for them.
"""
from __future__ import annotations

import json
import mmap
import os

import pytest

from model import inference, serve

LIMIT = inference.MAX_BODY_BYTES  # what Worker.max_body reads
ONE_READ = 262144  # Worker._read's recv size
HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"


class ScriptedSocket:
    """Hands out ``script`` (bytes, or a callable giving the next piece) and records what is sent.
    With nothing left to hand out it blocks (BlockingIOError), or reports EOF when ``eof``."""

    def __init__(self, script, eof: bool = False, cap: int = 64 * 1024 * 1024):
        self.script, self.eof, self.cap = script, eof, cap
        self.taken = 0
        self.sent = bytearray()
        self.shut = self.closed = False
        self._pending = bytearray(script) if isinstance(script, bytes) else bytearray()

    def recv(self, n: int, flags: int = 0) -> bytes:
        if callable(self.script) and len(self._pending) < n:
            while len(self._pending) < n:
                self._pending += self.script()
        if not self._pending:
            if self.eof:
                return b""
            raise BlockingIOError
        piece = bytes(self._pending[:n])
        del self._pending[:n]
        self.taken += len(piece)
        assert self.taken <= self.cap, f"the worker read {self.taken} bytes and kept reading"
        return piece

    def send(self, data) -> int:
        self.sent += data
        return len(data)

    def shutdown(self, how) -> None:
        self.shut = True

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return 1000 + id(self) % 1000

    def answers(self) -> list[tuple[int, dict, bytes]]:
        out, buf = [], bytes(self.sent)
        while b"\r\n\r\n" in buf:
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(headers.get("content-length", "0"))
            out.append((int(lines[0].split(" ")[1]), headers, buf[:length]))
            buf = buf[length:]
        return out


class _NoPoll:
    def add(self, *a, **k): pass
    def modify(self, *a, **k): pass
    def remove(self, *a, **k): pass


def worker(**settings) -> serve.Worker:
    args = ["--model-dir", "/nonexistent", "--workers", "1"]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    cfg = serve.Config.from_args(args, {})
    w = serve.Worker(cfg, None, None, "no model in this test", 0, mmap.mmap(-1, serve._board_size(1)),
                     os.getppid())  # its "master": the sweep sees it alive
    w.poller = _NoPoll()
    return w


def connect(w: serve.Worker, sock: ScriptedSocket, now: float = 1000.0) -> serve.Conn:
    conn = serve.Conn(sock, now)
    w.conns[conn.fd] = conn
    return conn


def read(w: serve.Worker, sock: ScriptedSocket):
    conn = connect(w, sock)
    return conn, w._read(conn)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --------------------------------------------------------------------------- chunked bodies

def test_endless_chunked_body_is_refused_after_at_most_the_limit_plus_one_read():
    """A caller that never stops sending chunks: 413 once past the limit, and the worker has read
    no more than head + body limit + chunk overhead + one recv (not megabytes: it was 4 MB when the
    overhead allowance was set that high)."""
    piece = chunk(b"a" * 16384)
    sock = ScriptedSocket(lambda: piece)
    sock._pending += HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    w = worker()
    _, req = read(w, sock)
    assert req is None
    (status, headers, body), = sock.answers()
    assert status == 413 and headers["connection"] == "close" and str(LIMIT) in json.loads(body)["error"]
    assert sock.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ
    assert sock.taken < 2 * 1024 * 1024


def test_chunk_overhead_is_bounded_too():
    """One-byte chunks with long extensions: the body stays small while the buffer grows; the
    overhead allowance ends it with a 413."""
    piece = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    sock = ScriptedSocket(lambda: piece)
    sock._pending += HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    w = worker()
    _, req = read(w, sock)
    assert req is None and sock.answers()[0][0] == 413
    assert sock.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ


def test_one_huge_chunk_is_refused_from_its_size_line():
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % (10 * 1024 * 1024) + b"a" * 100)
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == 413


def test_chunked_body_at_the_limit_is_accepted():
    body = b"a" * LIMIT
    data = b"".join(chunk(body[i:i + 10000]) for i in range(0, LIMIT, 10000)) + b"0\r\n\r\n"
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + data)
    _, req = read(worker(), sock)
    assert req is not None and req.body == body and sock.answers() == []


@pytest.mark.parametrize("data", [b"zz\r\nabc\r\n0\r\n\r\n", b"-5\r\nabc\r\n0\r\n\r\n",
                                  b"3\r\nabcX\r\n0\r\n\r\n", b"1" * 2000])
def test_malformed_chunks_are_400(data):
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + data)
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == 400


# --------------------------------------------------------------------------- Content-Length and head

@pytest.mark.parametrize("length, status", [(LIMIT, 200), (LIMIT + 1, 413), (10 ** 18, 413),
                                            ("0" * 30 + "5", 200), ("9" * 19, 413), ("1" * 5000, 413),
                                            ("\u00b2", 400), ("+5", 400), ("-1", 400), ("0x10", 400),
                                            ("1e3", 400), ("", 400)])
def test_content_length(length, status):
    head = HEAD + f"Content-Length: {length}\r\n\r\n".encode("utf-8")
    body = b"a" * int(length) if status == 200 else b""
    sock = ScriptedSocket(head + body)
    _, req = read(worker(), sock)
    if status == 200:
        assert req is not None and req.body == body
    else:
        assert req is None and sock.answers()[0][0] == status
        assert sock.taken == len(head)  # refused from the head: no body was waited for


def test_content_length_refusal_reads_nothing_more_of_the_body():
    """10 MB announced: 413 from the head, and what the caller sends after it is not kept."""
    sock = ScriptedSocket(lambda: b"a" * 65536, cap=4 * 1024 * 1024)
    sock._pending += HEAD + b"Content-Length: 10485760\r\n\r\n"
    w = worker()
    conn, req = read(w, sock)
    assert req is None and sock.answers()[0][0] == 413
    assert conn.lingering and not conn.rbuf
    assert len(conn.rbuf) == 0 and sock.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ


def test_head_limit_is_inclusive():
    def head_of(size: int) -> bytes:
        start = b"GET /ping HTTP/1.1\r\nX-Pad: "
        return start + b"a" * (size - len(start)) + b"\r\n\r\n"
    ok = ScriptedSocket(head_of(serve.MAX_HEADER_BYTES))
    _, req = read(worker(), ok)
    assert req is not None and req.path == "/ping"
    big = ScriptedSocket(head_of(serve.MAX_HEADER_BYTES + 1))
    _, req = read(worker(), big)
    assert req is None and big.answers()[0][0] == 431
    endless = ScriptedSocket(lambda: b"a" * 4096)  # a head that never ends
    endless._pending += b"GET /ping HTTP/1.1\r\nX-Pad: "
    _, req = read(worker(), endless)
    assert req is None and endless.answers()[0][0] == 431


@pytest.mark.parametrize("head, status", [
    (b"GET /ping HTTP/1.1\r\nno colon\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\n Name: x\r\n\r\n", 400),
    (b"GET /ping HTTP/2\r\n\r\n", 400),
    (b"GET /ping\r\n\r\n", 400),
    (b"G3T /ping HTTP/1.1\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
])
def test_malformed_heads_are_400(head, status):
    sock = ScriptedSocket(head)
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == status


def test_head_parsing_keeps_what_it_should():
    sock = ScriptedSocket(b"POST http://host/endpoints/x/invocations?a=1 HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n"
                          b"Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
    _, req = read(worker(), sock)
    assert req.path == "/endpoints/x/invocations" and req.headers["x-a"] == "1, 2"
    assert req.body == b"hi" and req.keep_alive is False
    sock = ScriptedSocket(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    _, req = read(worker(), sock)
    assert req.keep_alive is True
    sock = ScriptedSocket(b"GET /ping HTTP/1.0\r\n\r\n")
    _, req = read(worker(), sock)
    assert req.keep_alive is False


# --------------------------------------------------------------------------- timeouts (settings)

def test_a_request_that_does_not_arrive_in_time_is_408_after_the_read_timeout():
    w = worker(read_timeout=2)
    sock = ScriptedSocket(HEAD + b"Content-Length: 100\r\n\r\nhalf")
    conn = connect(w, sock, now=1000.0)
    conn.started = 1000.0
    assert w._read(conn) is None
    w._sweep(1001.9)
    assert sock.answers() == []  # still within the read timeout
    w._sweep(1002.1)
    (status, headers, body), = sock.answers()
    assert status == 408 and headers["connection"] == "close" and "2 s" in json.loads(body)["error"]


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    w = worker(idle_timeout=3)
    sock = ScriptedSocket(b"")
    conn = connect(w, sock, now=1000.0)
    w._sweep(1002.9)
    assert conn.fd in w.conns and not sock.closed
    w._sweep(1003.1)
    assert conn.fd not in w.conns and sock.closed and sock.answers() == []


def test_a_caller_that_stops_reading_is_dropped_after_the_read_timeout():
    w = worker(read_timeout=2, idle_timeout=100)
    sock = ScriptedSocket(b"")
    conn = connect(w, sock, now=1000.0)
    conn.wbuf += b"an answer the caller does not read"
    w._sweep(1001.5)
    assert conn.fd in w.conns
    w._sweep(1002.5)
    assert conn.fd not in w.conns and sock.closed


def test_timeouts_and_grace_are_settings():
    cfg = serve.Config.from_args([], {"SERVE_IDLE_TIMEOUT": "5", "SERVE_READ_TIMEOUT": "1.5", "SERVE_GRACE": "0"})
    assert (cfg.idle_timeout, cfg.read_timeout, cfg.grace) == (5.0, 1.5, 0.0)
    cfg = serve.Config.from_args(["--idle-timeout", "7", "--read-timeout", "2", "--grace", "3"],
                                 {"SERVE_IDLE_TIMEOUT": "5", "SERVE_READ_TIMEOUT": "1.5", "SERVE_GRACE": "0"})
    assert (cfg.idle_timeout, cfg.read_timeout, cfg.grace) == (7.0, 2.0, 3.0)
    default = serve.Config.from_args([], {})
    assert (default.idle_timeout, default.read_timeout, default.grace) == (75.0, 30.0, 30.0)


@pytest.mark.parametrize("args, env, words", [
    (["--idle-timeout", "0"], {}, "--idle-timeout must be >= 0.001"),
    (["--read-timeout", "-1"], {}, "--read-timeout must be >= 0.001"),
    (["--grace", "-1"], {}, "--grace must be >= 0"),
    ([], {"SERVE_GRACE": "soon"}, "SERVE_GRACE='soon' is not a valid float"),
    ([], {"SERVE_READ_TIMEOUT": "0"}, "SERVE_READ_TIMEOUT must be >= 0.001"),
])
def test_bad_timeouts_are_refused_with_a_message(args, env, words, capsys):
    with pytest.raises(SystemExit) as info:
        serve.Config.from_args(args, env)
    assert info.value.code == 2 and words in capsys.readouterr().err


# --------------------------------------------------------------------------- respawn back-off

def test_respawn_back_off_doubles_to_ten_seconds():
    assert [serve.respawn_delay(n) for n in range(0, 9)] == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert serve.respawn_delay(1000) == 10.0


# --------------------------------------------------------------------------- what mutation testing found
# (`make mutation ARGS=serve-limits`): what the tests above did not tell apart.

class PieceSocket(ScriptedSocket):
    """Hands out at most ``piece`` bytes per recv, as a real socket does when data trickles in."""

    def __init__(self, script, piece: int, **kw):
        super().__init__(script, **kw)
        self.piece = piece

    def recv(self, n: int, flags: int = 0) -> bytes:
        return super().recv(min(n, self.piece), flags)


def test_a_body_in_small_pieces_is_read_whole_in_one_go():
    """The worker reads on while a request may still be within the limits, not only one recv's worth."""
    body = b"a" * LIMIT
    sock = PieceSocket(HEAD + f"Content-Length: {LIMIT}\r\n\r\n".encode() + body, piece=4096)
    _, req = read(worker(), sock)
    assert req is not None and req.body == body


def test_a_chunked_body_arriving_in_parts_is_put_together():
    w = worker()
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel")
    conn = connect(w, sock)
    assert w._read(conn) is None and sock.answers() == []
    sock._pending += b"lo\r\n0\r\n"  # the last chunk, not yet the blank line after it
    assert w._read(conn) is None and sock.answers() == []
    sock._pending += b"X-Trailer: 1\r\n"
    assert w._read(conn) is None and sock.answers() == []
    sock._pending += b"\r\n"
    req = w._read(conn)
    assert req is not None and req.body == b"hello" and sock.answers() == []


def test_a_large_chunked_body_arriving_in_parts_is_not_refused_on_the_way():
    body = b"a" * LIMIT
    data = b"".join(chunk(body[i:i + 10000]) for i in range(0, LIMIT, 10000)) + b"0\r\n\r\n"
    w = worker()
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + data[:100_000])
    conn = connect(w, sock)
    assert w._read(conn) is None and sock.answers() == []
    sock._pending += data[100_000:]
    req = w._read(conn)
    assert req is not None and req.body == body and sock.answers() == []


def test_the_chunked_buffer_bound_is_the_limit_plus_the_overhead_exactly():
    """An unfinished chunked body may fill LIMIT + MAX_CHUNKED_OVERHEAD bytes after the head; one more is 413."""
    piece = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    bound = LIMIT + serve.MAX_CHUNKED_OVERHEAD
    whole, tail = divmod(bound, len(piece))
    assert 0 < tail < 1000  # the tail is an unfinished size line, short enough to wait for
    data = piece * whole + piece[:tail]
    for extra, status in ((b"", None), (b"x", 413)):
        sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + data + extra)
        _, req = read(worker(), sock)
        assert req is None
        assert [a[0] for a in sock.answers()] == ([] if status is None else [status])


def test_requests_after_a_chunked_one_on_the_same_connection_are_read_too():
    first = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"one") + b"0\r\nX-T: 1\r\n\r\n"
    second = HEAD + b"Content-Length: 3\r\n\r\ntwo"
    w = worker()
    sock = ScriptedSocket(first + second)
    conn, req = read(w, sock)
    assert req is not None and req.body == b"one"
    conn.inflight = False
    req = w._next_request(conn)
    assert req is not None and (req.method, req.body) == ("POST", b"two") and sock.answers() == []


def test_a_request_line_with_more_than_three_parts_is_400():
    sock = ScriptedSocket(b"GET /ping HTTP/1.1 extra\r\n\r\n")
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == 400


def test_repeated_headers_other_than_the_length_are_joined_whatever_their_name():
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\nAccept: a\r\nAccept: b\r\nAge: 1\r\nAge: 2\r\n\r\n")
    _, req = read(worker(), sock)
    assert req is not None and req.headers["accept"] == "a, b" and req.headers["age"] == "1, 2"


def test_the_read_timeout_runs_from_the_first_byte_and_ends_after_it():
    w = worker(read_timeout=2)
    sock = ScriptedSocket(HEAD + b"Content-Length: 100\r\n\r\nhalf")
    conn = connect(w, sock, now=1000.0)
    assert w._read(conn) is None
    assert conn.started == conn.last > 0  # the clock started with the first bytes read
    started = conn.started
    w._sweep(started + 2)  # at the timeout exactly: not yet
    assert sock.answers() == []
    w._sweep(started + 2.01)
    assert [a[0] for a in sock.answers()] == [408]


def test_the_idle_and_unread_answer_timeouts_end_after_them_not_at_them():
    w = worker(idle_timeout=3, read_timeout=2)
    idle, stuck = ScriptedSocket(b""), ScriptedSocket(b"")
    idle_conn, stuck_conn = connect(w, idle, now=1000.0), connect(w, stuck, now=1000.0)
    stuck_conn.wbuf += b"an answer the caller does not read"
    w._sweep(1002.0)
    assert stuck_conn.fd in w.conns
    w._sweep(1003.0)
    assert idle_conn.fd in w.conns and stuck_conn.fd not in w.conns


def test_pipelined_requests_with_stray_line_breaks_between_are_read_one_by_one():
    w = worker()
    sock = ScriptedSocket(HEAD + b"Content-Length: 3\r\n\r\none" + b"\r\n\r\n"
                          + b"GET /ping HTTP/1.1\r\n\r\n" + HEAD + b"Content-Length: 5\r\n\r\nthree")
    conn, req = read(w, sock)
    seen = []
    while req is not None:
        seen.append((req.method, req.path, req.body))
        conn.inflight = False
        req = w._next_request(conn)
    assert seen == [("POST", "/invocations", b"one"), ("GET", "/ping", b""), ("POST", "/invocations", b"three")]
    assert sock.answers() == []


def test_http_1_1_keeps_the_connection_unless_told_to_close():
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\n\r\n")
    _, req = read(worker(), sock)
    assert req.keep_alive is True


def test_a_caller_that_hung_up_gets_its_answer_and_the_connection_ends():
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\n\r\n", eof=True)
    conn, req = read(worker(), sock)
    assert req is not None and req.keep_alive is False and conn.eof
    half = ScriptedSocket(HEAD + b"Content-Length: 10\r\n\r\nhal", eof=True)
    w = worker()
    conn, req = read(w, half)
    assert req is None and half.closed and conn.fd not in w.conns


def test_a_connection_reset_while_reading_closes_it():
    class Reset(ScriptedSocket):
        def recv(self, n, flags=0):
            raise ConnectionResetError
    w = worker()
    sock = Reset(b"")
    conn, req = read(w, sock)
    assert req is None and sock.closed and conn.fd not in w.conns


def test_a_lingering_connection_is_kept_until_its_linger_is_over_exactly_then_closed():
    w = worker()
    sock = ScriptedSocket(b"")
    conn = connect(w, sock, now=1000.0)
    conn.lingering, conn.linger_until = True, 1002.0
    w._sweep(1001.0)
    assert conn.fd in w.conns
    w._sweep(1002.0)
    assert conn.fd in w.conns and not sock.closed
    w._sweep(1002.5)
    assert conn.fd not in w.conns and sock.closed


@pytest.mark.parametrize("shift", [-1, 1])
def test_a_worker_whose_master_is_gone_drains_whatever_pid_it_was_handed_to(monkeypatch, shift):
    """Orphaned, a worker's parent becomes init or a subreaper, whose pid may be above or below the
    master's: any other parent means the master is gone."""
    w = worker()
    drains = []
    monkeypatch.setattr(w, "_start_drain", lambda: drains.append(True))
    w._sweep(1000.0)
    assert drains == [] and not w.draining
    w.master_pid = os.getppid() + shift
    w._sweep(1000.0)
    assert drains == [True] and w.draining


def test_the_documented_limits():
    """docs/reliability.md's figures: a 16 KB head, 64 KB of chunk framing over the body limit."""
    assert (serve.MAX_HEADER_BYTES, serve.MAX_CHUNKED_OVERHEAD) == (16384, 65536)


def test_port_timeout_and_thread_settings_at_their_bounds(monkeypatch, capsys):
    assert serve.Config.from_args(["--port", "0"], {}).port == 0  # any free port: the tests use it
    assert serve.Config.from_args(["--port", "65535"], {}).port == 65535
    for args in (["--port", "65536"], ["--timeout", "0"]):
        with pytest.raises(SystemExit):
            serve.Config.from_args(args, {})
    assert "port 65536 is out of range" in capsys.readouterr().err
    assert serve.Config.from_args(["--timeout", "0.001"], {}).timeout == 0.001
    monkeypatch.setattr(serve, "_cpu_count", lambda: 4)
    assert serve.Config.from_args(["--workers", "4"], {}).threads == 1  # one thread per worker's CPU
    assert serve.Config.from_args(["--workers", "2"], {}).threads == 2
    assert serve.Config.from_args(["--workers", "8"], {}).threads == 1


@pytest.mark.parametrize("head, status", [
    (b"GET /ping HTTP/1.1\r\nName : x\r\n\r\n", 400),  # space before the colon
    (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n", 400),  # sorts before "chunked"
])
def test_more_malformed_heads_are_400(head, status):
    sock = ScriptedSocket(head)
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == status


@pytest.mark.parametrize("target, path", [("http://host/ping", "/ping"), ("http://host/", "/"),
                                          ("http://host", "/"), ("https://h/a/b?c", "/a/b")])
def test_absolute_form_targets_keep_their_path(target, path):
    sock = ScriptedSocket(f"GET {target} HTTP/1.1\r\n\r\n".encode())
    _, req = read(worker(), sock)
    assert req is not None and req.path == path


def test_a_chunk_size_line_may_wait_up_to_1024_bytes_for_its_end():
    for waiting, answers in ((1024, []), (1025, [400])):
        sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1;" + b"x" * (waiting - 2))
        _, req = read(worker(), sock)
        assert req is None and [a[0] for a in sock.answers()] == answers, waiting


def test_chunk_data_must_end_in_crlf_even_with_bytes_below_it():
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\x00\x00" + b"0\r\n\r\n")
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == 400


def test_a_head_may_wait_up_to_the_limit_for_its_blank_line():
    partial = b"GET /ping HTTP/1.1\r\nX-Pad: "
    for size, answers in ((serve.MAX_HEADER_BYTES, []), (serve.MAX_HEADER_BYTES + 1, [431])):
        sock = ScriptedSocket(partial + b"a" * (size - len(partial)))
        _, req = read(worker(), sock)
        assert req is None and [a[0] for a in sock.answers()] == answers, size


def test_a_slow_head_is_408_after_the_read_timeout_too():
    w = worker(read_timeout=2, idle_timeout=100)
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\nX-A: 1")
    conn = connect(w, sock)
    assert w._read(conn) is None and conn.started > 0
    w._sweep(conn.started + 2.5)
    assert [a[0] for a in sock.answers()] == [408]


def test_a_connection_between_requests_has_no_read_clock_running():
    """After a whole request, or only stray line breaks, nothing is arriving: no 408, only the idle timeout."""
    for data in (b"GET /ping HTTP/1.1\r\n\r\n", b"\r\n"):
        w = worker(read_timeout=2, idle_timeout=100)
        sock = ScriptedSocket(data)
        conn = connect(w, sock)
        w._read(conn)
        conn.inflight = False
        assert conn.started == 0, data
        w._sweep(conn.last + 50)
        assert sock.answers() == [] and conn.fd in w.conns, data


def test_a_request_keeps_the_time_its_first_byte_came():
    w = worker()
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\n\r\n")
    conn = connect(w, sock)
    conn.started = 999.0  # its first bytes came in an earlier read
    req = w._read(conn)
    assert req is not None and req.started == 999.0


def test_a_lingering_connection_drops_all_it_is_sent_and_ends_at_eof():
    w = worker()
    sock = ScriptedSocket(b"x" * (3 * ONE_READ))
    conn = connect(w, sock)
    conn.lingering, conn.linger_until = True, 2000.0
    assert w._read(conn) is None
    assert sock.taken == 3 * ONE_READ and not conn.rbuf and conn.fd in w.conns and not sock.closed
    sock.eof = True
    assert w._read(conn) is None and sock.closed and conn.fd not in w.conns


def test_a_request_followed_by_eof_stays_open_for_its_answer():
    w = worker()
    sock = ScriptedSocket(b"GET /ping HTTP/1.1\r\n\r\n", eof=True)
    conn, req = read(w, sock)
    assert req is not None and conn.fd in w.conns and not sock.closed


def test_each_request_that_expects_100_continue_gets_it_and_is_taken_in_flight():
    w = worker()
    expect = HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    sock = ScriptedSocket(expect)
    conn = connect(w, sock)
    for n in (1, 2):
        assert w._read(conn) is None
        assert bytes(sock.sent).count(b"HTTP/1.1 100 Continue\r\n\r\n") == n
        sock._pending += b"ok"
        req = w._read(conn)
        assert req is not None and req.body == b"ok" and conn.inflight
        conn.inflight = False
        sock._pending += expect  # the next request on the same connection expects it too


@pytest.mark.parametrize("args, words", [(["--port", "-1"], "--port must be >= 0, got -1"),
                                         (["--workers", "0"], "--workers must be >= 1, got 0"),
                                         (["--timeout", "0"], "--timeout must be >= 0.001, got 0.0")])
def test_a_flag_out_of_range_is_refused_by_its_own_name(args, words, capsys):
    """(The message named `--sagemaker_bind_to_port`, a flag that does not exist, for `--port -1`.)"""
    with pytest.raises(SystemExit):
        serve.Config.from_args(args, {})
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("first, second", [(b"3", b"4"), (b"4", b"3")])
def test_conflicting_content_lengths_are_400_in_either_order(first, second):
    sock = ScriptedSocket(HEAD + b"Content-Length: " + first + b"\r\nContent-Length: " + second + b"\r\n\r\nabcd")
    _, req = read(worker(), sock)
    assert req is None and sock.answers()[0][0] == 400


def test_a_chunk_whose_crlf_is_split_between_reads_is_waited_for():
    w = worker()
    sock = ScriptedSocket(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r")
    conn = connect(w, sock)
    assert w._read(conn) is None and sock.answers() == []
    sock._pending += b"\n0\r\n\r\n"
    req = w._read(conn)
    assert req is not None and req.body == b"hello" and sock.answers() == []
