"""Shared fixtures for local mode, the Lambda proxy, the page and the browser test.

Loaded from ``tests/conftest.py`` through ``pytest_plugins``. Session-scoped and lazy: a fixture
costs nothing until a test asks for it.

* ``tiny_imdb_tgz``   a small aclImdb-layout archive of synthetic, clearly positive/negative reviews
* ``tiny_training``   a model trained on it once per run by the real ``train`` command in a SageMaker
                      job layout (seconds): ``.model_dir``, ``.stdout``, ``.metrics``
* ``tiny_model_dir``  that model's directory
* ``local_mode``      ``scripts/local_mode.py`` (the README's first command) with that model on free ports:
                      ``.page_url`` (page + API through the real Lambda handler), ``.endpoint_url``
* ``serve_endpoint``  ``python -m model.serve`` alone on a free loopback port with that model
* ``local_front``     ``scripts/local_front.py`` in front of ``serve_endpoint`` (the real Lambda handler)
* ``start_front``     (function) scripts/local_front.py's server in this process, in front of a given handler
* ``inprocess_api``   that front with the real Lambda handler and a ``FakeEndpoint``: (url, fake)
* ``load_proxy_handler`` (function) loads ``lambda/proxy/handler.py`` fresh under a given environment
* ``FakeEndpoint``    a stdlib stand-in for the endpoint with scripted answers, for fault tests
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from proctable import group_members, stop_group  # noqa: E402  (group_members re-exported for the tests)
PYTHON = sys.executable
HANDLER_PATH = REPO / "lambda" / "proxy" / "handler.py"
SHARED_NLTK = REPO.parent / "shared" / "nltk_data"

POSITIVE_WORDS = ("wonderful", "excellent", "brilliant", "superb", "masterpiece", "delightful",
                  "beautiful", "fantastic", "enjoyable", "great")
NEGATIVE_WORDS = ("terrible", "awful", "boring", "worst", "waste", "horrible", "dull",
                  "disappointing", "stupid", "mess")
FILLER_WORDS = ("movie", "film", "plot", "actors", "story", "scenes", "director", "cast", "ending",
                "music", "camera", "script", "characters", "screen", "picture", "sequel", "role",
                "studio", "minutes", "dialogue")

POSITIVE_REVIEW = "A wonderful, brilliant film: superb acting and a beautiful, delightful story. A masterpiece."
NEGATIVE_REVIEW = "A terrible, boring mess: awful acting and a dull, stupid story. The worst waste of time."
# A natural review, still clear to the tiny model (boring, mess, awful, waste are in its vocabulary).
NATURAL_NEGATIVE_REVIEW = ("A boring, badly written mess. The plot makes no sense, the acting is awful and the "
                           "jokes fall flat. A complete waste of time.")


# --------------------------------------------------------------------------- helpers

# One free_port and one child_env for every test module (the same environment for every child).
from fixtures_model import ServeProcess, child_env, free_port, write_tar_gz  # noqa: E402,F401


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
              status: int = 200, log: Path | None = None) -> None:
    """Poll ``url`` until it answers ``status``; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last = None
    unhealthy_since = None
    while time.monotonic() < deadline:
        if unhealthy_since and time.monotonic() - unhealthy_since > 10:
            break  # up but answering 503 (e.g. the model cannot be loaded): fail now, not in minutes
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == status:
                    return
                last = r.status
        except urllib.error.HTTPError as exc:
            last = exc.code
            if exc.code == status:
                return
            if exc.code == 503:
                unhealthy_since = unhealthy_since or time.monotonic()
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{url} did not answer {status} (last: {last})\n{tail}")


def start_group(cmd: list[str], log: Path, env: dict[str, str] | None = None,
                cwd: Path = REPO) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (session), output to ``log``."""
    fh = open(log, "ab")
    try:
        return subprocess.Popen(cmd, cwd=cwd, env=env or child_env(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        fh.close()


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def post_json(url: str, payload, timeout: float = 30.0, headers: dict | None = None,
              raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"raw": body.decode("utf-8", "replace")}


# --------------------------------------------------------------------------- synthetic data

# Rare neutral words, most of them outside the tiny vocabulary: the model learns that unknown words
# (ids of <unk>) say nothing, so natural reviews full of words it never saw are still read sensibly.
RARE_WORDS = tuple(f"xq{n}" for n in range(800))


def _review(rng: random.Random, words: tuple[str, ...]) -> str:
    picked = [rng.choice(words) for _ in range(rng.randint(3, 5))]
    picked += [rng.choice(FILLER_WORDS) for _ in range(rng.randint(3, 6))]
    picked += [rng.choice(RARE_WORDS) for _ in range(rng.randint(2, 6))]
    rng.shuffle(picked)
    return "The " + " ".join(picked) + "."


def write_tiny_imdb(path: Path, per_class: dict[str, int] | None = None, seed: int = 7, unlabelled: int = 0) -> Path:
    """An aclImdb-layout tar.gz of synthetic reviews with clearly positive/negative vocabulary
    (and ``unlabelled`` reviews of either kind under aclImdb/train/unsup)."""
    per_class = per_class or {"train": 160, "test": 40}
    rng = random.Random(seed)
    files: dict[str, str] = {}
    for split, count in per_class.items():
        for label, words, ratings in (("pos", POSITIVE_WORDS, (7, 8, 9, 10)),
                                      ("neg", NEGATIVE_WORDS, (1, 2, 3, 4))):
            for _ in range(count):
                text = _review(rng, words)
                files[f"aclImdb/{split}/{label}/{len(files)}_{rng.choice(ratings)}.txt"] = text
    for i in range(unlabelled):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = _review(rng, POSITIVE_WORDS if i % 2 else NEGATIVE_WORDS)
    return write_tar_gz(path, files)


@dataclass(frozen=True)
class TinyTraining:
    """One run of the real ``train`` command as a SageMaker training job runs it (its /opt/ml layout
    under ``job``, the channel holding the tiny archive, string hyperparameters, the test split scored).
    ``stdout`` is what SageMaker's metric definitions scrape; ``metrics`` is the model's metrics.json."""
    job: Path
    model_dir: Path
    stdout: str
    stderr: str

    @property
    def metrics(self) -> dict:
        return json.loads((self.model_dir / "metrics.json").read_text())


TINY_HYPERPARAMETERS = {"preset": "tiny",
                        # One thread: on a small, busy machine two OpenMP threads made each epoch ~100x slower.
                        "workers": "1"}


def train_tiny_job(data: Path, job: Path, hyperparameters: dict | None = None) -> TinyTraining:
    """``python -m model.train --quiet`` in a job layout at ``job`` (see ``TinyTraining``)."""
    (job / "input" / "config").mkdir(parents=True)
    (job / "input" / "data" / "train").mkdir(parents=True)
    (job / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(hyperparameters or TINY_HYPERPARAMETERS))
    (job / "input" / "data" / "train" / data.name).write_bytes(data.read_bytes())
    proc = subprocess.run([PYTHON, "-m", "model.train", "--quiet"], cwd=REPO,
                          env=child_env(SAGEMAKER_BASE_DIR=str(job)), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"tiny training failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return TinyTraining(job=job, model_dir=job / "model", stdout=proc.stdout, stderr=proc.stderr)


class Serve(ServeProcess):
    """A running ``python -m model.serve`` on loopback, one worker (fixtures_model's launcher)."""

    def __init__(self, model_dir: Path, log: Path, port: int | None = None):
        super().__init__(log, model_dir, workers=1, port=port)


class Front:
    """A running ``scripts/local_front.py`` in front of an endpoint URL."""

    def __init__(self, endpoint_url: str, log: Path, port: int | None = None, extra: list[str] = ()):
        self.log = log
        offset = log.stat().st_size if log.exists() else 0
        self.proc = start_group([PYTHON, str(REPO / "scripts" / "local_front.py"), "--port", str(port or 0),
                                 "--endpoint-url", endpoint_url, *extra], log)
        try:
            self.port = port or self._reported_port(offset)
            self.url = f"http://127.0.0.1:{self.port}"
            wait_http(self.url + "/config.json", timeout=30, proc=self.proc, log=log)
        except Exception:
            self.stop()
            raise

    def _reported_port(self, offset: int, timeout: float = 60.0) -> int:
        """The port of the ``local_front: serving ... on http://host:PORT/`` line (port 0 bound)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log, "rb") as fh:
                fh.seek(offset)
                found = re.search(rb"local_front: serving .* on http://[^:/ ]+:(\d+)/", fh.read())
            if found:
                return int(found[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"local_front exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"local_front reported no port in {timeout:.0f}s")

    def stop(self) -> None:
        stop_group(self.proc, timeout=10.0)


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    state: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        state[int(entry.name)] = fields[0]
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if state.get(child) != "Z":
                found.append(child)
            todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].split()[0] != "Z":
            left.append(pid)
    return left


class LocalMode:
    """``scripts/local_mode.py`` as a user runs it, with its stdout collected line by line."""

    READY = "Press Ctrl-C to stop."  # the last line of the banner

    def __init__(self, args: list[str], timeout: float = 120.0, wait: bool = True,
                 background_job: bool = False):
        self.lines: list[str] = []
        self.ready = threading.Event()
        # ``background_job``: started with SIGINT ignored, as a shell starts ``cmd &``.
        ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background_job else None
        self.proc = subprocess.Popen([PYTHON, str(REPO / "scripts" / "local_mode.py"), *args], cwd=REPO,
                                     env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=ignore_sigint)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.page_url = self.endpoint_url = None
        if wait:
            self.wait_ready(timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            words = line.split()
            if line.strip().startswith("Page") and len(words) > 1:
                self.page_url = words[1].rstrip("/")
            if line.strip().startswith("Endpoint") and len(words) > 2:
                self.endpoint_url = words[2].rsplit("/invocations", 1)[0]
            if self.READY in line:
                self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.reader.join(2)
                self.stop()
                raise RuntimeError(f"local mode did not come up (code {self.proc.returncode}):\n{self.output}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.reader.join(5)
        return self.proc.returncode


# --------------------------------------------------------------------------- fake endpoint

class FakeEndpoint:
    """A stdlib HTTP server answering like the endpoint contract, with scripted faults.

    ``mode``: ``ok`` (keyword model), ``status`` (answer ``status`` with ``{"error": message}``),
    ``slow`` (sleep ``delay`` s first), ``garbage`` (200 with a non-JSON body).
    ``requests`` counts invocation requests (retries included).
    """

    def __init__(self):
        self.mode = "ok"
        self.status = 400
        self.message = "bad review"
        self.delay = 0.0
        self.requests = 0
        self.bodies: list[tuple[str, bytes]] = []
        self.connections: list[socket.socket] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                fake.connections.append(self.connection)

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/ping":
                    self._send(200, b"{}")
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not (self.path == "/invocations" or
                        (self.path.startswith("/endpoints/") and self.path.endswith("/invocations"))):
                    self._send(404, b'{"error": "not found"}')
                    return
                fake.requests += 1
                fake.bodies.append((self.headers.get("Content-Type", ""), data))
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                if fake.mode == "status":
                    self._send(fake.status, json.dumps({"error": fake.message}).encode())
                    return
                if fake.mode == "garbage":
                    self._send(200, b"<html>oops</html>", "text/html")
                    return
                try:
                    payload = json.loads(data)
                    text = payload["text"]
                except (ValueError, KeyError, TypeError):
                    self._send(400, b'{"error": "malformed JSON"}')
                    return
                words = text.lower().replace(",", " ").replace(".", " ").split()
                pos = sum(w in POSITIVE_WORDS for w in words)
                neg = sum(w in NEGATIVE_WORDS for w in words)
                score = round((pos + 1) / (pos + neg + 2), 4)
                answer = {"label": "positive" if score >= 0.5 else "negative", "score": score}
                if payload.get("explain"):
                    answer["explanation"] = [
                        {"word": w, "weight": 0.2 if w in POSITIVE_WORDS else -0.2 if w in NEGATIVE_WORDS
                         else None} for w in words]
                try:
                    self._send(200, json.dumps(answer).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop listening and cut open keep-alive connections: the endpoint is gone."""
        self.server.shutdown()
        self.server.server_close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def local_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="session")
def tiny_imdb_tgz(local_tmp) -> Path:
    return write_tiny_imdb(local_tmp / "tiny_aclImdb.tar.gz")


@pytest.fixture(scope="session")
def tiny_training(local_tmp, tiny_imdb_tgz) -> TinyTraining:
    """The tiny model, trained once per test run: every test that needs a trained model uses it
    (tests/test_training.py reads the same run for the training contract)."""
    return train_tiny_job(tiny_imdb_tgz, local_tmp / "tiny-job")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_training) -> Path:
    return tiny_training.model_dir


@pytest.fixture(scope="session")
def local_mode(request, local_tmp):
    """The whole local chain, started as a user starts it. Tests must not stop it.

    The tiny model, or the model in ``$LOCAL_MODE_MODEL_DIR`` (e.g. ``.local/model`` trained by
    ``make local``: the README's screenshots are taken that way). Teardown stops it the way ``make``
    or CI does (SIGTERM) and checks that nothing it started is left.
    """
    override = os.environ.get("LOCAL_MODE_MODEL_DIR")
    model_dir = Path(override).resolve() if override else request.getfixturevalue("tiny_model_dir")
    lm = LocalMode(["--model-dir", str(model_dir), "--port", "0", "--endpoint-port", "0",
                    "--log-dir", str(local_tmp / "local-mode-logs"), "--workers", "1"])
    started = descendants(lm.proc.pid)
    yield lm
    code = lm.stop(signal.SIGTERM)
    assert code == 0, lm.output
    deadline = time.monotonic() + 10
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(started) == [], f"local mode left {alive(started)} running"


@pytest.fixture(scope="session")
def serve_endpoint(local_tmp, tiny_model_dir):
    serve = Serve(tiny_model_dir, local_tmp / "serve.log")
    yield serve
    serve.stop()


@pytest.fixture(scope="session")
def local_front(local_tmp, serve_endpoint):
    front = Front(serve_endpoint.url, local_tmp / "front.log")
    yield front
    front.stop()


@pytest.fixture
def fake_endpoint():
    fake = FakeEndpoint()
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def local_front_module():
    return load_module("local_front_in_process", REPO / "scripts" / "local_front.py")


@pytest.fixture
def start_front(local_front_module):
    """(function) ``start_front(handler) -> url``: scripts/local_front.py's server in this process, in
    front of ``handler`` (any callable taking a Lambda event and context); stopped at teardown."""
    servers = []

    def start(handler) -> str:
        server = local_front_module.make_server("127.0.0.1", 0, REPO / "web", handler, quiet=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def inprocess_api(fake_endpoint, load_proxy_handler, start_front):
    """The local API in this process: the front -> the real Lambda handler -> boto3 -> ``fake_endpoint``;
    (url, fake_endpoint)."""
    return start_front(load_proxy_handler(fake_endpoint.url).handler), fake_endpoint


@pytest.fixture
def load_proxy_handler(monkeypatch):
    """Load ``lambda/proxy/handler.py`` fresh (its client is built at import) under ``env``."""
    counter = iter(range(1_000_000))

    def load(endpoint_url: str | None = None, **env: str):
        base = {"ENDPOINT_NAME": "test-endpoint", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        base.update(env)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("ALLOWED_ORIGIN", raising=False)
        for key, value in base.items():
            monkeypatch.setenv(key, value)
        if endpoint_url:
            monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint_url)
        else:
            monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
        return load_module(f"proxy_handler_under_test_{next(counter)}", HANDLER_PATH)

    return load
