"""One serving worker: gunicorn's worker class, an event loop over keep-alive connections, the routes.

What is not ours here: HTTP/1.1 parsing (httptools, the llhttp parser of Node.js and uvicorn: request
line, headers, Content-Length, chunked bodies, keep-alive), the event loop (uvloop), and the process
life around the worker (gunicorn: fork after the model is loaded, heartbeat, replacement, signals).
What is ours: the limits llhttp leaves to its caller, the SageMaker routes and their error contract,
scoring the requests that arrive together in one forward pass, and spreading keep-alive connections
over the workers.

The data path of one request: bytes -> ``Connection`` (parsed, limits) -> ``Dispatcher.submit`` ->
one batch per loop iteration (``Dispatcher.run_ready``: routes, ``inference.input_fn``, then
``predict_many`` for all plain requests together, explanations one by one) -> ``respond`` (one write,
one JSON log line).
"""
from __future__ import annotations

import asyncio
import errno
import mmap
import os
import signal
import socket
import struct
import time
import traceback
from collections import deque
from typing import Any, Callable

import httptools
from gunicorn.workers.base import Worker as GunicornWorker

from . import contract, jsonlog
from .jsonlog import log

MAX_HEADER_BYTES = 16384       # request line and headers; llhttp itself has no such bound
MAX_CHUNKED_OVERHEAD = 65536   # chunk-size lines and trailers allowed on top of the body limit
LINGER_S = 2.0                 # after a final answer, read (and drop) what the caller still sends
MAX_CONNECTIONS = 1000         # per worker; beyond it, new connections wait in the backlog
MAX_QUEUED = 2                 # parsed requests waiting on one connection before it is read no more
BATCH_TEXTS = 64               # reviews scored in one forward pass at most
STALL_S = 0.1                  # a worker scoring one batch for longer is passed over by the balancing
TICK_S = 0.1                   # balancing and heartbeat; the sweep of timeouts runs every tenth tick

JSON_TYPE = contract.JSON_TYPE.encode()
_REASONS = {status: phrase.encode() for status, phrase in contract.STATUS_PHRASES.items()}


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Request:
    __slots__ = ("method", "path", "headers", "body", "keep_alive", "started")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, keep_alive: bool,
                 started: float):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.keep_alive, self.started = keep_alive, started


# --------------------------------------------------------------------------- one connection

class Connection(asyncio.Protocol):
    """One keep-alive connection: llhttp parses, this class counts what llhttp does not bound (the
    head's size, the body's, chunk framing) and hands whole requests to the dispatcher in order."""

    def __init__(self, dispatcher: "Dispatcher"):
        self.d = dispatcher
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.last = time.monotonic()    # the last byte in, or the last answer out
        self.started = 0.0              # when the first byte of the request now arriving came
        self.queue: deque[Request] = deque()   # parsed, not answered yet; the first one is in a batch
        self.refusal: HttpError | None = None  # a protocol error, answered once the queue is
        self.closing = False            # the final answer is written: what still comes is dropped
        self.final = False              # no request after the queued ones (an upgrade was asked)
        self.linger_until = 0.0
        self.eof = False
        self.paused = False
        self.head_bytes = 0             # of a head not complete yet
        self.framing_bytes = 0          # read while in a chunked body: data and framing
        self._message()

    def _message(self) -> None:
        self.in_head = True
        self.method = self.path = "-"
        self.url = b""
        self.headers: dict[str, str] = {}
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.chunked = False

    # ---- asyncio
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.d.opened(self)

    def connection_lost(self, exc) -> None:
        self.d.forget(self)

    def eof_received(self) -> bool:
        self.eof = True
        # a complete request still gets its answer (then the connection closes); anything else ends now
        return bool(self.queue) and not self.closing

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.closing or self.refusal or self.final:
            return  # lingering after a final answer: dropped
        if self.in_head:
            self.head_bytes += len(data)
        elif self.chunked:
            self.framing_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp stops after a request that asks to upgrade (Upgrade: or CONNECT): it is answered
            # as plain HTTP/1.1, the upgrade ignored (RFC 9110 section 7.8), then the connection ends
            self.final = True
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, HttpError):
                self.refuse(cause)
            elif "overflow" in str(exc).lower() and "length" in str(exc).lower():
                self.refuse(self.d.too_large())
            else:
                self.refuse(HttpError(400, f"malformed HTTP request: {exc}"))
        else:
            if self.in_head and self.head_bytes > MAX_HEADER_BYTES:
                self.refuse(HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes"))
            elif (not self.in_head and self.chunked
                  and self.framing_bytes > self.d.max_body + MAX_CHUNKED_OVERHEAD):
                self.refuse(HttpError(413, f"the body is over the limit of {self.d.max_body} bytes"))
        if len(self.queue) >= MAX_QUEUED and not self.paused:  # pipelining without reading answers
            self.pause()

    def pause(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()

    # ---- httptools callbacks
    def on_message_begin(self) -> None:
        self.started = self.started or self.last

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4   # "name: value\r\n", as sent
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.method = self.parser.get_method().decode("latin-1")
        self.path = _path_of(self.url)
        version = self.parser.get_http_version()
        # "METHOD URL HTTP/1.1" and its headers, without the blank line's CRLFs; as sent
        head = len(self.method) + len(self.url) + 10 + self.head_size
        if head > MAX_HEADER_BYTES:
            raise HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes")
        if version not in ("1.0", "1.1"):
            raise HttpError(400, f"unsupported HTTP version {version!r}: send HTTP/1.1")
        te = self.headers.get("transfer-encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(400, f"unsupported Transfer-Encoding {te!r}: send a Content-Length "
                                     "or chunked body")
            # the framing that came in the head's own read counts too: what that read held after
            # the head and its blank line (a head that began in the middle of an earlier read is
            # not known whole: 0)
            self.chunked, self.framing_bytes = True, max(0, self.head_bytes - (head + 4))
        header = self.headers.get("content-length")
        length = None if header is None else int(header)  # llhttp has checked the digits
        if length is not None and length > self.d.max_body:
            raise HttpError(413, f"the body is {length} bytes; the limit is {self.d.max_body} "
                                 "bytes: send a shorter review or fewer instances")
        if (self.headers.get("expect", "").lower() == "100-continue"
                and (self.chunked or (length is not None and length > 0))):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.d.max_body:
            raise self.d.too_large()
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive() and not self.eof
        req = Request(self.method, self.path, self.headers, b"".join(self.body), keep,
                      self.started or time.monotonic())
        self.started, self.head_bytes = 0.0, 0
        self._message()
        self.d.submit(self, req)

    # ---- answers
    def refuse(self, exc: HttpError) -> None:
        """A protocol error: answered (after what was parsed before it), then the connection ends."""
        self.refusal = exc
        if not self.queue:
            self.d.refuse(self)

    def finish(self) -> None:
        """The final answer is written: half-close, then drop what the caller still sends, so that
        closing never resets the connection before the caller has read the answer."""
        self.closing = True
        self.queue.clear()
        if self.eof:
            self.transport.close()
            return
        self.linger_until = time.monotonic() + LINGER_S
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.resume()

    def unsent(self) -> bool:
        return self.transport.get_write_buffer_size() > 0

    def idle(self) -> bool:
        return not self.queue and not self.started and not self.closing and not self.unsent()


def _path_of(url: bytes) -> str:
    if url.startswith(b"/"):
        path = url.split(b"?", 1)[0]
    else:  # absolute form ("http://host/x?y"): the path alone
        try:
            path = httptools.parse_url(url).path or b"/"
        except httptools.HttpParserInvalidURLError:
            path = b"-"
    return path.decode("latin-1")


def _runtime_path(path: str) -> bool:
    """``/endpoints/<name>/invocations``: what boto3's sagemaker-runtime InvokeEndpoint calls."""
    if not path.startswith("/endpoints/") or not path.endswith("/invocations"):
        return False
    name = path[len("/endpoints/"):-len("/invocations")]
    return 0 < len(name) <= 63 and "/" not in name


def _unread_input(transport) -> bool:
    """Whether the caller's bytes wait in the kernel, not read yet (a request sent while the worker
    was busy): such a connection is not idle."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as peek:
            return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waiting
        return False


# --------------------------------------------------------------------------- routes and batches

class Dispatcher:
    """The worker's connections, its routes, and the batches: every connection whose next request
    arrived during one turn of the event loop is answered in the next, plain predictions in one
    forward pass."""

    def __init__(self, settings, model, load_error: str | None, loop=None):
        from . import inference
        self.inference = inference
        self.settings, self.model, self.load_error, self.loop = settings, model, load_error, loop
        self.max_body = inference.MAX_BODY_BYTES
        self.conns: dict[Connection, None] = {}  # in the order they came: the sweep's order
        self.ready: list[Connection] = []
        self.logbuf: list[bytes] = []
        self.scheduled = False
        self.draining = False
        self.pid = os.getpid()
        self.on_batch: Callable[[bool], None] = lambda busy: None   # heartbeat, the board's busy mark
        self.on_answer: Callable[[], None] = lambda: None           # requests counted (recycling)
        self.on_change: Callable[[], None] = lambda: None           # connections came or went

    def too_large(self) -> HttpError:
        return HttpError(413, f"the body is over the limit of {self.max_body} bytes: send a shorter "
                              "review or fewer instances")

    # ---- connections
    def opened(self, conn: Connection) -> None:
        self.conns[conn] = None

    def forget(self, conn: Connection) -> None:
        conn.closing = True
        conn.queue.clear()
        if self.conns.pop(conn, 0) is None:
            self.on_change()

    def submit(self, conn: Connection, req: Request) -> None:
        conn.queue.append(req)
        if len(conn.queue) == 1:
            self.ready.append(conn)
            if not self.scheduled and self.loop is not None:
                self.scheduled = True
                self.loop.call_soon(self.run_ready)

    def refuse(self, conn: Connection) -> None:
        exc = conn.refusal
        req = Request(conn.method, conn.path, {}, b"", False, conn.started or time.monotonic())
        self.respond(conn, req, exc.status, self.inference.error_body(exc.message), error=exc.message)
        self._flush_log()

    def close_idle(self) -> None:
        """Draining: connections with nothing arriving, queued or unsent are closed now."""
        for conn in list(self.conns):
            if conn.transport is not None and conn.idle() and not _unread_input(conn.transport):
                conn.transport.close()

    def sweep(self, now: float) -> None:
        s = self.settings
        for conn in list(self.conns):
            if conn.transport is None:
                continue
            if conn.closing:
                if now > conn.linger_until:
                    conn.transport.close()
            elif conn.unsent():
                if now - conn.last > s.read_timeout:  # the caller stopped reading
                    conn.transport.abort()
            elif conn.started and now - conn.started > s.read_timeout:
                conn.refusal = HttpError(
                    408, f"the request did not arrive completely within {s.read_timeout:g} s")
                if not conn.queue:
                    self.refuse(conn)
            elif not conn.queue and now - conn.last > s.idle_timeout:
                conn.transport.close()

    # ---- a turn of answers
    def run_ready(self) -> None:
        self.scheduled = False
        while self.ready:
            ready, self.ready = self.ready, []
            self._process([(c, c.queue[0]) for c in ready if c.queue and not c.closing])
        self._flush_log()

    def _done(self, conn: Connection) -> None:
        """The first queued request of ``conn`` is answered: the next one goes in the next round."""
        if conn.queue:
            conn.queue.popleft()
        if conn.queue:
            self.ready.append(conn)
        elif conn.refusal and not conn.closing:
            self.refuse(conn)
        elif conn.paused and not conn.closing:
            conn.resume()

    def respond(self, conn: Connection, req: Request, status: int, body: bytes,
                ctype: bytes = JSON_TYPE, error: str | None = None, head_only: bool = False) -> None:
        if conn.closing:
            return
        self.on_answer()  # first: the answer that ends a worker's quota says "Connection: close"
        # answers still to come on this connection (pipelined requests, a refusal) keep it open
        more = (len(conn.queue) > 1 and conn.queue[0] is req) or (
            conn.refusal is not None and bool(conn.queue) and conn.queue[0] is req)
        keep = req.keep_alive and (more or not (self.draining or conn.eof or conn.final))
        conn.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
            status, _REASONS.get(status, b"Error"), ctype, len(body),
            b"" if keep else b"Connection: close\r\n", b"" if head_only else body))
        conn.last = time.monotonic()
        record = {"ts": round(time.time(), 3), "level": "info" if status < 500 else "error",
                  "event": "request", "pid": self.pid, "method": req.method, "path": req.path[:200],
                  "status": status, "ms": round((conn.last - req.started) * 1000, 2),
                  "bytes": len(body), "in": len(req.body)}
        if error:
            record["error"] = error[:300]
        self.logbuf.append(jsonlog.line(record))
        if not keep:
            conn.finish()
        else:
            self._done(conn)

    def _flush_log(self) -> None:
        if self.logbuf:
            data = b"".join(self.logbuf)
            self.logbuf.clear()
            jsonlog.write(data)

    def _process(self, ready: list[tuple[Connection, Request]]) -> None:
        inference = self.inference
        plain: list[tuple[Connection, Request, Any]] = []
        explain: list[tuple[Connection, Request, Any]] = []
        for conn, req in ready:
            path, method = req.path, req.method
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    self.respond(conn, req, 405, inference.error_body("use GET /ping"),
                                 error="method not allowed")
                elif self.model is not None:
                    self.respond(conn, req, 200, b'{"status":"healthy"}', head_only=method == "HEAD")
                else:
                    msg = f"the model is not loaded: {self.load_error}"
                    self.respond(conn, req, 503, inference.error_body(msg), error=msg,
                                 head_only=method == "HEAD")
            elif path == "/invocations" or _runtime_path(path):
                if method != "POST":
                    self.respond(conn, req, 405, inference.error_body(f"use POST {path}"),
                                 error="method not allowed")
                elif self.model is None:
                    msg = f"the model is not loaded: {self.load_error}"
                    self.respond(conn, req, 503, inference.error_body(msg), error=msg)
                else:
                    try:
                        parsed = inference.input_fn(req.body, req.headers.get("content-type"))
                    except inference.RequestError as exc:
                        self.respond(conn, req, exc.status, inference.error_body(exc.message),
                                     error=exc.message)
                    except Exception as exc:  # noqa: BLE001 - never a 500 without a log line
                        self._internal_error(conn, req, exc)
                    else:
                        (explain if parsed.explain else plain).append((conn, req, parsed))
            else:
                msg = f"no route {method} {path[:100]}: use POST /invocations or GET /ping"
                self.respond(conn, req, 404, inference.error_body(msg), error="not found")
        batch: list[tuple[Connection, Request, Any]] = []
        texts = 0
        for item in plain:
            if batch and texts + len(item[2].texts) > BATCH_TEXTS:
                self._predict(batch)
                batch, texts = [], 0
            batch.append(item)
            texts += len(item[2].texts)
        if batch:
            self._predict(batch)
        for item in explain:  # slow ones last, one at a time
            self._predict([item])

    def _predict(self, items: list[tuple[Connection, Request, Any]]) -> None:
        inference = self.inference
        self.on_batch(True)
        try:
            try:
                answers = inference.predict_many([p for _, _, p in items], self.model)
            except Exception:  # noqa: BLE001 - find the one request that fails, answer the rest
                if len(items) == 1:
                    raise
                for item in items:
                    self._predict([item])
                return
            for (conn, req, _), answer in zip(items, answers):
                body, ctype = inference.output_fn(answer, req.headers.get("accept"))
                self.respond(conn, req, 200, body, ctype=ctype.encode())
        except Exception as exc:  # noqa: BLE001
            conn, req, _ = items[0]
            self._internal_error(conn, req, exc)
        finally:
            self.on_batch(False)

    def _internal_error(self, conn: Connection, req: Request, exc: Exception) -> None:
        log("error", "request_failed", path=req.path[:200], error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8))
        msg = "the server failed to score this review; the failure is in the server log"
        self.respond(conn, req, 500, self.inference.error_body(msg), error=f"{type(exc).__name__}")


# --------------------------------------------------------------------------- the worker process

# The board: shared memory the master makes before it forks, 32 bytes per worker slot:
#   busy  float64, when the batch it is scoring began (0.0: none)
#   conns int64, the connections it holds, or -1 where no worker would take one (no worker in the
#         slot, draining, at MAX_CONNECTIONS, accept failing)
#   on    int64, 1 while it waits on the listening socket; LEAVING once it drains (the master then
#         knows that its exit was planned: recycling, SIGTERM)
#   pid   int64, the worker's, for SIGUSR1: "look at the board again"
ROW = 32
LEAVING = 2


def new_board(workers: int) -> mmap.mmap:
    board = mmap.mmap(-1, ROW * workers)
    for slot in range(workers):
        clear_slot(board, slot)
    return board


def clear_slot(board: mmap.mmap, slot: int) -> None:
    struct.pack_into("dqqq", board, ROW * slot, 0.0, -1, 0, 0)


def left_on_purpose(board: mmap.mmap, slot: int) -> bool:
    return struct.unpack_from("q", board, ROW * slot + 16)[0] == LEAVING


class ModelWorker(GunicornWorker):
    """gunicorn's worker contract (``init_process`` -> ``run``; ``notify`` as the heartbeat) around
    one event loop. gunicorn's master hands it ``served`` (model, settings, board) through
    ``app.wsgi()``, loaded once before the fork; ``slot`` is set by the master (``serve.Supervisor``).

    Balancing keep-alive connections: all workers wait on one listening socket and the kernel wakes
    whichever it likes; left alone, one worker takes a whole burst and keep-alive connections never
    move (one busy CPU: benchmarks/results/serve-balance.txt). So a worker takes one connection per
    wake-up and waits on the socket only while it holds no more connections than the least loaded
    other worker (the board). One that steps back wakes that worker (SIGUSR1) to take what waits in
    the backlog; one that sees a worker left out (not waiting, yet as little loaded as any) wakes it
    too. Workers stuck on one batch for over STALL_S are passed over."""

    slot = 0

    def init_signals(self) -> None:
        # the event loop takes them in run(); gunicorn's handlers would act mid-batch
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def load_wsgi(self) -> None:
        self.served = self.app.wsgi()

    def run(self) -> None:
        served = self.served
        self.settings, self.board = served.settings, served.board
        if served.model is not None:
            import torch
            torch.set_num_threads(self.settings.threads)
            _warm_stemmer(served.model)
        import uvloop
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.listener = self.sockets[0].sock
        self.listener.setblocking(False)
        self.d = Dispatcher(self.settings, served.model, served.load_error, self.loop)
        self.d.on_batch, self.d.on_answer, self.d.on_change = self._busy, self._answered, self._changed
        self.accepting = self.draining = False
        self.accept_blocked_until = 0.0
        self.ticks = 0
        self.tick_s = max(0.005, min(TICK_S, self.settings.timeout / 4))
        # A plain handler, not the loop's: it runs even in the middle of a batch, so answers still
        # to go out say "Connection: close" and the drain starts as soon as the batch is done
        signal.signal(signal.SIGTERM, self.on_sigterm)
        for sig in (signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self.loop.stop)
        self.loop.add_signal_handler(signal.SIGUSR1, self._balance)
        struct.pack_into("q", self.board, ROW * self.slot + 24, os.getpid())
        self._tick()
        try:
            self.loop.run_forever()
        finally:
            self.d._flush_log()
            self.loop.close()

    # ---- heartbeat, timeouts, recycling
    def _tick(self) -> None:
        self.notify()
        self.ticks += 1
        if not self.draining:
            self._balance()
            if os.getppid() != self.ppid:  # the master is gone: finish up and go
                self.drain()
        if self.draining:
            # connections taken from the backlog at the drain's start are attached a moment later:
            # idle ones go as soon as they are seen
            self._drain_idle()
        if self.ticks % 10 == 0 or self.draining:
            self.d.sweep(time.monotonic())
            self.d._flush_log()
        self.loop.call_later(self.tick_s, self._tick)

    def _busy(self, on: bool) -> None:
        if on:
            self.notify()  # the master's timeout then counts from the start of this batch
        struct.pack_into("d", self.board, ROW * self.slot, time.monotonic() if on else 0.0)

    def _answered(self) -> None:
        self.nr += 1
        if self.nr == self.max_requests and not self.draining:
            log("info", "worker_recycling", requests=self.nr)
            self.drain()  # now: a caller that reconnects after this answer reaches the next worker

    def _changed(self) -> None:
        if self.draining:
            if not self.d.conns:
                self.loop.stop()
        else:
            self._balance()

    # ---- connections
    def _able(self) -> bool:
        return (not self.draining and len(self.d.conns) < MAX_CONNECTIONS
                and time.monotonic() >= self.accept_blocked_until)

    def _balance(self) -> None:
        if self.draining:
            return
        able = self._able()
        others = []  # (connections, pid, waiting) of the other workers that take connections now
        now = time.monotonic()
        for slot in range(self.settings.workers):
            busy, count, on, pid = struct.unpack_from("dqqq", self.board, ROW * slot)
            if slot != self.slot and count >= 0 and not (busy and now - busy > STALL_S):
                others.append((count, pid, on))
        least = min(others) if others else None
        want = able and (least is None or len(self.d.conns) <= least[0])
        kicked = 0
        if want != self.accepting:
            self.accepting = want
            if want:
                self.loop.add_reader(self.listener.fileno(), self._on_listener)
            else:
                self.loop.remove_reader(self.listener.fileno())
                if least is not None:
                    kicked = _kick(least[1])  # it takes what waits in the backlog
        struct.pack_into("qq", self.board, ROW * self.slot + 8, len(self.d.conns) if able else -1,
                         int(self.accepting))
        if others:
            lowest = min(least[0], len(self.d.conns)) if able else least[0]
            for count, pid, on in others:
                if not on and count <= lowest and pid != kicked:
                    _kick(pid)  # as little loaded as any, yet not waiting: a stale decision

    def _on_listener(self) -> None:
        if self._take_one():  # one connection per wake-up, then the board decides
            self._balance()

    def _take_one(self) -> bool:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log("error", "accept_failed", reason=str(exc))
                self.accept_blocked_until = time.monotonic() + 1.0  # the tick turns it back on
                self._balance()
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self.d)
        self.d.opened(conn)  # counted now, for the balancing; its transport comes in a moment
        self.loop.create_task(self._attach(conn, sock))
        return True

    async def _attach(self, conn: Connection, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: conn, sock)
        except OSError:
            sock.close()
            self.d.forget(conn)

    def on_sigterm(self, signum, frame) -> None:
        self.d.draining = True
        self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        """SIGTERM (or recycling, or an orphaned worker): stop accepting, answer what has arrived,
        close idle connections, exit once none is left (gunicorn kills the worker after the grace)."""
        if self.draining:
            return
        self.draining = self.d.draining = True
        # Connections whose handshake finished before the signal may still wait in the backlog (the
        # balancing leaves them there): take them now, or closing the last copy of the listening
        # socket resets them together with requests already sent on them.
        while len(self.d.conns) < MAX_CONNECTIONS and self._take_one():
            pass
        if self.accepting:
            self.loop.remove_reader(self.listener.fileno())
            self.accepting = False
        struct.pack_into("qq", self.board, ROW * self.slot + 8, -1, LEAVING)
        for listener in self.sockets:
            listener.close()
        self.loop.call_soon(self._drain_idle)

    def _drain_idle(self) -> None:
        self.d.close_idle()
        if not self.d.conns:
            self.loop.stop()


def _kick(pid: int) -> int:
    if pid > 0:
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:  # gone; the master clears its slot
            pass
    return pid


def _warm_stemmer(model) -> None:
    """Import the stemmer (NLTK, ~1 s here) on a helper thread, so the worker answers /ping at once.

    The first review that needs it waits for the import to finish (Python's import lock)."""
    import threading

    def warm():
        try:
            model.preprocessor.token("warming")
        except Exception:  # noqa: BLE001 - the first request will report the same problem
            pass
    threading.Thread(target=warm, name="warm-stemmer", daemon=True).start()
