"""Fixtures for the serving tests (handlers, server, container contract).

Loaded from ``tests/conftest.py`` through ``pytest_plugins``. Models here are written directly with
``model.artifact.save`` from seeded random weights (instant, no training); only the container
contract test trains, through the real ``train`` command.

* ``nltk_data``        NLTK_DATA pointing at ../shared/nltk_data unless already set
* ``make_model_dir``   (function) writes a model directory with the given hyperparameters
* ``model_dir``        a small bidirectional model (session)
* ``ServeProcess``     ``python -m model.serve`` on loopback port 0, at the port it reports; ``.stop()``
                       SIGTERMs it. ``hooks=True``: through tests/serve_hooks.py (a slow step on cue)

The one home of the helpers every test module shares: ``free_port`` (for a port nothing listens
on), ``child_env``, ``http``, ``read_answer``/``read_answers`` (raw sockets), ``write_tar_gz``.
"""
from __future__ import annotations

import gzip
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
    if net.ngrams is not None:  # trained from zeros; random here, so that it counts in every score
        torch.nn.init.normal_(net.ngrams.weight.weight, std=0.5)
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


def write_tar_gz(path: Path, files: dict[str, str | bytes]) -> Path:
    """A tar.gz at ``path`` holding ``files`` (member name -> text or bytes), in that order: the one
    archive writer of the tests. Byte for byte reproducible (member and gzip mtime 0, no file name in
    the gzip header): the data stack names its upload by a hash of these bytes."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, text in files.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return path


def read_answers(s: socket.socket, count: int = 1, closed_ok: bool = False) -> list[tuple[int, dict, bytes]]:
    """``count`` HTTP/1.1 answers from a raw socket (pipelined ones too; a ``100 Continue`` counts as
    one): (status, lower-cased headers, body by Content-Length). A connection that closes or is
    reset first fails the test, or with ``closed_ok`` ends the list early."""
    out: list[tuple[int, dict, bytes]] = []
    buf = b""

    def more() -> bool:
        nonlocal buf
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            if closed_ok:
                return False
            raise
        if not chunk:
            assert closed_ok, "the connection closed without a (complete) answer"
            return False
        buf += chunk
        return True

    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            if not more():
                return out
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = 0 if status == 100 else int(headers.get("content-length", "0"))
        while len(buf) < length:
            if not more():
                return out
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


def read_answer(s: socket.socket, closed_ok: bool = False) -> tuple[int, dict, bytes] | None:
    """One HTTP/1.1 answer (see ``read_answers``); None if ``closed_ok`` and it closed first."""
    got = read_answers(s, 1, closed_ok)
    return got[0] if got else None


def free_port() -> int:
    """A port that nothing listens on now. Servers the tests start bind port 0 and report theirs:
    handing this on to a server races with every other process that binds one."""
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
    """The environment of a process a test starts: this one's, with the repository importable, NLTK's
    data found, and nothing that would change the server's settings or reach real AWS."""
    set_nltk_data()
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("SM_MODEL_DIR", "SAGEMAKER_BASE_DIR", "SAGEMAKER_BIND_TO_PORT", "OMP_NUM_THREADS",
                "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SERVE_HOST",
                "SERVE_IDLE_TIMEOUT", "SERVE_READ_TIMEOUT", "SERVE_GRACE", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    env.update(extra)
    return env


class ServeProcess:
    """``python -m model.serve`` on loopback port 0, in its own session; ``.port`` is the one it
    reports in its ``serving`` log line. A command of its own (``cmd``) needs its ``port``.

    ``hooks``: started through tests/serve_hooks.py, where a review holding ``SLOW_STEP`` is scored
    only once the file ``.release`` names exists (``.entered`` appears when it starts waiting)."""

    def __init__(self, log: Path, model_dir: Path | None = None, workers: int = 1,
                 extra: list[str] = (), cmd: list[str] | None = None, env: dict | None = None,
                 wait_status: int | None = 200, port: int | None = None, hooks: bool = False):
        self.log = log
        offset = log.stat().st_size if log.exists() else 0
        env = dict(env or child_env())
        if hooks:
            self.entered, self.release = log.with_suffix(".entered"), log.with_suffix(".release")
            self.signalled = log.with_suffix(".signalled")
            for path in (self.entered, self.release, self.signalled):
                path.unlink(missing_ok=True)
            env.update(SLOW_STEP_ENTERED=str(self.entered), SLOW_STEP_RELEASE=str(self.release),
                       SLOW_STEP_SIGNALLED=str(self.signalled))
        if cmd is None:
            entry = [PYTHON, str(REPO / "tests" / "serve_hooks.py")] if hooks else [PYTHON, "-m", "model.serve"]
            cmd = [*entry, "--host", "127.0.0.1", "--port", str(port or 0), "--workers", str(workers), *extra]
            if model_dir is not None:
                cmd += ["--model-dir", str(model_dir)]
        elif port is None:
            raise ValueError("ServeProcess: a command of its own needs the port it listens on")
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self.port = port or self._reported_port(offset)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"
        if wait_status is not None:
            try:
                self.wait_ping(wait_status)
            except BaseException:
                self.stop()
                raise

    def _reported_port(self, offset: int, timeout: float = 120.0) -> int:
        """The port of the ``serving`` line the server logs once it listens (after ``offset``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log, "rb") as fh:
                fh.seek(offset)
                for line in fh.read().decode(errors="replace").splitlines():
                    if line.startswith("{") and '"serving"' in line:
                        record = json.loads(line)
                        if record.get("event") == "serving":
                            return int(record["port"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode} before it listened:\n"
                                   f"{self.log_text()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"serve logged no serving line in {timeout:.0f}s\n{self.log_text()[-3000:]}")

    @staticmethod
    def wait_for(path: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout:.0f}s"
            time.sleep(0.01)

    def wait_workers(self, count: int, timeout: float = 30.0) -> list[int]:
        """The worker pids once ``count`` are up (a replaced one takes a moment)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == count:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"{count} workers expected, found {self.workers()}")

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
