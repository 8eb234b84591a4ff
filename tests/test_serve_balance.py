"""Keep-alive connections are spread over the workers (model/serve.py's accept balancing).

With every worker waiting on the one listening socket (EPOLLEXCLUSIVE), the worker the kernel wakes
first used to accept every connection of a burst, and keep-alive connections never move: with 2
workers and 8 connections, one worker answered everything (benchmarks/results/serve-balance.txt).
"""
from __future__ import annotations

import collections
import json
import socket
import time
from pathlib import Path

from fixtures_model import ServeProcess, read_answer

REVIEW = b"A wonderful, brilliant film: superb acting and a beautiful, delightful story."
CONNECTIONS = 8
ROUNDS = 4


def request(name: str) -> bytes:
    # the runtime route keeps the endpoint name in the log line's path: it tells the connections apart
    return (f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(REVIEW)}\r\n\r\n").encode() + REVIEW


def waiting_in_epoll(pid: int) -> bool:
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return False
    return "epoll" in wchan  # do_epoll_wait (ep_poll on older kernels)


def wait_idle(pids: list[int], timeout: float = 10.0) -> None:
    """Until every worker is blocked in epoll_wait: each has answered, logged and decided whether to
    wait on the listening socket (the balancing runs before it waits again), so the next connection
    arrives while all of them wait for work, the case where one used to take everything. A fixed
    sleep gave a busy machine too little time and a quiet one more than it needed."""
    deadline = time.monotonic() + timeout
    while not all(waiting_in_epoll(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers not idle in {timeout:.0f}s: " + ", ".join(
            f"{pid} {Path(f'/proc/{pid}/wchan').read_text()!r}" for pid in pids)
        time.sleep(0.001)


def test_keep_alive_connections_are_spread_over_the_workers(model_dir, tmp_path):
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=2)
    socks = []
    try:
        deadline = time.monotonic() + 20
        while len(proc.workers()) < 2 and time.monotonic() < deadline:  # /ping may beat the second fork
            time.sleep(0.05)
        assert len(proc.workers()) == 2
        # a client pool that grows as the load does: each new connection arrives while the workers
        # wait for work (the worker woken first used to take them all)
        for i in range(CONNECTIONS):
            socks.append(socket.create_connection(("127.0.0.1", proc.port), timeout=30))
            socks[-1].sendall(request(f"balance-c{i}"))
            assert read_answer(socks[-1])[0] == 200
            wait_idle(proc.workers())
        for _ in range(ROUNDS - 1):  # then all of them at once, several times
            for i, s in enumerate(socks):
                s.sendall(request(f"balance-c{i}"))
            for s in socks:
                status, headers, _ = read_answer(s)
                assert status == 200 and headers.get("connection") is None  # still keep-alive
        expected = CONNECTIONS * ROUNDS
        deadline = time.monotonic() + 10
        while True:  # the workers write their log lines after answering
            records = [r for r in proc.log_records() if r.get("event") == "request"
                       and r["path"].startswith("/endpoints/balance-c")]
            if len(records) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(records) == expected and all(r["status"] == 200 for r in records)
        worker_of = collections.defaultdict(set)   # connection -> pids that answered on it
        for r in records:
            worker_of[r["path"]].add(r["pid"])
        assert all(len(pids) == 1 for pids in worker_of.values())  # a connection stays on its worker
        per_worker = collections.Counter(next(iter(pids)) for pids in worker_of.values())
        assert len(per_worker) == 2 and min(per_worker.values()) >= 2, \
            f"connections per worker: {dict(per_worker)}"
        assert set(per_worker) <= set(proc.workers())
        print("connections per worker:", json.dumps(sorted(per_worker.values(), reverse=True)))
    finally:
        for s in socks:
            s.close()
        proc.stop()
