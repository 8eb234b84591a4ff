"""model/serve_worker.py's limits, in-process: one Connection fed by a scripted caller.

The server tests (tests/test_serve.py, tests/test_fuzz_endpoint.py) send the same requests over
loopback, where the kernel's buffers blur how much the server itself read. Here the transport is a
fake and the caller a script: every byte handed to ``Connection.data_received`` is counted, a caller
that never stops sending is fed for as long as the connection reads (not paused, not closed, no
final answer written), and timeouts are checked with the clock passed to ``Dispatcher.sweep``,
without waiting for them. The dispatcher is the real one, with no model and no event loop: a
request that arrives whole waits in ``conn.queue``; ``run_ready()`` answers it (503: no model).
"""
from __future__ import annotations

import json
import os
import socket
import struct

import pytest

from model import inference, serve, serve_worker
from model.serve_worker import Connection, Dispatcher, ModelWorker

LIMIT = inference.MAX_BODY_BYTES  # what Dispatcher.max_body reads
ONE_READ = 262144  # what one read of an asyncio (uvloop) transport hands data_received at most
HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


class FakeTransport:
    """What a Connection writes and asks of its transport, recorded. ``close``/``abort`` end the
    connection at once (asyncio does so on the next loop turn): ``connection_lost`` is called."""

    def __init__(self):
        self.protocol: Connection | None = None
        self.sent = bytearray()
        self.reading = True
        self.closed = self.aborted = self.eof_written = False
        self.buffered = 0  # get_write_buffer_size: an answer the caller has not read

    def write(self, data) -> None:
        assert not self.closed, "written after close"
        self.sent += data

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self._lost()

    def abort(self) -> None:
        self.aborted = True
        self._lost()

    def _lost(self) -> None:
        if not self.closed:
            self.closed, self.reading = True, False
            self.protocol.connection_lost(None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if not self.closed:
            self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return default

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

    def statuses(self) -> list[int]:
        return [a[0] for a in self.answers()]


def dispatcher(**settings) -> Dispatcher:
    args = ["--model-dir", "/nonexistent", "--workers", "1"]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return Dispatcher(serve.Config.from_args(args, {}), None, "no model in this test", loop=None)


class Caller:
    """The other end of one connection: ``script`` (bytes, or a callable giving the next piece) is
    handed to the Connection in reads of at most ``piece`` bytes while the transport reads, and no
    final answer (or refusal) is written; with nothing left, EOF follows when ``eof``."""

    def __init__(self, script=b"", *, eof: bool = False, cap: int = 64 * 1024 * 1024,
                 piece: int = ONE_READ, d: Dispatcher | None = None, now: float | None = None,
                 **settings):
        self.script, self.eof, self.cap, self.piece = script, eof, cap, piece
        self.d = d or dispatcher(**settings)
        self.t = FakeTransport()
        self.conn = Connection(self.d)
        self.t.protocol = self.conn
        self.conn.connection_made(self.t)
        if now is not None:
            self.conn.last = now
        self.taken = 0
        self.eof_sent = False
        self.pending = bytearray(script) if isinstance(script, bytes) else bytearray()

    def pump(self, more: bytes = b"", linger: bool = False, reads: int | None = None) -> "Caller":
        """Hand over ``more`` (after what is pending) and the script; ``linger``: also after the
        final answer (the transport keeps reading then, and the Connection drops it)."""
        self.pending += more
        conn, t = self.conn, self.t
        while t.reading and (linger or not (conn.closing or conn.refusal)) and reads != 0:
            if callable(self.script):
                while len(self.pending) < self.piece:
                    self.pending += self.script()
            if not self.pending:
                break
            data = bytes(self.pending[:self.piece])
            del self.pending[:self.piece]
            self.taken += len(data)
            assert self.taken <= self.cap, f"the connection read {self.taken} bytes and kept reading"
            conn.data_received(data)
            reads = None if reads is None else reads - 1
        if self.eof and not self.eof_sent and not self.pending and t.reading:
            self.eof_sent = True
            if not conn.eof_received():
                t.close()
        return self

    @property
    def queue(self):
        return list(self.conn.queue)


def read(script, **kw) -> Caller:
    return Caller(script, **kw).pump()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --------------------------------------------------------------------------- chunked bodies

def test_endless_chunked_body_is_refused_after_at_most_the_limit_plus_one_read():
    """A caller that never stops sending chunks: 413 once past the limit, and the worker has read
    no more than head + body limit + chunk overhead + one read (not megabytes: it was 4 MB when the
    overhead allowance was set that high)."""
    piece = chunk(b"a" * 16384)
    c = Caller(lambda: piece)
    c.pump(CHUNKED)
    assert c.queue == []
    (status, headers, body), = c.t.answers()
    assert status == 413 and headers["connection"] == "close" and str(LIMIT) in json.loads(body)["error"]
    assert c.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ
    assert c.taken < 2 * 1024 * 1024


def test_chunk_overhead_is_bounded_too():
    """One-byte chunks with long extensions: the body stays small while the framing grows; the
    overhead allowance ends it with a 413."""
    piece = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    c = Caller(lambda: piece)
    c.pump(CHUNKED)
    assert c.queue == [] and c.t.statuses() == [413]
    assert c.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ


def test_chunk_overhead_is_bounded_when_the_head_comes_alone():
    """The same caller, its head in a read of its own: the framing bound holds to one read."""
    piece = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    c = Caller()
    c.pump(CHUNKED)
    assert c.taken == len(CHUNKED) and c.t.sent == b""
    c.script = lambda: piece
    c.pump()
    assert c.queue == [] and c.t.statuses() == [413]
    assert c.taken <= len(CHUNKED) + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ


def test_one_huge_chunk_is_refused_once_its_bytes_pass_the_limit():
    # llhttp: no chunk size reaches us (httptools has no callback for it), so a 10 MB chunk is not
    # refused from its size line; it is refused once its data pass the body limit, within one read.
    c = read(CHUNKED + b"%x\r\n" % (10 * 1024 * 1024) + b"a" * 100)
    assert c.queue == [] and c.t.sent == b""  # was: 413 from the size line alone
    endless = Caller(lambda: b"a" * 65536)
    endless.pump(CHUNKED + b"%x\r\n" % (10 * 1024 * 1024))
    assert endless.queue == [] and endless.t.statuses() == [413]
    assert endless.taken <= serve.MAX_HEADER_BYTES + LIMIT + ONE_READ


def test_chunked_body_at_the_limit_is_accepted():
    body = b"a" * LIMIT
    data = b"".join(chunk(body[i:i + 10000]) for i in range(0, LIMIT, 10000)) + b"0\r\n\r\n"
    c = read(CHUNKED + data)
    assert [r.body for r in c.queue] == [body] and c.t.sent == b""


@pytest.mark.parametrize("data", [b"zz\r\nabc\r\n0\r\n\r\n", b"-5\r\nabc\r\n0\r\n\r\n",
                                  b"3\r\nabcX\r\n0\r\n\r\n", b"1" * 2000])
def test_malformed_chunks_are_400(data):
    c = read(CHUNKED + data)
    assert c.queue == [] and c.t.statuses() == [400]


# --------------------------------------------------------------------------- Content-Length and head

@pytest.mark.parametrize("length, status", [(LIMIT, 200), (LIMIT + 1, 413), (10 ** 18, 413),
                                            ("0" * 30 + "5", 200), ("9" * 19, 413), ("1" * 5000, 413),
                                            ("\u00b2", 400), ("+5", 400), ("-1", 400), ("0x10", 400),
                                            ("1e3", 400), ("", 400)])
def test_content_length(length, status):
    head = HEAD + f"Content-Length: {length}\r\n\r\n".encode("utf-8")
    body = b"a" * int(length) if status == 200 else b""
    c = read(head + body)
    if status == 200:
        assert [r.body for r in c.queue] == [body] and c.t.sent == b""
    else:
        assert c.queue == [] and c.t.statuses() == [status]
        assert c.taken == len(head)  # refused from the head: no body was waited for


def test_content_length_refusal_reads_nothing_more_of_the_body():
    """10 MB announced: 413 from the head, and what the caller sends after it is not kept."""
    c = Caller(lambda: b"a" * 65536, cap=4 * 1024 * 1024)
    c.pump(HEAD + b"Content-Length: 10485760\r\n\r\n")
    assert c.queue == [] and c.t.statuses() == [413]
    assert c.conn.closing and c.t.eof_written and c.conn.body == [] and c.conn.body_size == 0
    assert c.taken <= serve.MAX_HEADER_BYTES + LIMIT + serve.MAX_CHUNKED_OVERHEAD + ONE_READ
    c.pump(linger=True, reads=8)  # lingering: read and dropped
    assert c.conn.body == [] and c.conn.body_size == 0 and c.t.statuses() == [413]


def test_head_limit_is_inclusive():
    def head_of(size: int) -> bytes:
        start = b"GET /ping HTTP/1.1\r\nX-Pad: "
        return start + b"a" * (size - len(start)) + b"\r\n\r\n"
    ok = read(head_of(serve.MAX_HEADER_BYTES))
    assert [r.path for r in ok.queue] == ["/ping"]
    big = read(head_of(serve.MAX_HEADER_BYTES + 1))
    assert big.queue == [] and big.t.statuses() == [431]
    endless = Caller(lambda: b"a" * 4096)  # a head that never ends
    endless.pump(b"GET /ping HTTP/1.1\r\nX-Pad: ")
    assert endless.queue == [] and endless.t.statuses() == [431]
    assert endless.taken <= serve.MAX_HEADER_BYTES + ONE_READ


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
    c = read(head)
    assert c.queue == [] and c.t.statuses() == [status]


def test_head_parsing_keeps_what_it_should():
    c = read(b"POST http://host/endpoints/x/invocations?a=1 HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n"
             b"Content-Length: 2\r\nConnection: close\r\n\r\nhi")
    req, = c.queue
    assert req.path == "/endpoints/x/invocations" and req.headers["x-a"] == "1, 2"
    assert req.body == b"hi" and req.keep_alive is False
    # llhttp: two identical Content-Length headers are refused ("Duplicate Content-Length"), where
    # the old parser took them as one; the request above now sends one
    twice = read(HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nhi")
    assert twice.queue == [] and twice.t.statuses() == [400]
    req, = read(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").queue
    assert req.keep_alive is True
    req, = read(b"GET /ping HTTP/1.0\r\n\r\n").queue
    assert req.keep_alive is False


# --------------------------------------------------------------------------- timeouts (settings)

def test_a_request_that_does_not_arrive_in_time_is_408_after_the_read_timeout():
    c = Caller(HEAD + b"Content-Length: 100\r\n\r\nhalf", read_timeout=2, now=1000.0)
    c.conn.started = 1000.0
    c.pump()
    assert c.queue == []
    c.d.sweep(1001.9)
    assert c.t.answers() == []  # still within the read timeout
    c.d.sweep(1002.1)
    (status, headers, body), = c.t.answers()
    assert status == 408 and headers["connection"] == "close" and "2 s" in json.loads(body)["error"]


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    c = Caller(idle_timeout=3, now=1000.0)
    c.d.sweep(1002.9)
    assert c.conn in c.d.conns and not c.t.closed
    c.d.sweep(1003.1)
    assert c.conn not in c.d.conns and c.t.closed and c.t.answers() == []


def test_a_caller_that_stops_reading_is_dropped_after_the_read_timeout():
    c = Caller(read_timeout=2, idle_timeout=100, now=1000.0)
    c.t.buffered = len(b"an answer the caller does not read")
    c.d.sweep(1001.5)
    assert c.conn in c.d.conns
    c.d.sweep(1002.5)
    assert c.conn not in c.d.conns and c.t.closed and c.t.aborted


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

def test_a_body_in_small_pieces_is_read_whole_in_one_go():
    """The worker reads on while a request may still be within the limits, not only one read's worth."""
    body = b"a" * LIMIT
    c = read(HEAD + f"Content-Length: {LIMIT}\r\n\r\n".encode() + body, piece=4096)
    assert [r.body for r in c.queue] == [body] and c.t.sent == b""


def test_a_chunked_body_arriving_in_parts_is_put_together():
    c = read(CHUNKED + b"5\r\nhel")
    assert c.queue == [] and c.t.answers() == []
    c.pump(b"lo\r\n0\r\n")  # the last chunk, not yet the blank line after it
    assert c.queue == [] and c.t.answers() == []
    c.pump(b"X-Trailer: 1\r\n")
    assert c.queue == [] and c.t.answers() == []
    c.pump(b"\r\n")
    assert [r.body for r in c.queue] == [b"hello"] and c.t.answers() == []


def test_a_large_chunked_body_arriving_in_parts_is_not_refused_on_the_way():
    body = b"a" * LIMIT
    data = b"".join(chunk(body[i:i + 10000]) for i in range(0, LIMIT, 10000)) + b"0\r\n\r\n"
    c = read(CHUNKED + data[:100_000])
    assert c.queue == [] and c.t.answers() == []
    c.pump(data[100_000:])
    assert [r.body for r in c.queue] == [body] and c.t.answers() == []


def test_the_chunked_buffer_bound_is_the_limit_plus_the_overhead_exactly():
    """An unfinished chunked body may bring LIMIT + MAX_CHUNKED_OVERHEAD bytes after the head; one more is 413."""
    piece = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    bound = LIMIT + serve.MAX_CHUNKED_OVERHEAD
    whole, tail = divmod(bound, len(piece))
    assert 0 < tail < 1000  # the tail is an unfinished size line, short enough to wait for
    data = piece * whole + piece[:tail]
    for extra, status in ((b"", None), (b"x", 413)):
        c = read(CHUNKED)
        c.pump(data + extra)
        assert c.queue == []
        assert c.t.statuses() == ([] if status is None else [status])
    for extra, status in ((b"", None), (b"x", 413)):  # the head and the framing in one read
        c = Caller(CHUNKED + data + extra)
        c.pump()
        assert c.t.statuses() == ([] if status is None else [status])
    for cut in (1000, 77777):  # however the body is split into reads
        c = read(CHUNKED)
        for i in range(0, len(data), cut):
            c.pump(data[i:i + cut])
        assert c.t.statuses() == []
        c.pump(b"x")
        assert c.t.statuses() == [413]


def test_requests_after_a_chunked_one_on_the_same_connection_are_read_too():
    first = CHUNKED + chunk(b"one") + b"0\r\nX-T: 1\r\n\r\n"
    second = HEAD + b"Content-Length: 3\r\n\r\ntwo"
    c = read(first + second)
    assert [(r.method, r.body) for r in c.queue] == [("POST", b"one"), ("POST", b"two")]
    assert c.t.answers() == []


def test_a_request_line_with_more_than_three_parts_is_400():
    c = read(b"GET /ping HTTP/1.1 extra\r\n\r\n")
    assert c.queue == [] and c.t.statuses() == [400]


def test_repeated_headers_other_than_the_length_are_joined_whatever_their_name():
    req, = read(b"GET /ping HTTP/1.1\r\nAccept: a\r\nAccept: b\r\nAge: 1\r\nAge: 2\r\n\r\n").queue
    assert req.headers["accept"] == "a, b" and req.headers["age"] == "1, 2"


def test_the_read_timeout_runs_from_the_first_byte_and_ends_after_it():
    c = read(HEAD + b"Content-Length: 100\r\n\r\nhalf", read_timeout=2, now=1000.0)
    assert c.queue == []
    assert c.conn.started == c.conn.last > 1000.0  # the clock started with the first bytes read
    started = c.conn.started
    c.d.sweep(started + 2)  # at the timeout exactly: not yet
    assert c.t.answers() == []
    c.d.sweep(started + 2.01)
    assert c.t.statuses() == [408]


def test_the_idle_and_unread_answer_timeouts_end_after_them_not_at_them():
    d = dispatcher(idle_timeout=3, read_timeout=2)
    idle, stuck = Caller(d=d, now=1000.0), Caller(d=d, now=1000.0)
    stuck.t.buffered = len(b"an answer the caller does not read")
    d.sweep(1002.0)
    assert stuck.conn in d.conns
    d.sweep(1003.0)
    assert idle.conn in d.conns and stuck.conn not in d.conns


def test_pipelined_requests_with_stray_line_breaks_between_are_read_one_by_one():
    c = read(HEAD + b"Content-Length: 3\r\n\r\none" + b"\r\n\r\n"
             + b"GET /ping HTTP/1.1\r\n\r\n" + HEAD + b"Content-Length: 5\r\n\r\nthree")
    seen = [(r.method, r.path, r.body) for r in c.queue]
    assert seen == [("POST", "/invocations", b"one"), ("GET", "/ping", b""), ("POST", "/invocations", b"three")]
    assert c.t.answers() == []
    assert not c.t.reading  # MAX_QUEUED waiting: read no more until they are answered
    for _ in seen:
        c.d.run_ready()
    assert c.t.statuses() == [503, 503, 503] and c.t.reading


def test_http_1_1_keeps_the_connection_unless_told_to_close():
    req, = read(b"GET /ping HTTP/1.1\r\n\r\n").queue
    assert req.keep_alive is True


def test_a_caller_that_hung_up_gets_its_answer_and_the_connection_ends():
    c = read(b"GET /ping HTTP/1.1\r\n\r\n", eof=True)
    # asyncio: the EOF comes after the data, so the request was parsed keep-alive; the answer (not
    # the request) carries the decision to close. Was: req.keep_alive is False, from one read.
    req, = c.queue
    assert c.conn.eof and not c.t.closed
    c.d.run_ready()
    (status, headers, _), = c.t.answers()
    assert headers["connection"] == "close" and c.t.closed and c.conn not in c.d.conns
    half = read(HEAD + b"Content-Length: 10\r\n\r\nhal", eof=True)
    assert half.queue == [] and half.t.closed and half.conn not in half.d.conns
    assert half.t.answers() == []


def test_a_connection_reset_while_reading_closes_it():
    c = read(b"GET /ping HTTP/1.1\r\n\r\n")
    # asyncio: a reset reaches the protocol as connection_lost (the transport closes the socket)
    c.conn.connection_lost(ConnectionResetError())
    assert c.conn not in c.d.conns and c.queue == []
    c.d.run_ready()  # nothing is answered on it
    assert c.t.sent == b""


def test_a_lingering_connection_is_kept_until_its_linger_is_over_exactly_then_closed():
    c = Caller(now=1000.0)
    c.conn.closing, c.conn.linger_until = True, 1002.0
    c.d.sweep(1001.0)
    assert c.conn in c.d.conns
    c.d.sweep(1002.0)
    assert c.conn in c.d.conns and not c.t.closed
    c.d.sweep(1002.5)
    assert c.conn not in c.d.conns and c.t.closed


@pytest.mark.parametrize("shift", [-1, 1])
def test_a_worker_whose_master_is_gone_drains_whatever_pid_it_was_handed_to(shift):
    """Orphaned, a worker's parent becomes init or a subreaper, whose pid may be above or below the
    master's: any other parent means the master is gone."""
    class Loop:
        def __init__(self):
            self.soon, self.later, self.stopped = [], [], False
        def stop(self): self.stopped = True
        def call_soon(self, fn, *args): self.soon.append(fn)
        def call_later(self, delay, fn, *args): self.later.append(fn)
        def remove_reader(self, fd): pass

    class Listener:
        closed = False
        def close(self): self.closed = True

    w = ModelWorker.__new__(ModelWorker)  # no gunicorn around it: what _tick and drain use
    w.ppid = os.getppid()  # its master: alive
    w.notify = lambda: None
    w._balance = lambda: None
    w.loop, w.d = Loop(), dispatcher()
    w.ticks, w.tick_s, w.draining, w.accepting, w.slot = 0, 0.1, False, False, 0
    w.board = serve_worker.new_board(1)
    struct.pack_into("qq", w.board, 8, 0, 1)
    w.sockets = [Listener()]
    w.listener = socket.socket()
    try:
        w.listener.bind(("127.0.0.1", 0))
        w.listener.listen(1)
        w.listener.setblocking(False)  # nothing in the backlog: drain takes no connection
        w._tick()
        assert not w.draining and not w.d.draining and w.loop.soon == [] and len(w.loop.later) == 1
        w.ppid = os.getppid() + shift
        w._tick()
        assert w.draining and w.d.draining and w.loop.soon == [w._drain_idle]
        assert w.loop.stopped  # no connection to finish: the worker's loop ends
        assert w.sockets[0].closed and struct.unpack_from("qq", w.board, 8) == (-1, serve_worker.LEAVING)
    finally:
        w.listener.close()


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
    c = read(head)
    assert c.queue == [] and c.t.statuses() == [status]


@pytest.mark.parametrize("target, path", [("http://host/ping", "/ping"), ("http://host/", "/"),
                                          ("http://host", "/"), ("https://h/a/b?c", "/a/b")])
def test_absolute_form_targets_keep_their_path(target, path):
    req, = read(f"GET {target} HTTP/1.1\r\n\r\n".encode()).queue
    assert req.path == path


def test_a_chunk_size_line_may_wait_up_to_the_framing_bound_for_its_end():
    # llhttp: a chunk-size line (with its extensions) has no bound of its own, where the old parser
    # allowed 1024 bytes and then answered 400: it is bounded with the rest of the framing,
    # LIMIT + MAX_CHUNKED_OVERHEAD bytes after the head, then 413
    bound = LIMIT + serve.MAX_CHUNKED_OVERHEAD
    for waiting, answers in ((bound, []), (bound + 1, [413])):
        c = read(CHUNKED)
        c.pump(b"1;" + b"x" * (waiting - 2))
        assert c.queue == [] and c.t.statuses() == answers, waiting


def test_chunk_data_must_end_in_crlf_even_with_bytes_below_it():
    c = read(CHUNKED + b"3\r\nabc\x00\x00" + b"0\r\n\r\n")
    assert c.queue == [] and c.t.statuses() == [400]


def test_a_head_may_wait_up_to_the_limit_for_its_blank_line():
    partial = b"GET /ping HTTP/1.1\r\nX-Pad: "
    for size, answers in ((serve.MAX_HEADER_BYTES, []), (serve.MAX_HEADER_BYTES + 1, [431])):
        c = read(partial + b"a" * (size - len(partial)))
        assert c.queue == [] and c.t.statuses() == answers, size
    for cut in (1, 1000):  # in pieces too
        data = partial + b"a" * (serve.MAX_HEADER_BYTES - len(partial))
        c = read(data, piece=cut)
        assert c.t.statuses() == [], cut
        c.pump(b"a")
        assert c.t.statuses() == [431], cut


def test_a_slow_head_is_408_after_the_read_timeout_too():
    c = read(b"GET /ping HTTP/1.1\r\nX-A: 1", read_timeout=2, idle_timeout=100)
    assert c.queue == [] and c.conn.started > 0
    c.d.sweep(c.conn.started + 2.5)
    assert c.t.statuses() == [408]


def test_a_connection_between_requests_has_no_read_clock_running():
    """After a whole request, or only stray line breaks, nothing is arriving: no 408, only the idle timeout."""
    for data, answered in ((b"GET /ping HTTP/1.1\r\n\r\n", [503]), (b"\r\n", [])):
        c = read(data, read_timeout=2, idle_timeout=100)
        c.d.run_ready()  # the request (if any) answered: 503, no model
        assert c.conn.started == 0, data
        c.d.sweep(c.conn.last + 50)
        assert c.t.statuses() == answered and c.conn in c.d.conns, data


def test_a_request_keeps_the_time_its_first_byte_came():
    c = Caller(b"GET /ping HTTP/1.1\r\n\r\n")
    c.conn.started = 999.0  # its first bytes came in an earlier read
    req, = c.pump().queue
    assert req.started == 999.0


def test_a_lingering_connection_drops_all_it_is_sent_and_ends_at_eof():
    c = Caller(b"x" * (3 * ONE_READ))
    c.conn.closing, c.conn.linger_until = True, 2000.0
    c.pump(linger=True)
    assert c.taken == 3 * ONE_READ and c.queue == [] and c.conn.refusal is None
    assert c.t.sent == b"" and c.conn in c.d.conns and not c.t.closed
    c.eof = True
    c.pump(linger=True)
    assert c.t.closed and c.conn not in c.d.conns


def test_a_request_followed_by_eof_stays_open_for_its_answer():
    c = read(b"GET /ping HTTP/1.1\r\n\r\n", eof=True)
    assert len(c.queue) == 1 and c.conn in c.d.conns and not c.t.closed


def test_each_request_that_expects_100_continue_gets_it_and_is_taken_in_flight():
    expect = HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    c = Caller()
    for n in (1, 2):
        c.pump(expect)
        assert c.queue == []
        assert bytes(c.t.sent).count(b"HTTP/1.1 100 Continue\r\n\r\n") == n
        c.pump(b"ok")
        assert [r.body for r in c.queue] == [b"ok"]
        c.d.run_ready()  # answered (503, no model), kept alive: the next request on the same connection
        assert c.queue == [] and c.t.statuses()[-1] == 503 and not c.conn.closing


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
    c = read(HEAD + b"Content-Length: " + first + b"\r\nContent-Length: " + second + b"\r\n\r\nabcd")
    assert c.queue == [] and c.t.statuses() == [400]


def test_a_chunk_whose_crlf_is_split_between_reads_is_waited_for():
    c = read(CHUNKED + b"5\r\nhello\r")
    assert c.queue == [] and c.t.answers() == []
    c.pump(b"\n0\r\n\r\n")
    assert [r.body for r in c.queue] == [b"hello"] and c.t.answers() == []


# --------------------------------------------------------------------------- what mutation testing found
# in the server on gunicorn (`make mutation ARGS=serve-limits`, serve_worker.py): 23 of 205 lived.

@pytest.mark.parametrize("head, path", [
    (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "-"),
    (b"GET /ping HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "/ping")])
def test_an_upgrade_or_connect_is_answered_as_http_then_the_connection_ends(head, path):
    """llhttp stops parsing at an upgrade: the request is answered without it (no tunnel, no
    websocket), with "Connection: close", and what the caller sends after it is dropped."""
    c = read(head + b"\x00binary frames of the other protocol")
    assert [r.path for r in c.queue] == [path]
    c.d.run_ready()
    (status, headers, _), = c.t.answers()
    assert status in (404, 503) and headers["connection"] == "close" and c.conn.closing


@pytest.mark.parametrize("te", [b"gzip, chunked", b"br, chunked"])
def test_a_content_coding_before_chunked_is_400(te):
    """llhttp accepts any coding list that ends in chunked; the server decodes none: 400, whichever
    side of "chunked" the coding sorts on."""
    c = read(HEAD + b"Transfer-Encoding: " + te + b"\r\n\r\n" + chunk(b"abc") + b"0\r\n\r\n")
    assert c.queue == [] and c.t.statuses() == [400]


@pytest.mark.parametrize("expect, length, continues", [
    (b"100-continue", b"1", True), (b"100-continue", b"0", False), (b"200-ok", b"1", False),
    (b"100-Continue", b"5", True)])
def test_100_continue_only_for_that_expectation_and_a_body_to_come(expect, length, continues):
    c = read(HEAD + b"Expect: " + expect + b"\r\nContent-Length: " + length + b"\r\n\r\n")
    assert (b"HTTP/1.1 100 Continue\r\n\r\n" in bytes(c.t.sent)) is continues
    c = read(b"GET /ping HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")  # no body at all
    assert b"100 Continue" not in bytes(c.t.sent) and len(c.queue) == 1


def test_reading_pauses_at_exactly_two_waiting_requests():
    one = b"GET /ping HTTP/1.1\r\n\r\n"
    c = read(one)
    assert len(c.queue) == 1 and c.t.reading
    c.pump(one)
    assert len(c.queue) == 2 and not c.t.reading


def test_the_head_after_a_pipelined_request_is_counted_from_zero():
    """A whole request, then a partial head of exactly MAX_HEADER_BYTES in the next read: no 431 yet;
    one byte more: 431."""
    partial = b"GET /ping HTTP/1.1\r\nX-Pad: "
    c = read(b"GET /ping HTTP/1.1\r\n\r\n")
    c.conn.queue.clear()  # answered (the dispatcher has no loop here)
    c.pump(partial + b"a" * (serve.MAX_HEADER_BYTES - len(partial)))
    assert c.t.statuses() == []
    c.pump(b"a")
    assert c.t.statuses() == [431]


def test_a_final_answer_lingers_for_linger_s_from_when_it_was_written(monkeypatch):
    clock = [5000.0]
    monkeypatch.setattr(serve_worker.time, "monotonic", lambda: clock[0])
    c = read(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
    c.d.run_ready()
    assert c.t.statuses() == [503] and c.conn.closing and c.t.eof_written
    assert c.conn.linger_until == 5000.0 + serve_worker.LINGER_S
    c.d.sweep(5000.0 + serve_worker.LINGER_S)
    assert not c.t.closed
    c.d.sweep(5000.0 + serve_worker.LINGER_S + 0.01)
    assert c.t.closed


@pytest.mark.parametrize("target, path", [(b"/invocations?a=1", "/invocations"),
                                          (b"/endpoints/x/invocations?a=1&b=?", "/endpoints/x/invocations"),
                                          (b"http://[bad/", "-")])
def test_the_path_is_the_target_without_its_query(target, path):
    c = read(b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert [r.path for r in c.queue] == [path]


def test_the_sweep_goes_on_past_a_connection_not_attached_yet():
    d = dispatcher(idle_timeout=3)
    d.opened(Connection(d))  # accepted, its transport not made yet (the sweep goes in arrival order)
    idle = Caller(d=d, now=1000.0)
    d.opened(Connection(d))
    d.sweep(1003.5)
    assert idle.t.closed and len(d.conns) == 2


def test_recycling_settings_default_to_never_and_refuse_negatives(capsys):
    default = serve.Config.from_args([], {})
    assert (default.max_requests, default.max_requests_jitter) == (0, 0)  # 0: never recycled
    env = {"SERVE_MAX_REQUESTS": "1000", "SERVE_MAX_REQUESTS_JITTER": "50"}
    assert (serve.Config.from_args([], env).max_requests, serve.Config.from_args([], env).max_requests_jitter) == (1000, 50)
    flags = serve.Config.from_args(["--max-requests", "0", "--max-requests-jitter", "0"], env)
    assert (flags.max_requests, flags.max_requests_jitter) == (0, 0)
    for args, words in ((["--max-requests", "-1"], "--max-requests must be >= 0, got -1"),
                        (["--max-requests-jitter", "-1"], "--max-requests-jitter must be >= 0, got -1")):
        with pytest.raises(SystemExit):
            serve.Config.from_args(args, {})
        assert words in capsys.readouterr().err
