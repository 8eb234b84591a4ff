"""`serve`: SageMaker's hosting contract on a small pre-fork HTTP/1.1 server made for this model.

    serve [--model-dir DIR] [--host HOST] [--port PORT] [--workers N] [--timeout SECONDS]

Routes: ``GET /ping`` (200 once the model is loaded; 503 with the reason when it cannot be),
``POST /invocations`` and ``POST /endpoints/<name>/invocations`` (the SageMaker-runtime path, which
local mode reaches through boto3), answered by ``model.inference``'s handlers; errors are
``{"error": "..."}`` with the contract's status (docs/architecture.md).

Settings, as SageMaker's own toolkits read them (flags win):
  SAGEMAKER_BIND_TO_PORT          port (8080)
  SAGEMAKER_MODEL_SERVER_WORKERS  worker processes (one per CPU)
  SAGEMAKER_MODEL_SERVER_TIMEOUT  seconds one request may take before its worker is replaced (60)
  SM_MODEL_DIR                    the model (else $SAGEMAKER_BASE_DIR/model, else /opt/ml/model)
  OMP_NUM_THREADS                 torch threads per worker (CPUs / workers)
  SERVE_HOST                      address to listen on (0.0.0.0; tests and local runs: 127.0.0.1)
  SERVE_IDLE_TIMEOUT              seconds a keep-alive connection may wait with nothing in flight (75)
  SERVE_READ_TIMEOUT              seconds a request may take to arrive, once started (30): then 408
  SERVE_GRACE                     seconds after SIGTERM for the workers to finish (30): then SIGKILL

Design. The master binds the port, imports torch and loads the model once, then forks the workers,
which share the weights copy-on-write (no second import, no second load: a replaced worker is up in
milliseconds). Each worker is a single thread running an epoll loop over its keep-alive connections
(TCP_NODELAY, HTTP/1.1); the requests that arrive together are scored in one forward pass, so batching
across callers comes with the event loop and costs a lone caller nothing. Torch runs with
CPUs / workers threads per worker, so workers never fight over cores. New connections are spread:
a worker waits on the shared listening socket only while it holds no more connections than the least
loaded other worker (counts on a shared board; Worker._balance), since keep-alive connections never
move once taken. The master replaces a worker
that dies, kills one stuck on a request for longer than the timeout (its callers' connections close),
and on SIGTERM or SIGINT stops accepting, lets every worker answer what it has already received, and
exits. Every request gets one JSON log line on stdout: method, path, status, ms, bytes.
"""
from __future__ import annotations

import argparse
import errno
import gc
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any

from . import contract

MAX_HEADER_BYTES = 16384
MAX_CHUNKED_OVERHEAD = 65536   # chunk-size lines and trailers allowed on top of the body limit
IDLE_TIMEOUT_S = 75.0          # default: a keep-alive connection with nothing in flight
READ_TIMEOUT_S = 30.0          # default: a request must arrive completely within this, once started
LINGER_S = 2.0                 # after a final answer, read (and drop) what the caller still sends
MAX_CONNECTIONS = 1000         # per worker; beyond it, new connections wait in the backlog
BATCH_TEXTS = 64               # reviews scored in one forward pass at most
GRACE_S = 30.0                 # default: after SIGTERM, how long workers may finish what they have
STABLE_S = 5.0                 # a worker that lived this long did not crash-loop: its back-off resets
STALL_S = 0.1                  # a worker scoring one batch for longer is passed over by the balancing
RECHECK_S = 0.1                # how often a worker that leaves new connections to others looks again

JSON_TYPE = contract.JSON_TYPE.encode()
_REASONS = contract.STATUS_PHRASES
_READ, _WRITE = 0x001, 0x004          # EPOLLIN, EPOLLOUT
_HUP = 0x008 | 0x010                  # EPOLLERR | EPOLLHUP


# --------------------------------------------------------------------------- configuration

class Config:
    def __init__(self, model_dir: str, host: str, port: int, workers: int, timeout: float,
                 threads: int, idle_timeout: float = IDLE_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S, grace: float = GRACE_S):
        self.model_dir, self.host, self.port = model_dir, host, port
        self.workers, self.timeout, self.threads = workers, timeout, threads
        self.idle_timeout, self.read_timeout, self.grace = idle_timeout, read_timeout, grace

    @classmethod
    def from_args(cls, argv: list[str] | None = None, env: dict[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        p = argparse.ArgumentParser(prog="serve", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--model-dir", help="the model directory written by `train`")
        p.add_argument("--host", help="address to listen on (default $SERVE_HOST or 0.0.0.0)")
        p.add_argument("--port", type=int, help="port (default $SAGEMAKER_BIND_TO_PORT or 8080)")
        p.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
        p.add_argument("--timeout", type=float, help="seconds a request may take (default 60)")
        p.add_argument("--idle-timeout", type=float, help="seconds an idle keep-alive connection is kept "
                                                          f"(default $SERVE_IDLE_TIMEOUT or {IDLE_TIMEOUT_S:g})")
        p.add_argument("--read-timeout", type=float, help="seconds a request may take to arrive "
                                                          f"(default $SERVE_READ_TIMEOUT or {READ_TIMEOUT_S:g})")
        p.add_argument("--grace", type=float, help="seconds after SIGTERM before workers are killed "
                                                   f"(default $SERVE_GRACE or {GRACE_S:g})")
        args = p.parse_args(argv)

        def number(flag, name: str, default, kind=int, minimum=1, option=None):
            if flag is not None:
                value, source = flag, option or f"--{name.lower()}"
            elif env.get(name, "").strip():
                source = name
                try:
                    value = kind(env[name].strip())
                except ValueError:
                    p.error(f"{name}={env[name]!r} is not a valid {kind.__name__}")
            else:
                return default
            if value < minimum:
                p.error(f"{source} must be >= {minimum}, got {value}")
            return value

        cpus = _cpu_count()
        port = number(args.port, "SAGEMAKER_BIND_TO_PORT", 8080, minimum=0, option="--port")
        if port > 65535:
            p.error(f"port {port} is out of range")
        workers = number(args.workers, "SAGEMAKER_MODEL_SERVER_WORKERS", cpus, option="--workers")
        timeout = number(args.timeout, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0, kind=float, minimum=0.001,
                         option="--timeout")
        threads = number(None, "OMP_NUM_THREADS", max(1, cpus // workers))
        idle = number(args.idle_timeout, "SERVE_IDLE_TIMEOUT", IDLE_TIMEOUT_S, kind=float,
                      minimum=0.001, option="--idle-timeout")
        read = number(args.read_timeout, "SERVE_READ_TIMEOUT", READ_TIMEOUT_S, kind=float,
                      minimum=0.001, option="--read-timeout")
        grace = number(args.grace, "SERVE_GRACE", GRACE_S, kind=float, minimum=0, option="--grace")
        model_dir = (args.model_dir or env.get("SM_MODEL_DIR")
                     or os.path.join(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "model"))
        host = args.host or env.get("SERVE_HOST", "").strip() or "0.0.0.0"
        return cls(model_dir, host, port, workers, timeout, threads, idle, read, grace)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- logging

def _log_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:  # stdout gone: nothing else to do with the line
            return
        data = data[n:]


def log(level: str, event: str, **fields: Any) -> None:
    _write_all(1, _log_line({"ts": round(time.time(), 3), "level": level, "event": event,
                             "pid": os.getpid(), **fields}))


# --------------------------------------------------------------------------- the board

# Shared memory (anonymous mmap, made by the master before it forks), per worker slot:
#   busy:  float64 at 8*slot, when the batch it is scoring began (0.0: none); the master's timeout
#   conns: int64 at 8*workers + 16*slot, the connections it holds, or -1 where no worker would take
#          one (no worker in the slot yet or any more, draining, at MAX_CONNECTIONS, accept failing)
#   on:    int64 right after conns, 1 while it waits on the listening socket
def _board_size(workers: int) -> int:
    return 24 * workers


def _conns_at(workers: int, slot: int) -> int:
    return 8 * workers + 16 * slot


# --------------------------------------------------------------------------- polling

class _Poller:
    """epoll (the shared listening socket with EPOLLEXCLUSIVE: one idle worker wakes per new
    connection), or the selectors module where there is no epoll."""

    def __init__(self):
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        if self._epoll is None:
            import selectors
            self._sel = selectors.DefaultSelector()

    def add(self, fd: int, events: int, exclusive: bool = False) -> None:
        if self._epoll is not None:
            flag = getattr(select, "EPOLLEXCLUSIVE", 0) if exclusive else 0
            self._epoll.register(fd, events | flag)
        else:
            self._sel.register(fd, self._to_sel(events))

    def modify(self, fd: int, events: int) -> None:
        if self._epoll is not None:
            self._epoll.modify(fd, events)
        else:
            self._sel.modify(fd, self._to_sel(events))

    def remove(self, fd: int) -> None:
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                self._sel.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._epoll.poll(timeout)
        import selectors
        out = []
        for key, ev in self._sel.select(timeout):
            out.append((key.fd, (_READ if ev & selectors.EVENT_READ else 0)
                        | (_WRITE if ev & selectors.EVENT_WRITE else 0)))
        return out

    @staticmethod
    def _to_sel(events: int) -> int:
        import selectors
        return ((selectors.EVENT_READ if events & _READ else 0)
                | (selectors.EVENT_WRITE if events & _WRITE else 0))


# --------------------------------------------------------------------------- HTTP

class HttpError(Exception):
    def __init__(self, status: int, message: str, method: str = "-", path: str = "-"):
        super().__init__(message)
        self.status, self.message, self.method, self.path = status, message, method, path


class Request:
    __slots__ = ("method", "path", "headers", "body", "keep_alive", "started")

    def __init__(self, method, path, headers, body, keep_alive, started):
        self.method, self.path, self.headers = method, path, headers
        self.body, self.keep_alive, self.started = body, keep_alive, started


class Conn:
    __slots__ = ("sock", "fd", "rbuf", "wbuf", "head", "last", "started", "close_after", "eof",
                 "lingering", "linger_until", "sent_continue", "writing", "inflight")

    def __init__(self, sock: socket.socket, now: float):
        self.sock, self.fd = sock, sock.fileno()
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.head = None            # parsed request head while its body is arriving
        self.last = now             # last activity
        self.started = 0.0          # when the request now arriving began (0: none)
        self.close_after = False    # close once wbuf is sent
        self.eof = False
        self.lingering = False
        self.linger_until = 0.0
        self.sent_continue = False
        self.writing = False        # registered for EPOLLOUT
        self.inflight = False       # a request was taken and is not answered yet


def _parse_head(buf: bytearray, end: int):
    """(method, path, version, headers) from the bytes before the blank line."""
    try:
        text = bytes(buf[:end]).decode("latin-1")
    except Exception:  # noqa: BLE001 - latin-1 decodes any bytes; belt and braces
        raise HttpError(400, "unreadable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line: expected 'METHOD /path HTTP/1.1'")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        key = name.lower()
        value = value.strip()
        if key in headers:
            if key == "content-length" and headers[key] != value:
                raise HttpError(400, "conflicting Content-Length headers")
            if key not in ("content-length", "content-type"):
                headers[key] = headers[key] + ", " + value
            continue
        headers[key] = value
    if target.startswith(("http://", "https://")):  # absolute-form: keep the path
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    path = target.split("?", 1)[0]
    return method, path, version, headers


def _dechunk(buf: bytearray, start: int, limit: int):
    """(body, end) once a complete chunked body starting at ``start`` is in ``buf``, else None."""
    pos = start
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise HttpError(400, "malformed chunked body")
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(400, "malformed chunk size in chunked body") from None
        if size < 0:
            raise HttpError(400, "malformed chunk size in chunked body")
        pos = eol + 2
        if size == 0:
            while True:  # trailers, up to the blank line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(body), eol + 2
                pos = eol + 2
        if len(body) + size > limit:
            raise HttpError(413, f"the body is over the limit of {limit} bytes: send a shorter "
                                 "review or fewer instances")
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise HttpError(400, "malformed chunked body")
        pos += size + 2


# --------------------------------------------------------------------------- worker

class Worker:
    def __init__(self, cfg: Config, listener: socket.socket, model, load_error: str | None,
                 slot: int, board: mmap.mmap, master_pid: int,
                 kicks: list[tuple[int, int]] | None = None):
        self.cfg, self.listener, self.model, self.load_error = cfg, listener, model, load_error
        self.slot, self.board, self.master_pid = slot, board, master_pid
        self.kicks = kicks or []    # per slot: (read, write) ends of a pipe that wakes its worker
        self.kick_r = self.kicks[slot][0] if self.kicks else -1
        self.accept_blocked_until = 0.0
        self.look_at = 0.0          # stepped back from accepting: when to look at the board again
        self.conns: dict[int, Conn] = {}
        self.recheck: set[Conn] = set()
        self.lfd = -1
        self.logbuf: list[bytes] = []
        self.draining = False
        self.drain_deadline = 0.0
        self.accepting = False
        self.pid = os.getpid()
        from . import inference
        self.inference = inference
        self.max_body = inference.MAX_BODY_BYTES

    # ---- setup and main loop

    def run(self) -> int:
        self._signals()
        if self.model is not None:
            import torch
            torch.set_num_threads(self.cfg.threads)
            self._warm_stemmer()
        self.poller = _Poller()
        self.poller.add(self.wake_r, _READ)
        if self.kick_r >= 0:
            self._drain_fd(self.kick_r)  # kicks meant for the worker this one replaces
            self.poller.add(self.kick_r, _READ)
        self._balance(time.monotonic())
        last_sweep = time.monotonic()
        while True:
            if self.draining:
                self._start_drain()
                if not self.conns or time.monotonic() > self.drain_deadline:
                    break
            else:
                self._balance(time.monotonic())
            # a worker that leaves new connections to the others looks again soon: one of them may
            # be stuck in a long batch, or gone
            timeout = 1.0 if self.accepting or self.draining else min(
                RECHECK_S, max(0.001, self.look_at - time.monotonic()))
            try:
                events = self.poller.poll(timeout)
            except InterruptedError:
                events = []
            ready: list[tuple[Conn, Request]] = []
            if self.recheck:  # answers went out; requests that waited behind them can go now
                for conn in self.recheck:
                    if self.conns.get(conn.fd) is conn and conn.rbuf:
                        req = self._next_request(conn)
                        if req is not None:
                            ready.append((conn, req))
                self.recheck.clear()
            for fd, ev in events:
                if fd == self.lfd:
                    if self.accepting:  # one connection per wake-up (then _balance decides)
                        self._accept()
                    continue
                if fd == self.wake_r:
                    self._wake()
                    continue
                if fd == self.kick_r:
                    self._drain_fd(self.kick_r)
                    if not self.draining:
                        self._balance(time.monotonic(), kicked=True)
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if ev & _WRITE:
                    self._flush(conn)
                    if conn.fd not in self.conns:
                        continue
                if ev & (_READ | _HUP):
                    req = self._read(conn)
                    if req is not None:
                        ready.append((conn, req))
            if not self.draining:  # before scoring: a connection taken now may tip the balance
                self._balance(time.monotonic())
            while ready:
                self._process(ready)
                pipelined = []
                for conn, _ in ready:  # requests a caller sent without waiting for the answer
                    if self.conns.get(conn.fd) is conn and conn.rbuf and self._may_parse(conn):
                        req = self._next_request(conn)
                        if req is not None:
                            pipelined.append((conn, req))
                ready = pipelined
            self._flush_log()
            now = time.monotonic()
            if now - last_sweep >= 1.0:
                last_sweep = now
                self._sweep(now)
        self._flush_log()
        return 0

    def _signals(self) -> None:
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _on_stop(self, signum, frame) -> None:
        self.draining = True

    def _wake(self) -> None:
        self._drain_fd(self.wake_r)
        if self.draining:
            self._start_drain()

    @staticmethod
    def _drain_fd(fd: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _start_drain(self) -> None:
        if self.drain_deadline:
            return
        self.drain_deadline = time.monotonic() + self.cfg.grace
        # Connections whose handshake finished before the signal may still wait in the shared backlog
        # (the balancing leaves them there for up to RECHECK_S): take them now, or closing the last
        # copy of the listening socket resets them together with requests already sent on them.
        while len(self.conns) < MAX_CONNECTIONS and self._accept():
            pass
        self._accept_off()
        self._publish()  # no more connections here: the others stop leaving new ones to this worker
        try:
            self.listener.close()
        except OSError:
            pass
        self.lfd = -1
        for conn in list(self.conns.values()):  # requests already arriving are still answered
            if (not conn.rbuf and not conn.wbuf and conn.head is None and not conn.inflight
                    and not _unread_input(conn.sock)):
                self._close(conn)

    def _warm_stemmer(self) -> None:
        """Import the stemmer (NLTK, ~0.4 s) on a helper thread, so the worker answers /ping at once.

        The first review that needs it waits for the import to finish (Python's import lock)."""
        import threading

        def warm():
            try:
                self.model.preprocessor.token("warming")
            except Exception:  # noqa: BLE001 - the first request will report the same problem
                pass
        threading.Thread(target=warm, name="warm-stemmer", daemon=True).start()

    # ---- connections

    # Balancing. All workers wait on the one listening socket and the kernel wakes the first idle
    # one in its queue for each new connection: left alone, the worker that registered first takes
    # every connection that arrives while it waits, and keep-alive connections never move (one busy
    # CPU, benchmarks/results/serve-balance.txt). So a worker takes one connection per wake-up, and
    # waits on the listening socket only while it holds no more connections than the least loaded
    # other worker (the board). One that steps back wakes that worker through its kick pipe, to take
    # what waits in the backlog; one that sees a worker left out (not waiting, yet as little loaded
    # as any) wakes it too. Workers gone, draining, full, or stuck on one batch for over STALL_S
    # are left out of the count; one that has stepped back looks again every RECHECK_S, or sooner
    # when the worker it leaves new connections to is about to count as stuck.

    def _able(self) -> bool:
        return (not self.draining and len(self.conns) < MAX_CONNECTIONS
                and time.monotonic() >= self.accept_blocked_until)

    def _publish(self) -> None:
        struct.pack_into("qq", self.board, _conns_at(self.cfg.workers, self.slot),
                         len(self.conns) if self._able() else -1, 1 if self.accepting else 0)

    def _others(self, now: float) -> list[tuple[int, int, int]]:
        """(connections, slot, waiting) of every other worker that takes connections now."""
        out = []
        workers = self.cfg.workers
        for slot in range(workers):
            if slot == self.slot:
                continue
            count, on = struct.unpack_from("qq", self.board, _conns_at(workers, slot))
            if count < 0:
                continue
            began = struct.unpack_from("d", self.board, slot * 8)[0]
            if began:
                if now - began > STALL_S:
                    continue
                self.look_at = min(self.look_at, began + STALL_S + 0.001)  # when it counts as stuck
            out.append((count, slot, on))
        return out

    def _balance(self, now: float, kicked: bool = False) -> None:
        """Wait on the listening socket or not, as the board says; when kicked, also take what waits
        in the backlog now (the kernel may have woken another worker for it)."""
        if self.draining:
            return
        self.look_at = now + RECHECK_S  # _others brings it forward for a worker about to count as stuck
        others = self._others(now) if self.cfg.workers > 1 else []
        least = min(others) if others else None
        while True:
            want = self._able() and (least is None or len(self.conns) <= least[0])
            if not want or not kicked:
                break
            self._accept_on()
            if not self._accept():
                want = self._able()  # an accept that failed (EMFILE...) pauses accepting
                break
        kicked_now = -1
        if want:
            self._accept_on()
        elif self.accepting:
            self._accept_off()
            if least is not None:
                kicked_now = least[1]
                self._kick(kicked_now)  # it takes what waits in the backlog
        self._publish()
        if others:
            lowest = min(least[0], len(self.conns)) if self._able() else least[0]
            for count, slot, on in others:
                if not on and count <= lowest and slot != kicked_now:
                    self._kick(slot)  # as little loaded as any, yet not waiting: a stale decision

    def _kick(self, slot: int) -> None:
        if self.kicks:
            try:
                os.write(self.kicks[slot][1], b"k")
            except OSError:  # full (a kick waits already) or gone
                pass

    def _accept_on(self) -> None:
        if not self.accepting and not self.draining:
            self.lfd = self.listener.fileno()
            self.poller.add(self.lfd, _READ, exclusive=True)
            self.accepting = True

    def _accept_off(self) -> None:
        if self.accepting:
            self.poller.remove(self.lfd)
            self.accepting = False

    def _accept(self) -> bool:
        """Take one waiting connection; whether there was one."""
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log("error", "accept_failed", reason=str(exc))
                self.accept_blocked_until = time.monotonic() + 1.0
                self._accept_off()  # the balancing turns it back on a second later
                self._publish()
            return False
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = Conn(sock, time.monotonic())
        self.conns[conn.fd] = conn
        self.poller.add(conn.fd, _READ)
        if len(self.conns) >= MAX_CONNECTIONS:
            self._accept_off()
        self._publish()
        return True

    def _close(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is not None:
            self._publish()
        self.poller.remove(conn.fd)
        try:
            conn.sock.close()
        except OSError:
            pass

    def _read(self, conn: Conn) -> Request | None:
        limit = MAX_HEADER_BYTES + self.max_body + MAX_CHUNKED_OVERHEAD
        while True:
            try:
                data = conn.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(conn)
                return None
            if not data:
                conn.eof = True
                break
            conn.last = time.monotonic()
            if conn.lingering:
                continue  # dropping what a caller sends after its final answer
            if not conn.rbuf and not conn.started:
                conn.started = conn.last
            conn.rbuf += data
            if len(conn.rbuf) > limit:
                break
        if conn.lingering:
            if conn.eof:
                self._close(conn)
            return None
        req = None
        if self._may_parse(conn):
            req = self._next_request(conn)
        if conn.eof and req is None and conn.fd in self.conns and not conn.wbuf:
            self._close(conn)  # the caller hung up with no complete request
        return req

    @staticmethod
    def _may_parse(conn: Conn) -> bool:
        # answers go out in order, so a request may be parsed while earlier answers are still being
        # sent, up to a bound (a caller that sends without reading must not grow memory)
        return not conn.close_after and not conn.lingering and len(conn.wbuf) < 262144

    def _next_request(self, conn: Conn) -> Request | None:
        """The next complete request in ``conn.rbuf``, or None; protocol errors are answered here."""
        try:
            return self._parse(conn)
        except HttpError as exc:
            if conn.head is not None:
                exc.method, exc.path = conn.head[0], conn.head[1]
            conn.head = None
            req = Request(exc.method, exc.path, {}, b"", False, conn.started or time.monotonic())
            self._respond(conn, req, exc.status, self.inference.error_body(exc.message),
                          error=exc.message)
            conn.close_after = True
            conn.rbuf.clear()
            self._flush(conn)
            return None

    def _parse(self, conn: Conn) -> Request | None:
        buf = conn.rbuf
        if conn.head is None:
            while buf[:2] == b"\r\n":  # stray line breaks between requests
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes")
                if not buf:
                    conn.started = 0.0
                return None
            if end > MAX_HEADER_BYTES:
                raise HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes")
            method, path, version, headers = _parse_head(buf, end)
            connection = headers.get("connection", "").lower()
            if version == "HTTP/1.0":
                keep = "keep-alive" in connection
            else:
                keep = "close" not in connection
            te = headers.get("transfer-encoding", "").lower()
            if te:
                if te != "chunked":
                    raise HttpError(400, f"unsupported Transfer-Encoding {te!r}: send a "
                                         "Content-Length or chunked body", method, path)
                length = -1
            else:
                cl = headers.get("content-length", "0")
                # ASCII digits only: str.isdigit() also accepts '²', which int() refuses
                if not (cl.isascii() and cl.isdigit()):
                    raise HttpError(400, "invalid Content-Length", method, path)
                cl = cl.lstrip("0") or "0"
                if len(cl) > 18:  # int() refuses more than 4300 digits; any such length is too large
                    raise HttpError(413, f"the body is over the limit of {self.max_body} bytes: send a "
                                         "shorter review or fewer instances", method, path)
                length = int(cl)
                if length > self.max_body:
                    raise HttpError(413, f"the body is {length} bytes; the limit is {self.max_body} "
                                         "bytes: send a shorter review or fewer instances",
                                    method, path)
            conn.head = (method, path, headers, keep, end + 4, length)
        method, path, headers, keep, start, length = conn.head
        if length >= 0:
            if len(buf) < start + length:
                self._maybe_continue(conn, headers)
                return None
            body = bytes(buf[start:start + length])
            del buf[:start + length]
        else:
            found = _dechunk(buf, start, self.max_body)
            if found is None:
                if len(buf) - start > self.max_body + MAX_CHUNKED_OVERHEAD:
                    raise HttpError(413, f"the body is over the limit of {self.max_body} bytes")
                self._maybe_continue(conn, headers)
                return None
            body, end = found
            del buf[:end]
        conn.head = None
        started = conn.started or time.monotonic()
        conn.started = time.monotonic() if buf else 0.0
        conn.sent_continue = False
        if self.draining or conn.eof:
            keep = False
        conn.inflight = True
        return Request(method, path, headers, body, keep, started)

    def _maybe_continue(self, conn: Conn, headers: dict[str, str]) -> None:
        if not conn.sent_continue and headers.get("expect", "").lower() == "100-continue":
            conn.sent_continue = True
            conn.wbuf += b"HTTP/1.1 100 Continue\r\n\r\n"
            self._flush(conn)

    # ---- answering

    def _respond(self, conn: Conn, req: Request, status: int, body: bytes,
                 ctype: bytes = JSON_TYPE, error: str | None = None, head_only: bool = False) -> None:
        keep = req.keep_alive and not conn.close_after and not self.draining and status not in (
            408, 413, 431)
        if not keep:
            conn.close_after = True
        conn.inflight = False
        conn.wbuf += b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            status, _REASONS.get(status, "Error").encode(), ctype, len(body),
            b"" if keep else b"Connection: close\r\n")
        if not head_only:
            conn.wbuf += body
        record = {"ts": round(time.time(), 3), "level": "info" if status < 500 else "error",
                  "event": "request", "pid": self.pid, "method": req.method,
                  "path": req.path[:200], "status": status,
                  "ms": round((time.monotonic() - req.started) * 1000, 2),
                  "bytes": len(body), "in": len(req.body)}
        if error:
            record["error"] = error[:300]
        self.logbuf.append(_log_line(record))

    def _flush(self, conn: Conn) -> None:
        if conn.wbuf:
            try:
                sent = conn.sock.send(conn.wbuf)
                del conn.wbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(conn)
                return
            conn.last = time.monotonic()
        if conn.wbuf:
            if not conn.writing:
                conn.writing = True
                self.poller.modify(conn.fd, _READ | _WRITE)
            return
        if conn.writing:
            conn.writing = False
            self.poller.modify(conn.fd, _READ)
            if conn.rbuf and not conn.close_after:
                self.recheck.add(conn)
        if self.draining and not conn.rbuf and conn.head is None and not conn.inflight:
            conn.close_after = True  # shutting down: nothing more is coming on this connection
        if conn.close_after and not conn.lingering:
            # Half-close, then drop whatever the caller still sends, so that closing never resets
            # the connection before the caller has read the answer.
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(conn)
                return
            conn.lingering = True
            conn.linger_until = time.monotonic() + LINGER_S
            conn.rbuf.clear()
            if conn.eof:
                self._close(conn)

    def _flush_log(self) -> None:
        if self.logbuf:
            data = b"".join(self.logbuf)
            self.logbuf.clear()
            _write_all(1, data)

    def _process(self, ready: list[tuple[Conn, Request]]) -> None:
        inference = self.inference
        plain: list[tuple[Conn, Request, Any]] = []
        explain: list[tuple[Conn, Request, Any]] = []
        for conn, req in ready:
            path, method = req.path, req.method
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    self._respond(conn, req, 405, inference.error_body("use GET /ping"),
                                  error="method not allowed")
                elif self.model is not None:
                    self._respond(conn, req, 200, b'{"status":"healthy"}', head_only=method == "HEAD")
                else:
                    msg = f"the model is not loaded: {self.load_error}"
                    self._respond(conn, req, 503, inference.error_body(msg), error=msg,
                                  head_only=method == "HEAD")
            elif path == "/invocations" or _runtime_path(path):
                if method != "POST":
                    self._respond(conn, req, 405, inference.error_body(f"use POST {path}"),
                                  error="method not allowed")
                elif self.model is None:
                    msg = f"the model is not loaded: {self.load_error}"
                    self._respond(conn, req, 503, inference.error_body(msg), error=msg)
                else:
                    try:
                        parsed = inference.input_fn(req.body, req.headers.get("content-type"))
                    except inference.RequestError as exc:
                        self._respond(conn, req, exc.status, inference.error_body(exc.message),
                                      error=exc.message)
                    except Exception as exc:  # noqa: BLE001 - never a 500 without a log line
                        self._internal_error(conn, req, exc)
                    else:
                        (explain if parsed.explain else plain).append((conn, req, parsed))
            else:
                msg = f"no route {method} {path[:100]}: use POST /invocations or GET /ping"
                self._respond(conn, req, 404, inference.error_body(msg), error="not found")
        for conn, _ in ready:
            if self.conns.get(conn.fd) is conn:
                self._flush(conn)
        batch: list[tuple[Conn, Request, Any]] = []
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

    def _predict(self, items: list[tuple[Conn, Request, Any]]) -> None:
        inference = self.inference
        self._busy(True)
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
                self._respond(conn, req, 200, body, ctype=ctype.encode())
        except Exception as exc:  # noqa: BLE001
            conn, req, _ = items[0]
            self._internal_error(conn, req, exc)
        finally:
            self._busy(False)
        for conn, _, _ in items:
            if self.conns.get(conn.fd) is conn:
                self._flush(conn)

    def _internal_error(self, conn: Conn, req: Request, exc: Exception) -> None:
        log("error", "request_failed", path=req.path[:200], error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8))
        msg = "the server failed to score this review; the failure is in the server log"
        self._respond(conn, req, 500, self.inference.error_body(msg), error=f"{type(exc).__name__}")

    def _busy(self, on: bool) -> None:
        struct.pack_into("d", self.board, self.slot * 8, time.monotonic() if on else 0.0)

    # ---- housekeeping

    def _sweep(self, now: float) -> None:
        if os.getppid() != self.master_pid and not self.draining:
            self.draining = True  # the master is gone: finish up and go
            self._start_drain()
        for conn in list(self.conns.values()):
            if conn.lingering:
                if now > conn.linger_until:
                    self._close(conn)
            elif conn.wbuf:
                if now - conn.last > self.cfg.read_timeout:  # the caller stopped reading
                    self._close(conn)
            elif conn.started and now - conn.started > self.cfg.read_timeout:
                req = Request("-", "-", {}, b"", False, conn.started)
                msg = f"the request did not arrive completely within {self.cfg.read_timeout:g} s"
                self._respond(conn, req, 408, self.inference.error_body(msg), error=msg)
                conn.rbuf.clear()
                conn.head = None
                self._flush(conn)
            elif not conn.rbuf and now - conn.last > self.cfg.idle_timeout:
                self._close(conn)


def _unread_input(sock: socket.socket) -> bool:
    """Whether the caller's bytes wait in the kernel, not read yet (a request sent while the worker
    was busy): such a connection is not idle."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waiting
        return False


def _runtime_path(path: str) -> bool:
    """``/endpoints/<name>/invocations``: what boto3's sagemaker-runtime InvokeEndpoint calls."""
    if not path.startswith("/endpoints/") or not path.endswith("/invocations"):
        return False
    name = path[len("/endpoints/"):-len("/invocations")]
    return 0 < len(name) <= 63 and "/" not in name


# --------------------------------------------------------------------------- master

def respawn_delay(failures: int) -> float:
    """Seconds before a worker that died is replaced, after ``failures`` short lives in a row.

    The first is replaced at once (a kill, an out-of-memory); a worker that keeps dying (a model that
    crashes every worker) is replaced after 0.5, 1, 2, 4, 8, then every 10 s, so a crash loop cannot
    spin the CPU the healthy workers need."""
    return 0.0 if failures <= 1 else min(10.0, 0.5 * 2 ** (failures - 2))


class Master:
    def __init__(self, cfg: Config, listener: socket.socket, model, load_error: str | None):
        self.cfg, self.listener, self.model, self.load_error = cfg, listener, model, load_error
        self.board = mmap.mmap(-1, _board_size(cfg.workers))  # shared with the workers: see _board_size
        for slot in range(cfg.workers):
            struct.pack_into("qq", self.board, _conns_at(cfg.workers, slot), -1, 0)
        self.kicks: list[tuple[int, int]] = []  # per slot: a pipe that wakes its worker (balancing)
        if cfg.workers > 1:
            for _ in range(cfg.workers):
                r, w = os.pipe()
                os.set_blocking(r, False)
                os.set_blocking(w, False)
                self.kicks.append((r, w))
        self.pid_of_slot: dict[int, int] = {}
        self.slot_of_pid: dict[int, int] = {}
        self.started_at: dict[int, float] = {}
        self.respawn_at: dict[int, float] = {}
        self.failures: dict[int, int] = {}
        self.stopping = False

    def run(self) -> int:
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop through the wakeup fd
        for slot in range(self.cfg.workers):
            self._spawn(slot)
        log("info", "serving", host=self.cfg.host, port=self.listener.getsockname()[1],
            workers=self.cfg.workers, threads_per_worker=self.cfg.threads,
            timeout_s=self.cfg.timeout, model_loaded=self.model is not None)
        while not self.stopping:
            try:
                select.select([self.wake_r], [], [], 0.5)
            except InterruptedError:
                pass
            self._drain_pipe()
            self._reap()
            if self.stopping:
                break
            now = time.monotonic()
            for slot, when in list(self.respawn_at.items()):
                if now >= when:
                    del self.respawn_at[slot]
                    self._spawn(slot)
            self._enforce_timeout(now)
        return self._shutdown()

    def _on_stop(self, signum, frame) -> None:
        self.stopping = True

    def _drain_pipe(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _spawn(self, slot: int) -> None:
        struct.pack_into("d", self.board, slot * 8, 0.0)
        master_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(self.wake_r)
                os.close(self.wake_w)
                code = Worker(self.cfg, self.listener, self.model, self.load_error, slot,
                              self.board, master_pid, self.kicks).run()
            except BaseException as exc:  # noqa: BLE001 - log, then leave without the master's cleanup
                log("error", "worker_crashed", error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(limit=8))
            finally:
                os._exit(code)
        self.pid_of_slot[slot] = pid
        self.slot_of_pid[pid] = slot
        self.started_at[slot] = time.monotonic()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.slot_of_pid.pop(pid, None)
            if slot is None:
                continue
            self.pid_of_slot.pop(slot, None)
            # its connections went with it: the others stop leaving new ones to this slot, and look
            struct.pack_into("qq", self.board, _conns_at(self.cfg.workers, slot), -1, 0)
            for other in self.pid_of_slot:
                try:
                    os.write(self.kicks[other][1], b"k")
                except (IndexError, OSError):
                    pass
            if self.stopping:
                continue
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit code {os.WEXITSTATUS(status)}")
            lived = time.monotonic() - self.started_at.get(slot, 0.0)
            self.failures[slot] = self.failures.get(slot, 0) + 1 if lived < STABLE_S else 0
            delay = respawn_delay(self.failures[slot])
            log("error", "worker_exited", worker_pid=pid, how=how, lived_s=round(lived, 2),
                replace_in_s=delay)
            self.respawn_at[slot] = time.monotonic() + delay

    def _enforce_timeout(self, now: float) -> None:
        for slot, pid in list(self.pid_of_slot.items()):
            began = struct.unpack_from("d", self.board, slot * 8)[0]
            if began and now - began > self.cfg.timeout:
                log("error", "worker_timeout", worker_pid=pid, busy_s=round(now - began, 1),
                    timeout_s=self.cfg.timeout)
                struct.pack_into("d", self.board, slot * 8, 0.0)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _shutdown(self) -> int:
        log("info", "stopping", workers=len(self.pid_of_slot))
        try:
            self.listener.close()
        except OSError:
            pass
        for pid in list(self.slot_of_pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.cfg.grace + 2.0
        while self.slot_of_pid and time.monotonic() < deadline:
            self._reap()
            if self.slot_of_pid:
                try:
                    select.select([self.wake_r], [], [], 0.1)
                except InterruptedError:
                    pass
                self._drain_pipe()
        for pid in list(self.slot_of_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()
        log("info", "stopped")
        return 0


# --------------------------------------------------------------------------- startup

def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def load_model(cfg: Config):
    """(model, None) or (None, reason). Runs in the master, before any worker exists."""
    t0 = time.monotonic()
    try:
        import torch
        torch.set_num_threads(1)  # the master never computes in parallel: forking stays safe
        from .inference import model_fn
        model = model_fn(cfg.model_dir)
        from .inference import probabilities
        probabilities(model.model, [[1, 2, 3], [1, 2]])  # first-call setup of the kernels, shared
    except Exception as exc:  # noqa: BLE001 - any failure: serve 503 with the reason, never hang
        reason = str(exc) or type(exc).__name__
        log("error", "model_load_failed", model_dir=cfg.model_dir, reason=reason)
        print(f"serve: cannot load the model from {cfg.model_dir}: {reason}\n"
              "serve: /ping answers 503 and /invocations 503 until the server is restarted with a "
              "complete model directory", file=sys.stderr, flush=True)
        return None, reason
    log("info", "model_loaded", model_dir=cfg.model_dir, ms=round((time.monotonic() - t0) * 1000))
    return model, None


def main(argv: list[str] | None = None) -> int:
    gc.disable()  # loading allocates many objects and frees few: no collections until it is done
    cfg = Config.from_args(argv)
    # OpenMP reads this when torch loads; the master computes with one thread (load_model) and each
    # worker sets its own count after the fork.
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    try:
        listener = bind(cfg.host, cfg.port)
    except OSError as exc:
        print(f"serve: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        return 1
    model, error = load_model(cfg)
    gc.collect()
    gc.freeze()  # what exists now is shared with the workers: keep the collector off those pages
    gc.enable()
    sys.stdout.flush()
    return Master(cfg, listener, model, error).run()


if __name__ == "__main__":
    sys.exit(main())
