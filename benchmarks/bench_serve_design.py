"""Why ``serve`` is its own pre-fork epoll server: the same handlers behind gunicorn, side by side.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_serve_design.py [--preset original|full]

Three servers, each with 2 worker processes, torch at 1 thread per worker, the model loaded once
before the fork, the same ``model.inference`` handlers, one after the other on 127.0.0.1 (never at
once), rounds interleaved (A B C A B C ...) so that drift in the machine's load hits all alike:

  A  ``python -m model.serve --workers 2``                      (ours: epoll loop, micro-batching)
  B  gunicorn ``gthread`` worker, 4 threads, ``--preload``, a minimal WSGI app around the handlers
  C  gunicorn ``sync`` worker, ``--preload`` (no keep-alive: a new connection per request)

Load: a closed loop of keep-alive raw-socket clients (threads) sending ~230-word reviews
(``../shared/bench/peer_serving/reviews.py``) as ``text/plain``; p50/p99 latency at concurrency 1,
throughput at concurrency 8. Prints medians over the rounds and ours / gunicorn ratios. The client
runs on the same cores as the server, as the peer benchmark's does.

On a shared, busy machine wall-clock figures mostly measure the neighbours, so each phase also
reports the server's own CPU time per request (user + system of all its processes, from /proc):
the capacity of a dedicated machine is about (cores / CPU-ms per request) requests per ms.
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


# ----------------------------------------------------------------------------- model and servers

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


def start(kind: str, model_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MODEL_DIR=str(model_dir), PYTHONPATH=str(REPO))
    if kind == "ours":
        cmd = [sys.executable, "-m", "model.serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2", "--model-dir", str(model_dir)]
    else:
        cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(Path(__file__).parent), "--workers", "2",
               "--preload", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
               "--keep-alive", "75", "--timeout", "60"]
        cmd += ["--worker-class", "gthread", "--threads", "4"] if kind == "gthread" else ["--worker-class", "sync"]
        cmd += ["bench_serve_design:make_app()"]
    fh = open(log, "ab")
    proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{kind} did not start; see {log}")


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="original", help="model size: original (the peer's) or full")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each throughput run")
    p.add_argument("--latency-requests", type=int, default=300)
    args = p.parse_args()
    kinds = ["ours", "gthread", "sync"]
    results: dict[str, dict[str, list[float]]] = {
        k: {"p50": [], "p99": [], "rps": [], "errors": [], "cpu_ms_c1": [], "cpu_ms_c8": []} for k in kinds}
    print(f"# serve design: model preset {args.preset}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model", args.preset)
        reqs = bodies()
        for rnd in range(args.rounds):
            for kind in kinds:
                proc, port = start(kind, model_dir, Path(tmp) / f"{kind}.log")
                try:
                    latency(port, reqs, 30)  # warm-up
                    cpu0 = group_cpu_s(proc.pid)
                    p50, p99 = latency(port, reqs, args.latency_requests)
                    cpu1 = group_cpu_s(proc.pid)
                    rps, errors = throughput(port, reqs, 8, args.seconds)
                    cpu2 = group_cpu_s(proc.pid)
                finally:
                    stop(proc)
                c1 = (cpu1 - cpu0) * 1000 / args.latency_requests
                c8 = (cpu2 - cpu1) * 1000 / max(1, throughput.count)
                for key, value in (("p50", p50), ("p99", p99), ("rps", rps), ("errors", errors),
                                   ("cpu_ms_c1", c1), ("cpu_ms_c8", c8)):
                    results[kind][key].append(value)
                print(f"round {rnd + 1} {kind:8s} c=1 p50 {p50:6.2f} ms p99 {p99:6.2f} ms cpu {c1:5.2f} ms/req | "
                      f"c=8 {rps:7.1f} req/s cpu {c8:5.2f} ms/req ({errors} errors)", flush=True)
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    print("\n| server | c=1 p50 ms | c=1 p99 ms | c=1 server CPU ms/req | c=8 req/s | c=8 server CPU ms/req |"
          "\n| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        m = med[kind]
        print(f"| {kind} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu_ms_c1']:.2f} | {m['rps']:.0f} | {m['cpu_ms_c8']:.2f} |")
    for base in ("gthread", "sync"):
        o, b = med["ours"], med[base]
        print(f"ours vs {base}: throughput x{o['rps'] / b['rps']:.2f}, p50 x{o['p50'] / b['p50']:.2f}, "
              f"p99 x{o['p99'] / b['p99']:.2f}, CPU per request at c=8 x{o['cpu_ms_c8'] / b['cpu_ms_c8']:.2f}, "
              f"at c=1 x{o['cpu_ms_c1'] / b['cpu_ms_c1']:.2f}")
    print(json.dumps({"load_average_after": os.getloadavg(), "medians": med}))


if __name__ == "__main__":
    main()
