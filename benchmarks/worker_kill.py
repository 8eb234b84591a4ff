#!/usr/bin/env python3
"""Faults under load: SIGKILL one worker, then SIGTERM the server, while callers keep sending.

    python benchmarks/worker_kill.py [--requests 6000] [--concurrency 32] [--workers 2] [--model-dir DIR]

Bounded and loopback only; the server (``python -m model.serve`` on 127.0.0.1) is always stopped.
Traffic, model and error definition as in benchmarks/load_soak.py; callers do not retry.

Phase 1, worker killed: a third of the way through ``--requests``, one worker gets SIGKILL. Reported:
the share of requests that failed (target <= 1 %: the killed worker's in-flight requests and the
keep-alive connections it held), how long until the master had a replacement worker (a new pid), and
``/ping`` polled every 20 ms on fresh connections from the kill on (stays 200, or how long until it is
200 again).

Phase 2, drain: callers keep sending, the master gets SIGTERM. Reported: of the requests completely sent
before the signal, how many were answered (target: all); what happened to requests sent after it
(refused or closed: the server is going away); the exit code and how long the server took to exit.
(tests/test_serve.py ``test_sigterm_drains_in_flight_requests`` checks the same deterministically with
one half-sent request.)
Exit status 0 when every target holds, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_soak import Load, Server, add_server_root, header, request, write_model  # noqa: E402


def kill_phase(server: Server, total: int, concurrency: int) -> dict:
    load = Load(server.port, total, concurrency, seed=21)
    before = server.workers()
    victim = before[0]
    marks: dict[str, float | None] = {"killed": None, "replacement": None, "ping_bad_first": None,
                                      "ping_ok_after_bad": None}
    pings = {"ok": 0, "bad": 0}
    new_pid: list[int] = []
    stop = threading.Event()

    def killer():
        while load.done < total // 3 and not stop.is_set():
            time.sleep(0.005)
        os.kill(victim, signal.SIGKILL)
        marks["killed"] = time.monotonic()
        while not stop.is_set():  # the master replaces it: a new child pid
            now = server.workers()
            fresh = [p for p in now if p not in before]
            if fresh and victim not in now:
                marks["replacement"] = time.monotonic()
                new_pid.extend(fresh)
                return
            time.sleep(0.01)

    def pinger():
        while marks["killed"] is None and not stop.is_set():
            time.sleep(0.002)
        end = time.monotonic() + 10
        while time.monotonic() < end and not stop.is_set():
            try:
                ok = request(server.port, "GET", "/ping", timeout=2)[0] == 200
            except OSError:
                ok = False
            now = time.monotonic()
            if ok:
                pings["ok"] += 1
                if marks["ping_bad_first"] is not None and marks["ping_ok_after_bad"] is None:
                    marks["ping_ok_after_bad"] = now
            else:
                pings["bad"] += 1
                if marks["ping_bad_first"] is None:
                    marks["ping_bad_first"] = now
            time.sleep(0.02)

    threads = [threading.Thread(target=killer, daemon=True), threading.Thread(target=pinger, daemon=True)]
    for t in threads:
        t.start()
    seconds = load.run()
    threads[0].join(30)
    stop.set()
    threads[1].join(15)
    result = load.summary(seconds)
    killed = marks["killed"]
    result.update({
        "killed_worker": victim, "replacement_worker": new_pid,
        "killed_after_requests": total // 3,
        "replacement_after_ms": round((marks["replacement"] - killed) * 1000, 1) if marks["replacement"] else None,
        "ping_checks_after_kill": pings,
        "ping_unhealthy_for_ms": (round((marks["ping_ok_after_bad"] - marks["ping_bad_first"]) * 1000, 1)
                                  if marks["ping_ok_after_bad"] else (None if marks["ping_bad_first"] else 0.0)),
        "workers_at_end": len(server.workers()),
        "worker_exited_logged": any(e.get("event") == "worker_exited" for e in server.log_events()),
    })
    return result


def drain_phase(server: Server, concurrency: int, before_signal_s: float = 2.0) -> dict:
    load = Load(server.port, 10**9, concurrency, seed=31, keep_records=True)
    runner = threading.Thread(target=load.run, daemon=True)
    runner.start()
    time.sleep(before_signal_s)
    t_term = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    try:
        code = server.proc.wait(60)
    except Exception:  # noqa: BLE001 - reported as no exit
        code = None
    exit_s = time.monotonic() - t_term
    time.sleep(0.5)
    load.stop_event.set()
    runner.join(60)
    sent_before = [r for r in load.records if r[1] and r[1] < t_term]
    in_flight = [r for r in sent_before if r[2] >= t_term]  # sent before, answered (or not) after
    after = [r for r in load.records if not (r[1] and r[1] < t_term)]
    outcome = {}
    for r in after:
        outcome[r[3]] = outcome.get(r[3], 0) + 1
    return {
        "sent_before_sigterm": len(sent_before),
        "sent_before_sigterm_failed": sum(1 for r in sent_before if r[3] != "ok"),
        "sent_before_sigterm_errors": sorted({r[3] for r in sent_before if r[3] != "ok"}),
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_answered": sum(1 for r in in_flight if r[3] == "ok"),
        "started_after_sigterm": len(after), "after_sigterm_outcomes": outcome,
        "exit_code": code, "exit_after_s": round(exit_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=6_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--json", type=Path, help="write the result here too")
    add_server_root(p)
    args = p.parse_args(argv)
    if args.workers < 2:
        p.error("--workers must be >= 2 (one is killed)")

    header("worker kill and SIGTERM drain under load: serve on loopback")
    with tempfile.TemporaryDirectory(prefix="worker-kill-") as tmp:
        tmp = Path(tmp)
        model_dir = args.model_dir.resolve() if args.model_dir else write_model(tmp / "model")
        server = Server(model_dir, args.workers, tmp / "serve.log", root=args.server_root.resolve())
        try:
            print(f"# serve    pid {server.pid}, {args.workers} workers, healthy after "
                  f"{server.wait_healthy():.1f} s", flush=True)
            Load(server.port, 300, args.concurrency, seed=3).run()  # warm-up, not counted
            kill = kill_phase(server, args.requests, args.concurrency)
            print(f"kill      {json.dumps(kill)}", flush=True)
            server.wait_healthy(30)
            drain = drain_phase(server, args.concurrency)
            print(f"drain     {json.dumps(drain)}", flush=True)
        finally:
            server.stop()
    kill_ok = (kill["failed_pct"] <= 1.0 and kill["replacement_after_ms"] is not None
               and kill["workers_at_end"] == args.workers and kill["requests"] == args.requests)
    drain_ok = drain["sent_before_sigterm_failed"] == 0 and drain["exit_code"] == 0
    print(f"result    kill: {kill['failed']}/{kill['requests']} failed ({kill['failed_pct']} %), replacement "
          f"worker after {kill['replacement_after_ms']} ms, /ping after the kill {kill['ping_checks_after_kill']} "
          f"(unhealthy for {kill['ping_unhealthy_for_ms']} ms): {'PASS' if kill_ok else 'FAIL'} (target <= 1 %)")
    print(f"result    drain: {drain['in_flight_at_sigterm']} requests in flight at SIGTERM, "
          f"{drain['in_flight_answered']} answered; {drain['sent_before_sigterm_failed']} of "
          f"{drain['sent_before_sigterm']} sent before it failed; exit code {drain['exit_code']} after "
          f"{drain['exit_after_s']} s; after SIGTERM: {drain['after_sigterm_outcomes']}: "
          f"{'PASS' if drain_ok else 'FAIL'}")
    print(f"# load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} (at end)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"kill": kill, "drain": drain}, indent=2))
    return 0 if kill_ok and drain_ok else 1


if __name__ == "__main__":
    sys.exit(main())
