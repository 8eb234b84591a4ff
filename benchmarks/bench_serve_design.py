"""The serving design, side by side: our server now, our server before (a git revision), the peer
(TorchServe), and gunicorn's stock workers around the same handlers.

    ../shared/bench/peer_serving/setup.sh /tmp/peer     # once, for the peer
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_serve_design.py \
        [--kinds ours,before,peer] [--before 9d7764f] [--preset original] [--preset full] [--rounds 3]

Servers (``--kinds``; the first is the baseline of the ratios), each with 2 worker processes, torch at
1 thread per worker, the model loaded once before the fork, one after the other on 127.0.0.1 (never
at once), rounds interleaved, every other round in reverse order (A B C C B A ...), so that drift in
the machine's load hits all alike:

  ours       ``python -m model.serve --workers 2`` of this checkout (gunicorn arbiter, httptools, uvloop)
  before     the same command from ``git archive <--before>`` of ``model/``: the hand-written pre-fork
             epoll server that issue 12 replaced (default 9d7764f, its last revision)
  peer       SageMaker's PyTorch inference toolkit on TorchServe (../shared/bench/peer_serving, its
             best configuration on 2 cores: 2 workers, OMP_NUM_THREADS=1; its own LSTM of the
             original size and its own handlers; only with ``--preset original``, the size it has)
  gthread    gunicorn ``gthread`` worker, 4 threads, ``--preload``, a minimal WSGI app around the handlers
  sync       gunicorn ``sync`` worker, ``--preload`` (no keep-alive: a new connection per request)

Load: a closed loop of keep-alive raw-socket clients (threads) sending ~230-word reviews
(``../shared/bench/peer_serving/reviews.py``) as ``text/plain``; p50/p99 latency at concurrency 1,
throughput at concurrency 8. Prints medians over the rounds and ratios to the baseline. The client
runs on the same cores as the server, as the peer benchmark's does. Server overhead at concurrency 1
is the HTTP p50 minus the p50 of the same requests' handler work in-process (``in_process``, measured
in every round); ``GET /ping`` p50 at concurrency 1 is the server's cost alone (no model, no text
work), where the overhead's two terms carry the model's own run-to-run spread. Cold start: from exec to the first ``/ping`` 200 (polled every 10 ms). Balance:
requests per worker during the concurrency-8 run (8 keep-alive connections), from the servers' own
JSON log lines (ours and before). ``--preset`` is repeatable: ``original`` (the peer's small LSTM)
and ``full`` (the deployed size), both with random weights.

On a shared, busy machine wall-clock figures mostly measure the neighbours, so each phase also
reports the server's own CPU time per request (user + system of all its processes, from /proc):
the capacity of a dedicated machine is about (cores / CPU-ms per request) requests per ms.
The earlier parser experiment (httptools and h11 inside the old loop) is this script at 9d7764f.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER = REPO.parent / "shared" / "bench" / "peer_serving"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from proctable import group_cpu_seconds  # noqa: E402


# ----------------------------------------------------------------------------- the WSGI baseline

def make_app():
    """gunicorn entry point: the four handlers behind a minimal WSGI app (MODEL_DIR from env)."""
    import torch

    from model import inference

    torch.set_num_threads(1)
    model = inference.model_fn(os.environ["MODEL_DIR"])

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/ping":
            body, status = b'{"status":"healthy"}', "200 OK"
        elif path == "/invocations" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            try:
                data = inference.input_fn(raw, environ.get("CONTENT_TYPE"))
                body, _ = inference.output_fn(inference.predict_fn(data, model), environ.get("HTTP_ACCEPT"))
                status = "200 OK"
            except inference.RequestError as exc:
                body, status = inference.error_body(exc.message), f"{exc.status} Error"
        else:
            body, status = b'{"error":"not found"}', "404 Not Found"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return app


def build_model(path: Path, preset_name: str) -> Path:
    import torch

    from model import artifact
    from model.hyperparameters import preset
    from model.network import LSTMClassifier
    from model.preprocess import Preprocessor
    from model.vocab import Vocabulary

    sys.path.insert(0, str(PEER))
    from reviews import make_reviews

    hp = preset(preset_name)
    pre = Preprocessor.create(hp.preprocessing)
    vocab = Vocabulary.build((pre.tokens(r) for r in make_reviews(500, seed=99)), hp.vocab_size)
    torch.manual_seed(0)
    artifact.save(path, LSTMClassifier.from_hyperparameters(hp, len(vocab)), vocab, pre, hp)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def before_tree(rev: str, into: Path) -> Path:
    """``model/`` of revision ``rev``, extracted: the server as it was."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "model"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start(kind: str, model_dir: Path, log: Path, args) -> tuple[subprocess.Popen, int, float]:
    """The server running and answering: (process, port, seconds from exec to the first /ping 200)."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MODEL_DIR=str(model_dir), PYTHONPATH=str(REPO))
    cwd = str(REPO)
    if kind in ("ours", "before"):
        cmd = [sys.executable, "-m", "model.serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2", "--model-dir", str(model_dir)]
        if kind == "before":
            cwd = env["PYTHONPATH"] = str(args.before_dir)
    elif kind == "peer":
        run = Path(args.peer) / "run"
        run.mkdir(parents=True, exist_ok=True)
        env.update(SAGEMAKER_BASE_DIR=str(Path(args.peer) / "base"), SAGEMAKER_MODEL_SERVER_WORKERS="2",
                   PEER_TS_CONFIG=str(run / "sagemaker-ts.properties"), SAGEMAKER_BIND_TO_PORT=str(port))
        env.pop("PYTHONPATH")
        cmd, cwd = [str(Path(args.peer) / "venv" / "bin" / "python"), str(PEER / "serve_peer.py")], str(run)
    else:
        cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(Path(__file__).parent), "--workers", "2",
               "--preload", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
               "--keep-alive", "75", "--timeout", "60"]
        cmd += ["--worker-class", "gthread", "--threads", "4"] if kind == "gthread" else ["--worker-class", "sync"]
        cmd += ["bench_serve_design:make_app()"]
    fh = open(log, "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline, cold = t0 + 180, None
    while time.monotonic() < deadline:
        try:
            if cold is None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        cold = time.monotonic() - t0
            # TorchServe answers /ping before its workers are up: ready is a first answer
            if cold is not None and Client(port).request(bodies(1)[0]) == 200:
                return proc, port, cold
        except (OSError, AssertionError):
            pass
        time.sleep(0.01)
    stop(proc)
    raise RuntimeError(f"{kind} did not start; see {log}")


def per_worker(log: Path, offset: int) -> list[int]:
    """Requests answered per worker pid after ``offset`` in a server's JSON log, most first."""
    counts: dict[int, int] = {}
    with open(log, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            if line.startswith(b"{") and b'"event":"request"' in line:
                pid = json.loads(line)["pid"]
                counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group (workers included)."""
    return group_cpu_seconds(pgid)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# ----------------------------------------------------------------------------- load

class Client:
    """One keep-alive connection (reconnecting when the server closes it)."""

    def __init__(self, port: int):
        self.port = port
        self.sock = None
        self.buf = b""

    def request(self, data: bytes) -> int:
        for attempt in (0, 1):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buf = b""
            try:
                self.sock.sendall(data)
                return self._response()
            except (ConnectionError, BrokenPipeError):
                self.sock.close()
                self.sock = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def _response(self) -> int:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        self.buf = self.buf[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.sock.close()
            self.sock = None
        return status


def bodies(n: int = 64) -> list[bytes]:
    sys.path.insert(0, str(PEER))
    from reviews import make_reviews

    out = []
    for text in make_reviews(n, seed=1234, n_words=230):
        data = text.encode()
        out.append(b"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return out


def latency(port: int, requests: list[bytes], count: int) -> tuple[float, float]:
    client = Client(port)
    latency.count = count
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        assert client.request(requests[i % len(requests)]) == 200
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99) - 1] * 1000


def throughput(port: int, requests: list[bytes], concurrency: int, seconds: float) -> tuple[float, int]:
    done = [0] * concurrency
    errors = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def run(k: int) -> None:
        client = Client(port)
        rng = random.Random(k)
        while time.perf_counter() < stop_at:
            try:
                ok = client.request(requests[rng.randrange(len(requests))]) == 200
            except OSError:
                ok = False
            done[k] += ok
            errors[k] += not ok

    threads = [threading.Thread(target=run, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throughput.count = sum(done) + sum(errors)
    return sum(done) / (time.perf_counter() - t0), sum(errors)


def in_process(model_dir: Path, requests: list[bytes], count: int) -> float:
    """p50 ms of the same requests' handler work with no HTTP: input_fn, predict_many, output_fn,
    torch at 1 thread as in a worker. HTTP p50 minus this is the server's overhead."""
    import torch

    from model import inference

    torch.set_num_threads(1)
    model = in_process.models.get(model_dir) or inference.model_fn(str(model_dir))
    in_process.models[model_dir] = model
    bodies_only = [r.split(b"\r\n\r\n", 1)[1] for r in requests]
    times = []
    for i in range(count + 30):
        t0 = time.perf_counter()
        parsed = inference.input_fn(bodies_only[i % len(bodies_only)], "text/plain")
        (answer,) = inference.predict_many([parsed], model)
        inference.output_fn(answer, None)
        if i >= 30:  # the first ones warm up
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


in_process.models = {}

METRICS = ("p50", "p99", "overhead", "rps", "errors", "cpu_ms_c1", "cpu_ms_c8", "cold_s", "imbalance", "ping_p50")
PING = b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n"  # the server's own cost: no model, no text work


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="model size, repeatable: original (the peer's, "
                   "small) and/or full (the deployed size); default: original")
    p.add_argument("--kinds", default="ours,before,peer",
                   help="servers, comma-separated, the first is the baseline: ours, before, peer, gthread, sync")
    p.add_argument("--before", default="9d7764f", help="the git revision 'before' runs (default: the last "
                   "revision of the hand-written server)")
    p.add_argument("--peer", default="/tmp/peer", help="where ../shared/bench/peer_serving/setup.sh installed the peer")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each throughput run")
    p.add_argument("--latency-requests", type=int, default=300)
    args = p.parse_args()
    kinds = args.kinds.split(",")
    presets = args.preset or ["original"]
    if "peer" in kinds and not (Path(args.peer) / "venv" / "bin" / "python").exists():
        raise SystemExit(f"no peer at {args.peer}: run {PEER}/setup.sh {args.peer} first, or leave out --kinds peer")
    versions = {}
    for name in ("httptools", "uvloop", "gunicorn"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    print(f"# serve design: presets {', '.join(presets)}, servers {', '.join(kinds)} (before = {args.before}), "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, versions {json.dumps(versions)}", flush=True)
    all_medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        args.before_dir = before_tree(args.before, Path(tmp) / "before")
        reqs = bodies()
        for preset_name in presets:
            model_dir = build_model(Path(tmp) / f"model-{preset_name}", preset_name)
            here = [k for k in kinds if k != "peer" or preset_name == "original"]
            results = {k: {m: [] for m in METRICS} for k in here}
            for rnd in range(args.rounds):
                base_ms = in_process(model_dir, reqs, args.latency_requests)
                order = here if rnd % 2 == 0 else here[::-1]  # drift within a round hits both ends
                for kind in order:
                    log = Path(tmp) / f"{kind}.log"
                    proc, port, cold = start(kind, model_dir, log, args)
                    try:
                        latency(port, reqs, 30)  # warm-up
                        cpu0 = group_cpu_s(proc.pid)
                        p50, p99 = latency(port, reqs, args.latency_requests)
                        cpu1 = group_cpu_s(proc.pid)
                        ping50, _ = latency(port, [PING], args.latency_requests)
                        cpu_ping = group_cpu_s(proc.pid)
                        offset = log.stat().st_size
                        rps, errors = throughput(port, reqs, 8, args.seconds)
                        cpu2 = group_cpu_s(proc.pid)
                    finally:
                        stop(proc)
                    spread = per_worker(log, offset) if kind in ("ours", "before") else []
                    imbalance = (spread[0] / spread[-1] - 1) if len(spread) == 2 else (float("inf") if spread else 0.0)
                    c1 = (cpu1 - cpu0) * 1000 / args.latency_requests
                    c8 = (cpu2 - cpu_ping) * 1000 / max(1, throughput.count)
                    for key, value in (("p50", p50), ("p99", p99), ("overhead", p50 - base_ms), ("rps", rps),
                                       ("errors", errors), ("cpu_ms_c1", c1), ("cpu_ms_c8", c8), ("cold_s", cold),
                                       ("imbalance", imbalance), ("ping_p50", ping50)):
                        results[kind][key].append(value)
                    print(f"{preset_name} round {rnd + 1} {kind:8s} c=1 p50 {p50:6.2f} ms (in-process {base_ms:5.2f}) "
                          f"p99 {p99:6.2f} ms cpu {c1:5.2f} ms/req | c=8 {rps:7.1f} req/s cpu {c8:5.2f} ms/req "
                          f"({errors} errors) per worker {spread} | /ping after {cold:.2f} s, p50 {ping50:.3f} ms | "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
            med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
            all_medians[preset_name] = med
            print(f"\n{preset_name}: medians of {args.rounds} rounds\n"
                  "| server | c=1 p50 ms | c=1 p99 ms | c=1 overhead ms (p50 - in-process) | c=1 server CPU ms/req "
                  "| c=8 req/s | c=8 server CPU ms/req | /ping 200 after s | requests per worker, most/least - 1 "
                  "| c=1 GET /ping p50 ms |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for kind in here:
                m = med[kind]
                print(f"| {kind} | {m['p50']:.2f} | {m['p99']:.2f} | {m['overhead']:.2f} | {m['cpu_ms_c1']:.2f} "
                      f"| {m['rps']:.0f} | {m['cpu_ms_c8']:.2f} | {m['cold_s']:.2f} | "
                      f"{spread_text(kind, m)} | {m['ping_p50']:.3f} |")
            base = here[0]
            for kind in here[1:]:
                o, b = med[kind], med[base]
                per_round = [y / x for x, y in zip(results[kind]["rps"], results[base]["rps"])]
                print(f"{base} vs {kind}: throughput x{b['rps'] / o['rps']:.2f} (per round "
                      f"{', '.join(f'{r:.2f}' for r in per_round)}), p50 x{b['p50'] / o['p50']:.2f}, "
                      f"p99 x{b['p99'] / o['p99']:.2f}, overhead {b['overhead'] - o['overhead']:+.3f} ms, "
                      f"CPU per request at c=8 x{b['cpu_ms_c8'] / o['cpu_ms_c8']:.2f}, "
                      f"at c=1 x{b['cpu_ms_c1'] / o['cpu_ms_c1']:.2f}", flush=True)
            verdicts(med, base)
    print(json.dumps({"load_average_after": os.getloadavg(), "medians": all_medians}))


def spread_text(kind: str, m: dict) -> str:
    return f"{m['imbalance']:.0%}" if kind in ("ours", "before") else "-"


def verdicts(med: dict, base: str) -> None:
    """Issue 12's limits that this run measures, for ``base`` against ``before`` and ``peer``."""
    o = med[base]
    checks = [("server overhead at c=1 <= 0.3 ms", o["overhead"] <= 0.3, f"{o['overhead']:.2f} ms"),
              ("/ping 200 <= 2 s after exec", o["cold_s"] <= 2, f"{o['cold_s']:.2f} s"),
              ("requests per worker within 20% (8 keep-alive connections)", o["imbalance"] <= 0.2,
               f"{o['imbalance']:.0%}")]
    if "before" in med:
        r = o["rps"] / med["before"]["rps"]
        checks.append(("c=8 throughput >= 0.90x before", r >= 0.9, f"{r:.2f}x"))
    if "peer" in med:
        r = o["rps"] / med["peer"]["rps"]
        checks.append(("c=8 throughput >= 5x the peer's", r >= 5, f"{r:.2f}x"))
        r = o["p99"] / med["peer"]["p99"]
        checks.append(("c=1 p99 <= 1/3 of the peer's", r <= 1 / 3, f"{r:.2f}"))
    for what, ok, value in checks:
        print(f"  {base}: {what}: {value}: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
