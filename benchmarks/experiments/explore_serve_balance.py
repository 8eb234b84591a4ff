"""Experiment: how `serve` spreads keep-alive connections over its workers, and what an even spread gives.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_serve_balance.py [--rounds 2] [--reuseport]

A/B on the same machine, alternated: (a) "before": a temporary copy of ``model/`` with ``serve.py`` as
it was at BEFORE_REV (all workers wait on the one listening socket with EPOLLEXCLUSIVE; the worker the
kernel wakes first takes every connection of a burst); (b) "shipped": ``model/serve.py`` as it is
(the same socket, but a worker waits on it only while it holds no more connections than the least
loaded other worker: Worker._balance). With ``--reuseport``, also (c): the BEFORE_REV copy patched so
every worker binds its own listening socket with SO_REUSEPORT after the fork (the kernel then deals new
connections out by hash) and the master closes its own -- the sketch this experiment first measured,
not a finished fix (a worker that dies drops the connections queued on its own socket).
All: bench_serving's original-size model, 2 workers, ``OMP_NUM_THREADS=1``; load: the peer's
``loadgen.py``, concurrency 8 (8 keep-alive connections), 3,000 requests. Reports throughput, p50, and
how many requests each worker answered (from the JSON log, warm-up included).

The copies are made for this measurement only (model/ is not changed).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402

BEFORE_REV = "8341bc4"  # the last model/serve.py without accept balancing

PATCHES = [
    ("    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n",
     "    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
     "    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"),
    ("    def run(self) -> int:\n        self._signals()\n",
     "    def run(self) -> int:\n        host, port = self.listener.getsockname()[:2]\n        self.listener.close()\n"
     "        self.listener = bind(host, port)\n        self._signals()\n"),
    ("        for slot in range(self.cfg.workers):\n            self._spawn(slot)\n",
     "        for slot in range(self.cfg.workers):\n            self._spawn(slot)\n        time.sleep(0.5)\n"
     "        self.listener.close()\n"),
    ("port=self.listener.getsockname()[1],", "port=self.cfg.port,"),
]


def before_copy(dest: Path, patches=()) -> Path:
    """model/ as it is, with serve.py as it was at BEFORE_REV (and ``patches`` applied to it)."""
    shutil.copytree(_common.REPO / "model", dest / "model", ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "model" / "serve.py"
    text = subprocess.run(["git", "-C", str(_common.REPO), "show", f"{BEFORE_REV}:model/serve.py"],
                          capture_output=True, text=True, check=True).stdout
    for old, new in patches:
        if text.count(old) != 1:
            raise SystemExit(f"model/serve.py changed; the experiment's patch no longer applies at: {old.strip()!r}")
        text = text.replace(old, new)
    path.write_text(text)
    return dest


def patched_copy(dest: Path) -> Path:
    return before_copy(dest, PATCHES)


def run_one(cwd: Path, model_dir: Path, port: int, log: Path, loadgen_python: str) -> dict:
    cmd = [sys.executable, "-m", "model.serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(cwd)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        import urllib.request
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        lg = subprocess.run([loadgen_python, str(_common.PEER_DIR / "loadgen.py"), f"http://127.0.0.1:{port}/invocations",
                             "-n", "3000", "-c", "8", "--warmup", "50", "--no-check-float", "--json"],
                            capture_output=True, text=True, check=True)
        res = json.loads(lg.stdout.strip().splitlines()[-1])
    finally:
        proc.terminate()
        proc.wait(timeout=40)
    per_worker = collections.Counter()
    for line in log.read_text().splitlines():
        if '"event":"request"' in line:
            per_worker[json.loads(line)["pid"]] += 1
    res["per_worker"] = sorted(per_worker.values(), reverse=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--peer", default="/tmp/peer")
    ap.add_argument("--reuseport", action="store_true", help="also the SO_REUSEPORT-per-worker sketch")
    args = ap.parse_args()
    _common.set_nltk_data()
    header("serve: connection spread over workers, before accept balancing vs shipped"
           + (" vs SO_REUSEPORT per worker" if args.reuseport else ""))
    from bench_serving import build_our_model, free_port

    tmp = Path(tempfile.mkdtemp(prefix="explore_balance_"))
    try:
        model_dir = build_our_model(tmp / "model_dir")
        variants = {f"before ({BEFORE_REV}, EPOLLEXCLUSIVE, no balancing)": before_copy(tmp / "before"),
                    "shipped (balanced accept)": _common.REPO}
        if args.reuseport:
            variants["SO_REUSEPORT socket per worker"] = patched_copy(tmp / "patched")
        results: dict[str, list[dict]] = {k: [] for k in variants}
        for rnd in range(args.rounds):
            for name, cwd in variants.items():
                r = run_one(cwd, model_dir, free_port(), tmp / f"log{rnd}.txt", f"{args.peer}/venv/bin/python")
                results[name].append(r)
                print(f"round {rnd + 1}, {name}: {r['throughput_rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                      f"errors {r['errors']}, requests per worker {r['per_worker']}  (load {_common.loadavg()})",
                      flush=True)
        names = list(variants)
        a = results[names[0]]
        print()
        for name in names[1:]:
            for i, (ra, rb) in enumerate(zip(a, results[name])):
                print(f"round {i + 1}: {name.split(' (')[0]} / before = "
                      f"{rb['throughput_rps'] / ra['throughput_rps']:.2f}x throughput")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
