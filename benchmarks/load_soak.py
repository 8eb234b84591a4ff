#!/usr/bin/env python3
"""Load soak: N requests at concurrency C against a local ``serve``, errors and the server's memory.

    python benchmarks/load_soak.py [--requests 20000] [--concurrency 32] [--warmup 1000] [--workers 2]
                                   [--model-dir DIR] [--max-seconds 900] [--json OUT]

Bounded and loopback only: it starts ``python -m model.serve`` on 127.0.0.1 (a free port) with a small
model (``--model-dir``, else one written with ``model.artifact.save`` in the ``tiny`` preset's shape
with seeded random weights: serving cost depends on the shape, not on the weights), sends a warm-up,
reads the server's memory, sends the measured requests, reads the memory again, and stops the server
whatever happens.

Traffic (each of C client threads keeps one HTTP/1.1 keep-alive connection and opens a new one every
50 requests, or when the server closes it): ~80 % single reviews of 3-200 words (text/plain or JSON),
~7 % with ``"explain": true``, ~5 % batches of 2-8 reviews, ~8 % bad input with a known answer
(empty, wrong type, invalid UTF-8, unknown content type, malformed JSON, over the limit: 4xx). An
error is a request with no answer, an unexpected status, or a 200 that is not a prediction.

Memory: RSS summed over the master and its workers (``/proc/<pid>/status`` VmRSS; shared copy-on-write
pages count once per process, as ``ps`` shows them) and, for the record, PSS (``smaps_rollup``: shared
pages split between processes). Targets: 0 errors, RSS at the end within 10 % of after the warm-up.
Exit status 0 when both hold, 1 otherwise.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NLTK_DATA = REPO.parent / "shared" / "nltk_data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from model.contract import MAX_BODY_BYTES  # noqa: E402
from proctable import children, stop_group  # noqa: E402

WORDS = ("wonderful excellent brilliant superb masterpiece delightful beautiful fantastic enjoyable great "
         "terrible awful boring worst waste horrible dull disappointing stupid mess movie film plot actors "
         "story scenes director cast ending music camera script characters screen picture sequel role studio "
         "minutes dialogue acting performance the a and of not no never very really but it this that was is "
         "loved hated watched again time").split()


# --------------------------------------------------------------------------- model and server

def write_model(path: Path, seed: int = 0) -> Path:
    """A complete model directory in the ``tiny`` preset's shape, seeded random weights."""
    if NLTK_DATA.is_dir():
        os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))
    import torch

    from model import artifact
    from model.hyperparameters import preset
    from model.network import LSTMClassifier
    from model.preprocess import Preprocessor
    from model.vocab import Vocabulary

    hp = preset("tiny")
    pre = Preprocessor.create(hp.preprocessing)
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(200)]
    vocab = Vocabulary.build((pre.tokens(r) for r in corpus), hp.vocab_size)
    torch.manual_seed(seed)
    artifact.save(path, LSTMClassifier.from_hyperparameters(hp, len(vocab)), vocab, pre, hp)
    return path


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Server:
    """``python -m model.serve`` on loopback, in its own process group, always stopped."""

    def __init__(self, model_dir: Path, workers: int, log: Path, timeout_s: float = 60.0,
                 root: Path = REPO):
        self.port = free_port()
        self.log = log
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
        if NLTK_DATA.is_dir():
            env.setdefault("NLTK_DATA", str(NLTK_DATA))
        for key in ("SM_MODEL_DIR", "SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS", "OMP_NUM_THREADS"):
            env.pop(key, None)
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "model.serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(workers), "--timeout", str(timeout_s), "--model-dir", str(model_dir)],
                cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.workers_wanted = workers

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_healthy(self, timeout: float = 120.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: see {self.log}")
            try:
                if (request(self.port, "GET", "/ping", timeout=2)[0] == 200
                        and len(self.workers()) == self.workers_wanted):
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"/ping not healthy within {timeout:.0f} s: see {self.log}")

    def workers(self) -> list[int]:
        return children(self.pid)

    def stop(self, timeout: float = 40.0) -> int | None:
        return stop_group(self.proc, timeout)

    def log_events(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") != "request":
                    out.append(record)
        return out



def _proc_kib(path: str, key: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict:
    """RSS and PSS (MiB) summed over ``pid`` and its children, and the process count."""
    pids = [pid] + children(pid)
    rss = sum(_proc_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_proc_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "processes": len(pids)}


# --------------------------------------------------------------------------- traffic

def make_request(rng: random.Random) -> tuple[bytes, dict, set[int], str]:
    """(body, headers, the statuses that are right, kind)."""
    def review(lo=3, hi=200):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
    roll = rng.random()
    if roll < 0.40:
        return review().encode(), {"Content-Type": "text/plain"}, {200}, "text"
    if roll < 0.80:
        return json.dumps({"text": review()}).encode(), {"Content-Type": "application/json"}, {200}, "json"
    if roll < 0.87:
        return (json.dumps({"text": review(3, 80), "explain": True}).encode(),
                {"Content-Type": "application/json"}, {200}, "explain")
    if roll < 0.92:
        return (json.dumps({"instances": [review() for _ in range(rng.randint(2, 8))]}).encode(),
                {"Content-Type": "application/json"}, {200}, "batch")
    bad = rng.choice([
        (b"   \n", "text/plain", 400), (b'{"text": 5}', "application/json", 400),
        (b"\xff\xfe bad", "text/plain", 400), (b"great", "application/xml", 415),
        (b'{"text": ', "application/json", 400), (b'{"instances": []}', "application/json", 400),
        (b"a" * (MAX_BODY_BYTES + 1), "text/plain", 413),
    ])
    return bad[0], {"Content-Type": bad[1]}, {bad[2]}, "bad"


def valid_answer(kind: str, body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    if kind == "bad":
        return isinstance(answer.get("error"), str) and bool(answer["error"])
    items = answer.get("predictions") if kind == "batch" else [answer]
    if not items:
        return False
    for item in items:
        score = item.get("score")
        if not isinstance(score, float) or not 0 <= score <= 1 or item.get("label") != (
                "positive" if score >= 0.5 else "negative"):
            return False
        if kind == "explain" and not isinstance(item.get("explanation"), list):
            return False
    return True


class Load:
    """C threads sending ``total`` requests; outcome counts, latencies, and a per-request record."""

    def __init__(self, port: int, total: int, concurrency: int, seed: int = 1, reconnect_every: int = 50,
                 deadline: float | None = None, keep_records: bool = False):
        self.port, self.total, self.concurrency = port, total, concurrency
        self.seed, self.reconnect_every, self.deadline = seed, reconnect_every, deadline
        self.keep_records = keep_records
        self.lock = threading.Lock()
        self.issued = 0
        self.done = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.error_examples: list[str] = []
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self.records: list[tuple[float, float, float, str]] = []  # (start, sent, end, outcome)
        self.stop_event = threading.Event()

    def _take(self) -> bool:
        with self.lock:
            if self.issued >= self.total or self.stop_event.is_set():
                return False
            if self.deadline and time.monotonic() > self.deadline:
                return False
            self.issued += 1
            return True

    def _record(self, outcome: str, status: int | None, started: float, sent: float, detail: str = "") -> None:
        end = time.monotonic()
        with self.lock:
            self.done += 1
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if outcome == "ok":
                self.ok += 1
                self.latencies.append(end - started)
            else:
                self.errors[outcome] = self.errors.get(outcome, 0) + 1
                if len(self.error_examples) < 8:
                    self.error_examples.append(f"{outcome}: {detail}"[:200])
            if self.keep_records:
                self.records.append((started, sent, end, outcome))

    def _worker(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        conn = None
        used = 0
        while self._take():
            body, headers, expected, kind = make_request(rng)
            if conn is None or used >= self.reconnect_every:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                used = 0
            used += 1
            started = time.monotonic()
            sent = 0.0
            try:
                conn.request("POST", "/invocations", body=body, headers=headers)
                sent = time.monotonic()
                r = conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                self._record(f"no answer ({type(exc).__name__})", None, started, sent, str(exc))
                if isinstance(exc, ConnectionRefusedError):
                    time.sleep(0.01)  # the server is gone (drain phase): do not spin
                continue
            if r.status not in expected:
                self._record(f"status {r.status}", r.status, started, sent, data[:150].decode("utf-8", "replace"))
            elif not valid_answer(kind, data):
                self._record("invalid answer", r.status, started, sent, data[:150].decode("utf-8", "replace"))
            else:
                self._record("ok", r.status, started, sent)
        if conn is not None:
            conn.close()

    def run(self) -> float:
        started = time.monotonic()
        threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - started

    def summary(self, seconds: float) -> dict:
        lat = sorted(self.latencies)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 1) if lat else None
        failed = sum(self.errors.values())
        return {"requests": self.done, "ok": self.ok, "failed": failed,
                "failed_pct": round(100 * failed / max(1, self.done), 3),
                "errors": self.errors, "error_examples": self.error_examples,
                "statuses": dict(sorted(self.statuses.items())), "seconds": round(seconds, 1),
                "requests_per_s": round(self.done / seconds, 1) if seconds else None,
                "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99),
                               "max": round(lat[-1] * 1000, 1) if lat else None,
                               "mean": round(statistics.fmean(lat) * 1000, 1) if lat else None}}


# --------------------------------------------------------------------------- main

def header(title: str) -> None:
    print(f"# {title}")
    print(f"# date     {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine  nproc={os.cpu_count()} load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# command  {' '.join([Path(sys.executable).name] + sys.argv)}", flush=True)


def add_server_root(p: argparse.ArgumentParser) -> None:
    """``--server-root``: which tree's ``model/`` serves (this script's and worker_kill.py's)."""
    p.add_argument("--server-root", type=Path, default=REPO,
                   help="the tree whose model/ serves (default this checkout; e.g. a `git archive` of an "
                        "older revision, to measure the server as it was)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long")
    p.add_argument("--samples", type=int, default=10, help="memory readings during the measured part")
    p.add_argument("--json", type=Path, help="write the result here too")
    add_server_root(p)
    args = p.parse_args(argv)

    header("load soak: serve on loopback")
    with tempfile.TemporaryDirectory(prefix="load-soak-") as tmp:
        tmp = Path(tmp)
        model_dir = args.model_dir.resolve() if args.model_dir else write_model(tmp / "model")
        server = Server(model_dir, args.workers, tmp / "serve.log", root=args.server_root.resolve())
        try:
            print(f"# serve    pid {server.pid}, {args.workers} workers, model {model_dir}, "
                  f"healthy after {server.wait_healthy():.1f} s", flush=True)
            deadline = time.monotonic() + args.max_seconds
            warm = Load(server.port, args.warmup, args.concurrency, seed=7, deadline=deadline)
            warm_s = warm.run()
            mem_warm = memory(server.pid)
            print(f"warm-up   {json.dumps(warm.summary(warm_s))}")
            print(f"memory    after warm-up {json.dumps(mem_warm)}", flush=True)

            load = Load(server.port, args.requests, args.concurrency, seed=11, deadline=deadline)
            samples = []
            sampler_stop = threading.Event()

            def sample():
                step = max(1, args.requests // args.samples)
                next_at = step
                while not sampler_stop.wait(0.2):
                    if load.done >= next_at:
                        samples.append({"after": load.done, **memory(server.pid)})
                        next_at += step
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            seconds = load.run()
            sampler_stop.set()
            sampler.join()
            time.sleep(0.5)  # let the workers finish their log lines
            mem_end = memory(server.pid)
            result = load.summary(seconds)
            events = [e for e in server.log_events() if e.get("level") == "error"]
            growth = (mem_end["rss_mib"] - mem_warm["rss_mib"]) / mem_warm["rss_mib"] * 100
            pss_growth = (mem_end["pss_mib"] - mem_warm["pss_mib"]) / max(1e-9, mem_warm["pss_mib"]) * 100
            result.update({"memory_after_warmup": mem_warm, "memory_end": mem_end,
                           "rss_growth_pct": round(growth, 2), "pss_growth_pct": round(pss_growth, 2),
                           "memory_samples": samples, "server_error_events": events[:5],
                           "workers_at_end": len(server.workers())})
            print(f"measured  {json.dumps({k: v for k, v in result.items() if k != 'memory_samples'})}")
            for s in samples:
                print(f"memory    after {s['after']:>6} requests: RSS {s['rss_mib']} MiB, PSS {s['pss_mib']} MiB")
            complete = load.done == args.requests
            passed = complete and result["failed"] == 0 and abs(growth) <= 10 and not events
            print(f"result    {load.done}/{args.requests} requests in {seconds:.1f} s "
                  f"({result['requests_per_s']}/s) at concurrency {args.concurrency}; "
                  f"{result['failed']} errors; RSS {mem_warm['rss_mib']} -> {mem_end['rss_mib']} MiB "
                  f"({growth:+.1f} %), PSS {mem_warm['pss_mib']} -> {mem_end['pss_mib']} MiB "
                  f"({pss_growth:+.1f} %): {'PASS' if passed else 'FAIL'} "
                  "(targets: all sent, 0 errors, RSS within 10 %)")
            if args.json:
                args.json.write_text(json.dumps(result, indent=2))
        finally:
            code = server.stop()
            print(f"# serve    stopped, exit code {code}")
            print(f"# load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} (at end)", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
