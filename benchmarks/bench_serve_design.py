"""Why ``serve`` is its own pre-fork epoll server: the same handlers behind other servers, side by side.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_serve_design.py \
        [--kinds ours,gthread,sync] [--preset original] [--preset full] [--rounds 3]

Servers (``--kinds``; the first is the baseline of the ratios), each with 2 worker processes, torch at
1 thread per worker, the model loaded once before the fork, the same ``model.inference`` handlers, one
after the other on 127.0.0.1 (never at once), rounds interleaved, every other round in reverse order
(A B C C B A ...), so that drift in the machine's load hits all alike:

  ours       ``python -m model.serve --workers 2``             (epoll loop, micro-batching)
  gthread    gunicorn ``gthread`` worker, 4 threads, ``--preload``, a minimal WSGI app around the handlers
  sync       gunicorn ``sync`` worker, ``--preload`` (no keep-alive: a new connection per request)
  httptools  model.serve with its request parsing done by httptools (llhttp), issue 12's first step
  h11        model.serve with its request parsing done by h11 (pure Python)

The two parser candidates are ``make_worker`` below: today's loop, batching, balancing and
supervision, only ``Worker._parse`` replaced (``bench_serve_design.py serve <parser> <serve flags>``
runs one as a server).

Load: a closed loop of keep-alive raw-socket clients (threads) sending ~230-word reviews
(``../shared/bench/peer_serving/reviews.py``) as ``text/plain``; p50/p99 latency at concurrency 1,
throughput at concurrency 8. Prints medians over the rounds and ratios to the baseline. The client
runs on the same cores as the server, as the peer benchmark's does. Server overhead at concurrency 1
is the HTTP p50 minus the p50 of the same requests' handler work in-process (``in_process``, measured
in every round). ``--preset`` is repeatable: ``original`` (the peer's small LSTM) and ``full`` (the
deployed size), both with random weights.

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


# ----------------------------------------------------------------------------- parser candidates

# Candidates for issue 12's first step: the same model.serve (epoll loop, batching, balancing,
# supervision), with Worker._parse, the hand-written request-line/header/Content-Length/chunked
# parsing, done by a maintained parser instead. Each is a Worker subclass made from the class it is
# given (model.serve imports nothing from here), so the benchmark, and a scratch copy of serve.py
# running the test suite, put one in place of serve.Worker and change nothing else.

PARSERS = ("httptools", "h11")


def make_worker(kind: str, base):
    """A Worker class whose ``_parse`` is done by ``kind`` ("httptools" or "h11")."""
    import types

    serve = sys.modules[base.__module__]
    HttpError, Request = serve.HttpError, serve.Request
    head_limit, overhead = serve.MAX_HEADER_BYTES, serve.MAX_CHUNKED_OVERHEAD

    def too_large(limit: int, method="-", path="-"):
        return HttpError(413, f"the body is over the limit of {limit} bytes: send a shorter review or "
                              "fewer instances", method, path)

    def path_of(target: str) -> str:
        if target.startswith(("http://", "https://")):  # absolute-form: keep the path
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        return target.split("?", 1)[0]

    def header_dict(pairs) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in pairs:
            key, value = name.decode("latin-1").lower(), value.decode("latin-1").strip()
            if key in headers:
                if key not in ("content-length", "content-type"):
                    headers[key] += ", " + value
                continue
            headers[key] = value
        return headers

    class State:  # per connection (Conn has __slots__: kept on the worker, keyed by the Conn)
        __slots__ = ("parser", "queue", "since", "done_in_feed", "in_message", "headers_done",
                     "method", "path", "pairs", "url", "head_bytes", "body", "length", "error",
                     "headers", "keep", "marked")

    if kind == "httptools":
        import collections

        import httptools

        class Callbacks:
            def __init__(self, worker, st):
                self.w, self.st = worker, st

            def on_message_begin(self):
                st = self.st
                st.in_message, st.headers_done, st.pairs, st.url = True, False, [], b""
                st.body, st.head_bytes, st.error, st.length = bytearray(), 0, None, -1

            def on_url(self, url):
                self.st.url += url

            def on_header(self, name, value):
                self.st.pairs.append((name, value))
                self.st.head_bytes += len(name) + len(value) + 4

            def on_headers_complete(self):
                st, p = self.st, self.st.parser
                st.method = p.get_method().decode("latin-1")
                st.path = path_of(st.url.decode("latin-1"))
                # as serve counts a head: up to the blank line, "name: value" lines (llhttp
                # hands over no raw offsets, so spaces around the colon are not counted)
                st.head_bytes += len(st.method) + len(st.url) + 10
                version = p.get_http_version()
                if version not in ("1.0", "1.1"):
                    st.error = HttpError(400, "malformed request line: expected 'METHOD /path HTTP/1.1'")
                    raise st.error
                if st.head_bytes > head_limit:
                    st.error = HttpError(431, f"request head over {head_limit} bytes")
                    raise st.error
                st.headers = header_dict(st.pairs)
                te = st.headers.get("transfer-encoding", "").lower()
                if te and te != "chunked":
                    st.error = HttpError(400, f"unsupported Transfer-Encoding {te!r}: send a "
                                              "Content-Length or chunked body", st.method, st.path)
                    raise st.error
                if not te:
                    length = int(st.headers.get("content-length") or 0)  # llhttp checked the digits
                    if length > self.w.max_body:
                        st.error = HttpError(413, f"the body is {length} bytes; the limit is "
                                                  f"{self.w.max_body} bytes: send a shorter review or "
                                                  "fewer instances", st.method, st.path)
                        raise st.error
                st.keep = p.should_keep_alive()
                st.headers_done = True

            def on_body(self, data):
                st = self.st
                st.body += data
                if len(st.body) > self.w.max_body:
                    st.error = too_large(self.w.max_body, st.method, st.path)
                    raise st.error

            def on_message_complete(self):
                st = self.st
                st.queue.append((st.method, st.path, st.headers, bytes(st.body), st.keep))
                st.in_message = st.headers_done = False
                st.done_in_feed = True

        def new_state(worker) -> State:
            st = State()
            st.queue, st.since, st.in_message, st.headers_done = collections.deque(), 0, False, False
            st.parser = httptools.HttpRequestParser(Callbacks(worker, st))
            return st

        def feed(worker, conn, st) -> None:
            data = bytes(conn.rbuf)
            conn.rbuf.clear()
            st.done_in_feed = False
            try:
                st.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                if st.error is not None:
                    raise st.error from None
                if "Content-Length overflow" in str(exc):  # more digits than 64 bits hold
                    raise too_large(worker.max_body) from None
                raise HttpError(400, f"malformed request: {exc}") from None
            # bytes since the last complete request, counted per read: what one request may take
            st.since = 0 if st.done_in_feed else st.since + len(data)
            if st.in_message and not st.headers_done and st.since > head_limit:
                raise HttpError(431, f"request head over {head_limit} bytes")
            if st.in_message and st.since > head_limit + worker.max_body + overhead:
                raise too_large(worker.max_body, st.method, st.path)

        def take(worker, conn, st):
            if conn.rbuf:
                feed(worker, conn, st)
            conn.head = (st.method, st.path, st.headers) if st.in_message and st.headers_done else None
            if not st.queue:
                if st.in_message and st.headers_done:
                    worker._maybe_continue(conn, st.headers)
                elif not st.in_message:
                    conn.started = 0.0
                return None
            return st.queue.popleft()

        def holds(st) -> bool:
            return bool(st.queue) or st.in_message

    elif kind == "h11":
        import h11

        def new_state(worker) -> State:
            st = State()
            st.parser = h11.Connection(h11.SERVER, max_incomplete_event_size=head_limit)
            st.in_message, st.headers_done, st.body, st.since = False, False, bytearray(), 0
            return st

        def take(worker, conn, st):
            p = st.parser
            if conn.rbuf:
                p.receive_data(bytes(conn.rbuf))
                conn.rbuf.clear()
            try:
                while True:
                    ev = p.next_event()
                    if ev is h11.NEED_DATA or ev is h11.PAUSED:
                        break
                    if isinstance(ev, h11.Request):
                        st.in_message, st.body = True, bytearray()
                        st.method = ev.method.decode("latin-1")
                        st.path = path_of(ev.target.decode("latin-1"))
                        if ev.http_version not in (b"1.0", b"1.1"):
                            raise HttpError(400, "malformed request line: expected 'METHOD /path HTTP/1.1'")
                        st.headers = header_dict(ev.headers)
                        length = int(st.headers.get("content-length") or 0)
                        if "transfer-encoding" not in st.headers and length > worker.max_body:
                            raise HttpError(413, f"the body is {length} bytes; the limit is "
                                                 f"{worker.max_body} bytes: send a shorter review or "
                                                 "fewer instances", st.method, st.path)
                        st.headers_done = True
                        conn.head = (st.method, st.path, st.headers)
                    elif isinstance(ev, h11.Data):
                        st.body += ev.data
                        if len(st.body) > worker.max_body:
                            raise too_large(worker.max_body, st.method, st.path)
                    elif isinstance(ev, h11.EndOfMessage):
                        keep = p.their_state is not h11.MUST_CLOSE
                        rest = p.trailing_data[0]
                        st.parser = h11.Connection(h11.SERVER, max_incomplete_event_size=head_limit)
                        conn.rbuf += rest  # the next request's bytes, parsed on the next call
                        st.in_message = st.headers_done = False
                        conn.head = None
                        return st.method, st.path, st.headers, bytes(st.body), keep
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
                raise HttpError(status, f"malformed request: {exc}") from None
            if st.in_message:
                if len(p.trailing_data[0]) > 1024:  # a chunk-size line that does not end
                    raise HttpError(400, "malformed chunked body")
                worker._maybe_continue(conn, st.headers)
            elif not p.trailing_data[0]:
                conn.started = 0.0
            return None

        def holds(st) -> bool:
            return st.in_message or bool(st.parser.trailing_data[0])
    else:
        raise ValueError(f"unknown parser {kind!r}")

    def _parse(self, conn):
        st = self._states.get(conn)
        if st is None:
            st = self._states[conn] = new_state(self)
            st.marked = False
        if st.marked and conn.rbuf[:1] == b"\0":
            del conn.rbuf[:1]
        st.marked = False
        got = take(self, conn, st)
        if not conn.rbuf and holds(st):
            # the parser holds a request in progress or waiting: the rest of the loop reads a
            # non-empty rbuf as "not idle, ask again", as it did when rbuf held those bytes
            conn.rbuf += b"\0"
            st.marked = True
        if got is None:
            return None
        method, path, headers, body, keep = got
        started = conn.started or time.monotonic()
        conn.started = time.monotonic() if conn.rbuf else 0.0
        conn.sent_continue = False
        if self.draining or conn.eof:
            keep = False
        conn.inflight = True
        return Request(method, path, headers, body, keep, started)

    def _close(self, conn):
        self._states.pop(conn, None)
        base._close(self, conn)

    def __init__(self, *args, **kwargs):
        base.__init__(self, *args, **kwargs)
        self._states = {}

    return types.new_class(f"{kind.capitalize()}Worker", (base,), {},
                           lambda ns: ns.update(__init__=__init__, _parse=_parse, _close=_close))


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
    if kind in ("ours", *PARSERS):
        entry = ["-m", "model.serve"] if kind == "ours" else [__file__, "serve", kind]
        cmd = [sys.executable, *entry, "--host", "127.0.0.1", "--port", str(port),
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

METRICS = ("p50", "p99", "overhead", "rps", "errors", "cpu_ms_c1", "cpu_ms_c8")


def main() -> None:
    if sys.argv[1:2] == ["serve"]:  # ``bench_serve_design.py serve <parser> <serve flags>``: a candidate
        from model import serve
        serve.Worker = make_worker(sys.argv[2], serve.Worker)
        sys.exit(serve.main(sys.argv[3:]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="model size, repeatable: original (the peer's, "
                   "small) and/or full (the deployed size); default: original")
    p.add_argument("--kinds", default="ours,gthread,sync",
                   help=f"servers, comma-separated, the first is the baseline: ours, gthread, sync, {', '.join(PARSERS)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each throughput run")
    p.add_argument("--latency-requests", type=int, default=300)
    args = p.parse_args()
    kinds = args.kinds.split(",")
    presets = args.preset or ["original"]
    versions = {}
    for name in ("httptools", "h11", "gunicorn"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    print(f"# serve design: presets {', '.join(presets)}, servers {', '.join(kinds)}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"versions {json.dumps(versions)}", flush=True)
    all_medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        reqs = bodies()
        for preset_name in presets:
            model_dir = build_model(Path(tmp) / f"model-{preset_name}", preset_name)
            results = {k: {m: [] for m in METRICS} for k in kinds}
            for rnd in range(args.rounds):
                base_ms = in_process(model_dir, reqs, args.latency_requests)
                order = kinds if rnd % 2 == 0 else kinds[::-1]  # drift within a round hits both ends
                for kind in order:
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
                    for key, value in (("p50", p50), ("p99", p99), ("overhead", p50 - base_ms), ("rps", rps),
                                       ("errors", errors), ("cpu_ms_c1", c1), ("cpu_ms_c8", c8)):
                        results[kind][key].append(value)
                    print(f"{preset_name} round {rnd + 1} {kind:9s} c=1 p50 {p50:6.2f} ms (in-process {base_ms:5.2f}) "
                          f"p99 {p99:6.2f} ms cpu {c1:5.2f} ms/req | c=8 {rps:7.1f} req/s cpu {c8:5.2f} ms/req "
                          f"({errors} errors) | load {os.getloadavg()[0]:.2f}", flush=True)
            med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
            all_medians[preset_name] = med
            print(f"\n{preset_name}: medians of {args.rounds} rounds\n"
                  "| server | c=1 p50 ms | c=1 p99 ms | c=1 overhead ms (p50 - in-process) | c=1 server CPU ms/req "
                  "| c=8 req/s | c=8 server CPU ms/req |\n| --- | --- | --- | --- | --- | --- | --- |")
            for kind in kinds:
                m = med[kind]
                print(f"| {kind} | {m['p50']:.2f} | {m['p99']:.2f} | {m['overhead']:.2f} | {m['cpu_ms_c1']:.2f} "
                      f"| {m['rps']:.0f} | {m['cpu_ms_c8']:.2f} |")
            base = kinds[0]
            for kind in kinds[1:]:
                o, b = med[kind], med[base]
                per_round = [x / y for x, y in zip(results[kind]["rps"], results[base]["rps"])]
                print(f"{kind} vs {base}: throughput x{o['rps'] / b['rps']:.2f} (per round "
                      f"{', '.join(f'{r:.2f}' for r in per_round)}), p50 x{o['p50'] / b['p50']:.2f}, "
                      f"p99 x{o['p99'] / b['p99']:.2f}, overhead {o['overhead'] - b['overhead']:+.3f} ms, "
                      f"CPU per request at c=8 x{o['cpu_ms_c8'] / b['cpu_ms_c8']:.2f}, "
                      f"at c=1 x{o['cpu_ms_c1'] / b['cpu_ms_c1']:.2f}", flush=True)
    print(json.dumps({"load_average_after": os.getloadavg(), "medians": all_medians}))


if __name__ == "__main__":
    main()
