"""Fixtures for the serving tests (handlers, server, container contract).

Loaded from ``tests/conftest.py`` through ``pytest_plugins``. Models here are written directly with
``model.artifact.save`` from seeded random weights (instant, no training); only the container
contract test trains, through the real ``train`` command.

* ``nltk_data``        NLTK_DATA pointing at ../shared/nltk_data unless already set
* ``make_model_dir``   (function) writes a model directory with the given hyperparameters
* ``model_dir``        a small bidirectional model (session)
* ``ServeProcess``     ``python -m model.serve`` on a free loopback port; ``.stop()`` SIGTERMs it
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from proctable import children  # noqa: E402
SHARED_NLTK = REPO.parent / "shared" / "nltk_data"
PYTHON = sys.executable

WORDS = ("wonderful excellent brilliant superb masterpiece delightful beautiful fantastic enjoyable "
         "great terrible awful boring worst waste horrible dull disappointing stupid mess movie film "
         "plot actors story scenes director cast ending music camera script characters screen "
         "picture sequel role studio minutes dialogue acting performance").split()


def set_nltk_data() -> None:
    if SHARED_NLTK.is_dir():
        os.environ.setdefault("NLTK_DATA", str(SHARED_NLTK))


@pytest.fixture(scope="session")
def nltk_data() -> str | None:
    set_nltk_data()
    return os.environ.get("NLTK_DATA")


def write_model_dir(path: Path, seed: int = 0, **overrides) -> Path:
    """A complete model directory with seeded random weights (no training)."""
    import torch

    from model import artifact
    from model.hyperparameters import Hyperparameters
    from model.network import LSTMClassifier
    from model.preprocess import Preprocessor
    from model.vocab import Vocabulary

    set_nltk_data()
    hp = Hyperparameters(**{"preprocessing": "negation", "vocab_size": 200, "max_len": 64,
                            "embedding_dim": 16, "hidden_dim": 16, "num_layers": 1,
                            "bidirectional": True, "dropout": 0.0, **overrides})
    pre = Preprocessor.create(hp.preprocessing)
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(50)]
    vocab = Vocabulary.build((pre.tokens(r) for r in corpus), hp.vocab_size)
    torch.manual_seed(seed)
    net = LSTMClassifier.from_hyperparameters(hp, len(vocab))
    artifact.save(path, net, vocab, pre, hp)
    return path


@pytest.fixture(scope="session")
def make_model_dir(tmp_path_factory, nltk_data):
    counter = iter(range(10_000))

    def make(**overrides) -> Path:
        return write_model_dir(tmp_path_factory.mktemp(f"model{next(counter)}"), **overrides)
    return make


@pytest.fixture(scope="session")
def model_dir(make_model_dir) -> Path:
    return make_model_dir()


def write_tar_gz(path: Path, files: dict[str, str]) -> Path:
    """A tar.gz at ``path`` holding ``files`` (member name -> text)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def read_answer(s: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 answer from a raw socket: status, lower-cased headers, body (by Content-Length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "the connection closed without an answer"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = s.recv(65536)
        assert chunk, "the connection closed in the middle of an answer"
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, ctype: str | None = None,
         timeout: float = 30.0, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def child_env(**extra: str) -> dict[str, str]:
    set_nltk_data()
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("SM_MODEL_DIR", "SAGEMAKER_BASE_DIR", "SAGEMAKER_BIND_TO_PORT", "OMP_NUM_THREADS",
                "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        env.pop(key, None)
    env.update(extra)
    return env


class ServeProcess:
    """``python -m model.serve`` (or any command) on a free loopback port, in its own session."""

    def __init__(self, log: Path, model_dir: Path | None = None, workers: int = 1,
                 extra: list[str] = (), cmd: list[str] | None = None, env: dict | None = None,
                 wait_status: int | None = 200, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        if cmd is None:
            cmd = [PYTHON, "-m", "model.serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers), *extra]
            if model_dir is not None:
                cmd += ["--model-dir", str(model_dir)]
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env or child_env(), stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        if wait_status is not None:
            try:
                self.wait_ping(wait_status)
            except BaseException:
                self.stop()
                raise

    def wait_ping(self, status: int = 200, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                last = http("GET", self.url + "/ping", timeout=5)[0]
                if last == status:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"/ping did not answer {status} in {timeout:.0f}s (last: {last})\n"
                           f"{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode
