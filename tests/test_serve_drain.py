"""SIGTERM drain: a request that has fully arrived is answered, even if the worker has not read it yet.

tests/test_serve.py ``test_sigterm_drains_in_flight_requests`` covers a request the worker is reading
(half of it sent) and an idle keep-alive connection (closed). This covers the case between them that
benchmarks/worker_kill.py found under load: a keep-alive connection that was idle, whose next request
arrives complete while the worker is busy scoring someone else's batch, and the signal comes before the
worker gets back to its event loop. The bytes are in the kernel, not in the worker's buffer.

The busy step is deterministic (tests/serve_hooks.py): the batch is held until the worker has
handled SIGTERM, on any machine, where a merely slow batch used to be answered first on a fast one.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time

from fixtures_model import ServeProcess, read_answer

REVIEW = b"A wonderful, brilliant film."


def post(body: bytes, ctype: str) -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_sigterm_answers_a_request_waiting_unread_behind_a_busy_worker(model_dir, tmp_path):
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1, hooks=True)
    try:
        idle = socket.create_connection(("127.0.0.1", proc.port), timeout=60)
        idle.sendall(post(REVIEW, "text/plain"))
        assert read_answer(idle)[0] == 200  # a keep-alive connection, now idle
        busy = socket.create_connection(("127.0.0.1", proc.port), timeout=60)
        busy.sendall(post(b"SLOW_STEP " + REVIEW, "text/plain"))
        proc.wait_for(proc.entered)  # the worker is scoring it, away from its event loop
        idle.sendall(post(REVIEW, "text/plain"))  # complete, in the kernel, not read yet
        os.kill(proc.proc.pid, signal.SIGTERM)
        proc.wait_for(proc.signalled)  # the worker knows it is draining...
        proc.release.touch()           # ...before it gets back to its connections
        status, headers, body = read_answer(idle)
        assert status == 200 and "label" in json.loads(body) and headers.get("connection") == "close"
        assert read_answer(busy)[0] == 200
        assert proc.proc.wait(60) == 0
    finally:
        proc.stop()


def test_sigterm_closes_a_connection_taken_from_the_backlog_that_sends_nothing(model_dir, tmp_path):
    """A connection that waited in the backlog while the worker was busy, and never sends: the drain
    takes it, finds it idle and closes it, so the server exits at once, not after the grace."""
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1, hooks=True)
    try:
        busy = socket.create_connection(("127.0.0.1", proc.port), timeout=60)
        busy.sendall(post(b"SLOW_STEP " + REVIEW, "text/plain"))
        proc.wait_for(proc.entered)  # the worker is scoring it, away from its event loop
        silent = socket.create_connection(("127.0.0.1", proc.port), timeout=60)  # in the backlog
        os.kill(proc.proc.pid, signal.SIGTERM)
        proc.wait_for(proc.signalled)
        proc.release.touch()
        assert read_answer(busy)[0] == 200
        started = time.monotonic()
        assert silent.recv(10) == b""  # closed by the server, not reset, with nothing sent
        assert proc.proc.wait(20) == 0 and time.monotonic() - started < 10
    finally:
        proc.stop()
