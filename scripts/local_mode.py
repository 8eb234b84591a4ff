#!/usr/bin/env python3
"""Local mode (`make local`): the whole service on this machine, no AWS account, no Docker.

1. finds the IMDB data (``--data`` / ``$IMDB_DATA``, the shared copy beside the checkout,
   ``data/aclImdb_v1.tar.gz``, else ``python -m model.download`` with its checksum);
2. trains a model with ``python -m model.train`` if ``--model-dir`` holds none (quick preset; ``--full``
   for the full one, also when the model there is not; ``--retrain`` to train again), else reuses it
   and says which it is;
3. starts the endpoint server (``python -m model.serve``) on loopback and waits for ``GET /ping``;
4. starts the local front (``scripts/local_front.py``): the page from ``web/``, a ``config.json``
   pointing at the local API, and ``POST /predict`` through the real Lambda handler in ``lambda/``,
   which reaches the endpoint with boto3 exactly as in the cloud;
5. prints the URL and a few commands to try; Ctrl-C (or SIGTERM) stops everything it started.
"""
from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from proctable import PROC as PROC_TABLE, group_members

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHARED_DATA = REPO.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
SHARED_NLTK = REPO.parent / "shared" / "nltk_data"
CACHED_DATA = REPO / "data" / "aclImdb_v1.tar.gz"
MODEL_FILES = ("config.json", "vocab.json", "model.safetensors")
DEFAULT_FRONT_PORT = 8000
DEFAULT_ENDPOINT_PORT = 8080
STOP_GRACE_S = 10.0
LOGS_KEPT = 3  # earlier runs' logs kept beside the current one: serve.log.1 is the previous run's


class LocalModeError(Exception):
    """A problem the user can act on; printed without a traceback."""


def say(message: str = "") -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"local mode: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment

def check_environment() -> None:
    missing = [m for m in ("torch", "boto3", "safetensors", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalModeError(
            f"this Python ({PYTHON}) lacks {', '.join(missing)}. Run `make local`, which creates .venv "
            "and installs the dependencies first (or `make setup`, then `.venv/bin/python "
            "scripts/local_mode.py`).")
    if not (REPO / "model" / "serve.py").is_file():
        raise LocalModeError(f"{REPO / 'model' / 'serve.py'} is missing: this checkout is incomplete")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if "NLTK_DATA" not in env and SHARED_NLTK.is_dir():
        env["NLTK_DATA"] = str(SHARED_NLTK)
    return env


# --------------------------------------------------------------------------- ports

def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1", avoid: set[int] = frozenset()) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def choose_port(requested: int | None, default: int, what: str, flag: str, host: str = "127.0.0.1",
                avoid: set[int] = frozenset()) -> int:
    """The requested port (an error if busy), or the default (another free one if busy)."""
    if requested is not None:
        if requested == 0:
            return free_port(host, avoid)
        if not 1 <= requested <= 65535:
            raise LocalModeError(f"{flag} {requested}: not a port number (1-65535, or 0 for any free port)")
        if requested in avoid or port_in_use(requested, host):
            raise LocalModeError(
                f"port {requested} ({what}) is already in use on {host}: another local mode or another "
                f"program holds it. Stop it, or pick another port with {flag} N ({flag} 0 = any free port).")
        return requested
    if default in avoid or port_in_use(default, host):
        port = free_port(host, avoid)
        warn(f"port {default} ({what}) is in use; using free port {port} instead ({flag} N to choose)")
        return port
    return default


# --------------------------------------------------------------------------- data and model

def model_complete(model_dir: Path) -> bool:
    return all((model_dir / name).is_file() for name in MODEL_FILES)


def preset_of(hyperparameters: dict) -> str | None:
    """The preset a model's stored hyperparameters are, or None (``--set`` changed something)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from model.hyperparameters import PRESETS, preset

    # ``workers`` is how many threads trained it, not part of the model.
    mine = {k: v for k, v in hyperparameters.items() if k != "workers"}
    for name in PRESETS:
        if {k: v for k, v in preset(name).to_dict().items() if k != "workers"} == mine:
            return name
    return None


def describe_model(model_dir: Path) -> str:
    """``quick preset, 87.5% on the IMDB test split, trained 2026-12-01 08:52``, as far as the
    model's config.json and metrics.json tell."""
    parts = []
    try:
        config = json.loads((model_dir / "config.json").read_text())
        name = preset_of(config.get("hyperparameters") or {})
        parts.append(f"{name} preset" if name else "custom hyperparameters")
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    metrics_file = model_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text())
        if "test" in metrics:
            parts.append(f"{metrics['test']['accuracy'] * 100:.1f}% on the IMDB test split")
        else:
            parts.append(f"{metrics['validation']['accuracy'] * 100:.1f}% on its validation split "
                         "(test split not scored)")
        parts.append("trained " + time.strftime("%Y-%m-%d %H:%M", time.localtime(metrics_file.stat().st_mtime)))
    except (OSError, ValueError, TypeError, KeyError):
        parts.append("no metrics.json")
    return ", ".join(parts)


def training_reason(args: argparse.Namespace, model_dir: Path) -> str | None:
    """Why a model must be trained first, or None to serve the one in ``model_dir``."""
    if not model_complete(model_dir):
        return f"No model in {model_dir}"
    if args.retrain:
        return "--retrain"
    if args.full:  # asked for the full model: a quick one already there is not it
        try:
            hyperparameters = json.loads((model_dir / "config.json").read_text()).get("hyperparameters") or {}
        except (OSError, ValueError, AttributeError):
            hyperparameters = {}
        name = preset_of(hyperparameters)
        if name != "full":
            return f"--full, and the model there is {f'the {name} preset' if name else 'not the full preset'}"
    return None


def rotate_logs(path: Path, keep: int = LOGS_KEPT) -> None:
    """``serve.log`` -> ``serve.log.1`` -> ... -> ``serve.log.<keep>``: a run never overwrites the
    log of the run before it, which is the one to read when something went wrong."""
    for n in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{n - 1}") if n > 1 else path
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n}"))


def find_data(explicit: str | None) -> Path:
    """The IMDB archive (or extracted folder) to train on; downloads it as a last resort."""
    source = explicit or os.environ.get("IMDB_DATA")
    if source:
        path = Path(source).expanduser()
        if not path.exists():
            where = "--data" if explicit else "IMDB_DATA"
            raise LocalModeError(f"{where}={source}: no such file or folder. Point it at aclImdb_v1.tar.gz "
                                 "or an extracted aclImdb/ folder.")
        return path
    for candidate in (SHARED_DATA, CACHED_DATA):
        if candidate.is_file():
            return candidate
    say("No IMDB data found locally: fetching the original archive (84 MB, checksum verified) with "
        "`python -m model.download` ...")
    proc = subprocess.run([PYTHON, "-m", "model.download"], cwd=REPO, env=child_env(),
                          stdout=subprocess.PIPE, text=True)
    lines = [line.strip() for line in (proc.stdout or "").splitlines() if line.strip()]
    if proc.returncode != 0 or not lines or not Path(lines[-1]).exists():
        raise LocalModeError(
            "could not obtain the IMDB data (see the message above). Download aclImdb_v1.tar.gz from "
            "https://ai.stanford.edu/~amaas/data/sentiment/ on a machine with network access and run "
            f"again with --data PATH (or IMDB_DATA=PATH), or copy it to {CACHED_DATA}.")
    return Path(lines[-1])


# --------------------------------------------------------------------------- processes

def _die_with_parent() -> None:
    """In the child: get SIGTERM if local mode itself dies without cleaning up (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> list[int]:
    if not PROC_TABLE.is_dir():  # not Linux: best effort with killpg(0)
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    return group_members(pgid)


class Child:
    """A command in its own process group, so that stopping it stops everything it started."""

    def __init__(self, name: str, cmd: list[str], log: Path | None = None):
        self.name = name
        self.log = log
        out = open(log, "wb") if log else None
        try:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT if out else None,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            if out:
                out.close()
        self.pgid = self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log or not self.log.is_file():
            return ""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)

    def stop(self) -> list[int]:
        """SIGTERM the group, wait, SIGKILL what is left; returns pids that would not die."""
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            if not _group_alive(self.pgid) and self.proc.poll() is not None:
                break
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                if self.proc.returncode is not None and not _group_alive(self.pgid):
                    break
                time.sleep(0.05)
        try:
            self.proc.wait(1)
        except subprocess.TimeoutExpired:
            pass
        return _group_alive(self.pgid)


def wait_ready(child: Child, url: str, timeout: float, what: str, unhealthy_grace: float = 10.0) -> None:
    """Poll ``url`` until 200; give up early when the child exits or keeps answering 503."""
    deadline = time.monotonic() + timeout
    last: object = None
    unhealthy_since = None
    while time.monotonic() < deadline:
        if not child.running():
            raise LocalModeError(f"{what} exited (code {child.proc.returncode}) while starting; its log "
                                 f"({child.log}) ends with:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
                last = r.status
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = json.loads(exc.read() or b"{}").get("error", "")
            except (ValueError, AttributeError, OSError):
                pass
            last = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
            if exc.code == 503:  # up, but cannot load the model: no point waiting for minutes
                unhealthy_since = unhealthy_since or time.monotonic()
                if time.monotonic() - unhealthy_since > unhealthy_grace:
                    raise LocalModeError(f"{what} is up but not healthy ({last}). Retrain with --retrain "
                                         f"if the model is damaged; its log: {child.log}")
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise LocalModeError(f"{what} did not become ready within {timeout:.0f}s ({url}: {last}); its log "
                         f"({child.log}) ends with:\n{child.log_tail()}")


def shown_python() -> str:
    try:
        return str(Path(PYTHON).relative_to(REPO))
    except ValueError:
        return PYTHON


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="local_mode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="IMDB archive (aclImdb_v1.tar.gz) or extracted folder "
                                  "(default: $IMDB_DATA, ../shared/data, data/, else download)")
    p.add_argument("--model-dir", type=Path, default=REPO / ".local" / "model",
                   help="model to serve; trained there first if missing (default: .local/model)")
    p.add_argument("--full", action="store_true", help="serve a model of the full preset (slower to train, "
                                                         "better), training it if the one there is not")
    p.add_argument("--retrain", action="store_true", help="train again even if a model exists")
    p.add_argument("--port", type=int, help=f"port of the page and API (default {DEFAULT_FRONT_PORT}, or a "
                                            "free one if busy; 0 = any free port)")
    p.add_argument("--endpoint-port", type=int, help=f"port of the endpoint server (default "
                                                     f"{DEFAULT_ENDPOINT_PORT}, or a free one if busy)")
    p.add_argument("--host", default="127.0.0.1", help="address of the page and API (default: loopback)")
    p.add_argument("--workers", type=int, help="endpoint server worker processes (default: serve's own)")
    p.add_argument("--log-dir", type=Path, default=REPO / ".local" / "logs")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for the servers")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    check_environment()
    front_port = choose_port(args.port, DEFAULT_FRONT_PORT, "page and API", "--port", args.host)
    endpoint_port = choose_port(args.endpoint_port, DEFAULT_ENDPOINT_PORT, "endpoint", "--endpoint-port",
                                avoid={front_port})
    model_dir = args.model_dir.resolve()

    reason = training_reason(args, model_dir)
    if reason:
        data = find_data(args.data)
        preset = "full" if args.full else "quick"
        say(f"{reason}: training a model ({preset} preset) on {data} into {model_dir} ...")
        if preset == "quick":
            say("  (the quick preset takes about 4 min on 2 CPU cores; `--full` trains the model card's, 10-11 min)")
        trainer = Child("train", [PYTHON, "-m", "model.train", "--data", str(data), "--model-dir",
                                  str(model_dir), "--preset", preset])
        try:
            code = trainer.proc.wait()
        finally:
            trainer.stop()
        if code != 0:
            raise LocalModeError(f"training failed (exit code {code}); see the message above")
        if not model_complete(model_dir):
            raise LocalModeError(f"training finished but {model_dir} holds no complete model")
    else:
        say(f"Using the model in {model_dir}: {describe_model(model_dir)}")
        say("  (--retrain trains a new one; --full the full preset, the model card's)")

    args.log_dir.mkdir(parents=True, exist_ok=True)
    for name in ("serve.log", "front.log"):
        rotate_logs(args.log_dir / name)
    children: list[Child] = []
    try:
        serve_cmd = [PYTHON, "-m", "model.serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
                     "--port", str(endpoint_port)]
        if args.workers:
            serve_cmd += ["--workers", str(args.workers)]
        serve = Child("endpoint server", serve_cmd, args.log_dir / "serve.log")
        children.append(serve)
        endpoint_url = f"http://127.0.0.1:{endpoint_port}"
        say(f"Starting the endpoint server on {endpoint_url} ...")
        wait_ready(serve, endpoint_url + "/ping", args.ready_timeout, "the endpoint server")

        front = Child("local front", [PYTHON, str(REPO / "scripts" / "local_front.py"), "--host", args.host,
                                      "--port", str(front_port), "--endpoint-url", endpoint_url],
                      args.log_dir / "front.log")
        children.append(front)
        shown_host = "127.0.0.1" if args.host in ("127.0.0.1", "0.0.0.0", "") else args.host
        page = f"http://{shown_host}:{front_port}/"
        wait_ready(front, page + "config.json", 60, "the local front")

        say("")
        say("Local mode is running.")
        say(f"  Page      {page}")
        say(f"  API       POST {page}predict  (lambda/proxy/handler.py, as behind API Gateway)")
        say(f"  Endpoint  POST {endpoint_url}/invocations  (model.serve, as in the SageMaker container)")
        say(f"  Model     {model_dir}")
        say(f"  Logs      {args.log_dir / 'serve.log'}, {args.log_dir / 'front.log'}  (earlier runs': .1 to "
            f".{LOGS_KEPT})")
        say("")
        say("Try:")
        say(f"  curl -s {page}predict -H 'Content-Type: application/json' \\")
        say("       -d '{\"text\": \"A wonderful, moving film with a superb cast.\", \"explain\": true}'")
        say(f"  curl -s {endpoint_url}/invocations -H 'Content-Type: text/plain' "
            "--data-binary 'Dull and far too long.'")
        say(f"  {shown_python()} scripts/predict.py --url {page.rstrip('/')} --explain "
            "\"A wonderful, moving film.\"")
        say("")
        say("Press Ctrl-C to stop.")

        while True:
            for child in children:
                if not child.running():
                    raise LocalModeError(f"the {child.name} stopped unexpectedly (code {child.proc.returncode});"
                                         f" its log ({child.log}) ends with:\n{child.log_tail()}")
            time.sleep(0.5)
    finally:
        # Stop in reverse order (front, then endpoint); a second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if children:
            say("\nStopping ...")
        leftovers = []
        for child in reversed(children):
            leftovers += child.stop()
        if children:
            if leftovers:
                warn(f"could not stop processes {leftovers}; kill them by hand")
            else:
                say("Stopped every process local mode started.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Explicitly, also for SIGINT: a shell starts background jobs with SIGINT ignored, and Python then
    # would not turn it into KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except LocalModeError as exc:
        warn(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
