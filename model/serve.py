"""`serve`: SageMaker's hosting contract on gunicorn, with a worker made for this model.

    serve [--model-dir DIR] [--host HOST] [--port PORT] [--workers N] [--timeout SECONDS] ...

Routes: ``GET /ping`` (200 once the model is loaded; 503 with the reason when it cannot be),
``POST /invocations`` and ``POST /endpoints/<name>/invocations`` (the SageMaker-runtime path, which
local mode reaches through boto3), answered by ``model.inference``'s handlers; errors are
``{"error": "..."}`` with the contract's status (docs/architecture.md).

Settings, as SageMaker's own toolkits read them (flags win):
  SAGEMAKER_BIND_TO_PORT          port (8080)
  SAGEMAKER_MODEL_SERVER_WORKERS  worker processes (one per CPU)
  SAGEMAKER_MODEL_SERVER_TIMEOUT  seconds one batch may take before its worker is replaced (60)
  SM_MODEL_DIR                    the model (else $SAGEMAKER_BASE_DIR/model, else /opt/ml/model)
  OMP_NUM_THREADS                 torch threads per worker (CPUs / workers)
  SERVE_HOST                      address to listen on (0.0.0.0; tests and local runs: 127.0.0.1)
  SERVE_IDLE_TIMEOUT              seconds a keep-alive connection may wait with nothing in flight (75)
  SERVE_READ_TIMEOUT              seconds a request may take to arrive, once started (30): then 408
  SERVE_GRACE                     seconds after SIGTERM for the workers to finish (30, whole seconds
                                  rounded up): then SIGKILL
  SERVE_MAX_REQUESTS              requests a worker answers before it drains and is replaced (0: never)
  SERVE_MAX_REQUESTS_JITTER       up to this many more, drawn per worker (0)

Design (docs/architecture.md, "Serving"). gunicorn's arbiter is the master: this module binds the
port, loads the model once (torch imported, weights read, kernels set up), then hands gunicorn the
socket and the loaded model (``preload_app``), so the workers it forks share the weights
copy-on-write and a replaced worker is up in milliseconds. gunicorn replaces a worker that dies,
kills one whose heartbeat stops for longer than the timeout (a worker beats before every batch, so
the timeout is what one batch may take), drains on SIGTERM within the grace, and recycles a worker
after --max-requests. What this module adds to gunicorn's arbiter (``Supervisor``): the timeout in
fractions of a second with a JSON log line, a back-off for a worker that keeps dying, and a slot per
worker on the board that balances connections. The worker, its HTTP parsing (httptools) and the
routes are in model/serve_worker.py. Every request gets one JSON log line on stdout: method, path,
status, ms, bytes; gunicorn's own messages are JSON lines too.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from . import serve_worker
from .jsonlog import log
from .serve_worker import MAX_CHUNKED_OVERHEAD, MAX_HEADER_BYTES  # noqa: F401 - the documented limits

IDLE_TIMEOUT_S = 75.0          # default: a keep-alive connection with nothing in flight
READ_TIMEOUT_S = 30.0          # default: a request must arrive completely within this, once started
GRACE_S = 30.0                 # default: after SIGTERM, how long workers may finish what they have
STABLE_S = 5.0                 # a worker that lived this long did not crash-loop: its back-off resets


# --------------------------------------------------------------------------- configuration

class Config:
    def __init__(self, model_dir: str, host: str, port: int, workers: int, timeout: float,
                 threads: int, idle_timeout: float = IDLE_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S, grace: float = GRACE_S,
                 max_requests: int = 0, max_requests_jitter: int = 0):
        self.model_dir, self.host, self.port = model_dir, host, port
        self.workers, self.timeout, self.threads = workers, timeout, threads
        self.idle_timeout, self.read_timeout, self.grace = idle_timeout, read_timeout, grace
        self.max_requests, self.max_requests_jitter = max_requests, max_requests_jitter

    @classmethod
    def from_args(cls, argv: list[str] | None = None, env: dict[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        p = argparse.ArgumentParser(prog="serve", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--model-dir", help="the model directory written by `train`")
        p.add_argument("--host", help="address to listen on (default $SERVE_HOST or 0.0.0.0)")
        p.add_argument("--port", type=int, help="port (default $SAGEMAKER_BIND_TO_PORT or 8080)")
        p.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
        p.add_argument("--timeout", type=float, help="seconds a request may take (default 60)")
        p.add_argument("--idle-timeout", type=float, help="seconds an idle keep-alive connection is kept "
                                                          f"(default $SERVE_IDLE_TIMEOUT or {IDLE_TIMEOUT_S:g})")
        p.add_argument("--read-timeout", type=float, help="seconds a request may take to arrive "
                                                          f"(default $SERVE_READ_TIMEOUT or {READ_TIMEOUT_S:g})")
        p.add_argument("--grace", type=float, help="seconds after SIGTERM before workers are killed "
                                                   f"(default $SERVE_GRACE or {GRACE_S:g})")
        p.add_argument("--max-requests", type=int, help="requests a worker answers before it is replaced "
                                                        "(default $SERVE_MAX_REQUESTS or 0: never)")
        p.add_argument("--max-requests-jitter", type=int,
                       help="up to this many more, drawn per worker, so workers are not replaced together "
                            "(default $SERVE_MAX_REQUESTS_JITTER or 0)")
        args = p.parse_args(argv)

        def number(flag, name: str, default, kind=int, minimum=1, option=None):
            if flag is not None:
                value, source = flag, option or f"--{name.lower()}"
            elif env.get(name, "").strip():
                source = name
                try:
                    value = kind(env[name].strip())
                except ValueError:
                    p.error(f"{name}={env[name]!r} is not a valid {kind.__name__}")
            else:
                return default
            if value < minimum:
                p.error(f"{source} must be >= {minimum}, got {value}")
            return value

        cpus = _cpu_count()
        port = number(args.port, "SAGEMAKER_BIND_TO_PORT", 8080, minimum=0, option="--port")
        if port > 65535:
            p.error(f"port {port} is out of range")
        workers = number(args.workers, "SAGEMAKER_MODEL_SERVER_WORKERS", cpus, option="--workers")
        timeout = number(args.timeout, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0, kind=float, minimum=0.001,
                         option="--timeout")
        threads = number(None, "OMP_NUM_THREADS", max(1, cpus // workers))
        idle = number(args.idle_timeout, "SERVE_IDLE_TIMEOUT", IDLE_TIMEOUT_S, kind=float,
                      minimum=0.001, option="--idle-timeout")
        read = number(args.read_timeout, "SERVE_READ_TIMEOUT", READ_TIMEOUT_S, kind=float,
                      minimum=0.001, option="--read-timeout")
        grace = number(args.grace, "SERVE_GRACE", GRACE_S, kind=float, minimum=0, option="--grace")
        max_requests = number(args.max_requests, "SERVE_MAX_REQUESTS", 0, minimum=0,
                              option="--max-requests")
        jitter = number(args.max_requests_jitter, "SERVE_MAX_REQUESTS_JITTER", 0, minimum=0,
                        option="--max-requests-jitter")
        model_dir = (args.model_dir or env.get("SM_MODEL_DIR")
                     or os.path.join(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "model"))
        host = args.host or env.get("SERVE_HOST", "").strip() or "0.0.0.0"
        return cls(model_dir, host, port, workers, timeout, threads, idle, read, grace, max_requests, jitter)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- supervision (gunicorn)

def respawn_delay(failures: int) -> float:
    """Seconds before a worker that died is replaced, after ``failures`` short lives in a row.

    The first is replaced at once (a kill, an out-of-memory); a worker that keeps dying (a model that
    crashes every worker) is replaced after 0.5, 1, 2, 4, 8, then every 10 s, so a crash loop cannot
    spin the CPU the healthy workers need (gunicorn alone would respawn it at once, forever)."""
    return 0.0 if failures <= 1 else min(10.0, 0.5 * 2 ** (failures - 2))


class Served:
    """What the master loads once and every worker shares: gunicorn's ``app.wsgi()`` for our worker."""

    def __init__(self, settings: Config, model, load_error: str | None):
        self.settings, self.model, self.load_error = settings, model, load_error
        self.board = serve_worker.new_board(settings.workers)


class Supervisor(Arbiter):
    """gunicorn's arbiter (fork, reap, replace, signals, graceful stop, recycling) with three
    changes: the timeout in fractions of a second, logged as one JSON line and ended with SIGKILL
    (gunicorn's SIGABRT would only be handled once the batch returns); a back-off for a worker that
    keeps dying (``sleep`` wakes when a replacement is due); a fixed slot per worker on the
    balancing board. SIGHUP, gunicorn's reload, is ignored."""

    def __init__(self, app: "Application"):
        self.served = app.served
        n = self.served.settings.workers
        self.slot_pid: list[int] = [0] * n
        self.started_at = [0.0] * n
        self.failures = [0] * n
        self.due = [0.0] * n       # when a free slot may get a worker again
        self.next_slot = 0
        self.stopping = False
        super().__init__(app)

    # slots: pre_fork and child_exit are gunicorn's hooks around each worker's life
    def free_slots(self, now: float) -> list[int]:
        return [s for s, pid in enumerate(self.slot_pid) if not pid and self.due[s] <= now]

    def spawn_workers(self) -> None:
        for slot in self.free_slots(time.monotonic())[:self.num_workers - len(self.WORKERS)]:
            self.next_slot = slot
            self.slot_pid[slot] = self.spawn_worker()  # returns in the master only

    def before_fork(self, worker) -> None:
        worker.slot = self.next_slot
        serve_worker.clear_slot(self.served.board, worker.slot)
        self.started_at[worker.slot] = time.monotonic()

    def worker_gone(self, worker) -> None:
        slot = worker.slot
        if self.slot_pid[slot] != worker.pid:
            return
        self.slot_pid[slot] = 0
        planned = serve_worker.left_on_purpose(self.served.board, slot)  # drained: recycled, orphaned
        serve_worker.clear_slot(self.served.board, slot)  # its connections went with it
        if self.stopping:
            return
        lived = time.monotonic() - self.started_at[slot]
        self.failures[slot] = 0 if planned or lived >= STABLE_S else self.failures[slot] + 1
        delay = respawn_delay(self.failures[slot])
        self.due[slot] = time.monotonic() + delay
        log("info" if planned else "error", "worker_recycled" if planned else "worker_exited",
            worker_pid=worker.pid, lived_s=round(lived, 2), replace_in_s=delay)

    def sleep(self) -> None:
        # gunicorn sleeps up to 1 s between its checks; a replacement due sooner is not kept waiting
        now = time.monotonic()
        waits = [d - now for s, d in enumerate(self.due) if not self.slot_pid[s] and d > now]
        timeout = max(0.01, min([0.5, *waits]))
        try:
            ready = select.select([self.PIPE[0]], [], [], timeout)
            if ready[0]:
                while os.read(self.PIPE[0], 1):
                    pass
        except (BlockingIOError, InterruptedError):
            pass

    def murder_workers(self) -> None:
        timeout = self.served.settings.timeout
        for pid, worker in list(self.WORKERS.items()):
            try:
                stale = time.monotonic() - worker.tmp.last_update()
            except (OSError, ValueError):
                continue
            if stale > timeout and not worker.aborted:
                worker.aborted = True
                log("error", "worker_timeout", worker_pid=pid, busy_s=round(stale, 1), timeout_s=timeout)
                self.kill_worker(pid, signal.SIGKILL)

    def handle_hup(self) -> None:
        # gunicorn would start new workers beside the old ones (a reload); an endpoint never needs it
        log("info", "sighup_ignored")

    def stop(self, graceful: bool = True) -> None:
        self.stopping = True
        log("info", "stopping", workers=len(self.WORKERS), graceful=graceful)
        super().stop(graceful)


class _JsonLog(glogging.Logger):
    """gunicorn's own messages (info and above) as JSON lines on stdout, like every other line."""

    def setup(self, cfg) -> None:
        self.loglevel = 20

    def _emit(self, level: str, msg: Any, args: tuple) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        log(level, "gunicorn", message=text)

    def critical(self, msg, *args, **kwargs): self._emit("critical", msg, args)
    def error(self, msg, *args, **kwargs): self._emit("error", msg, args)
    def warning(self, msg, *args, **kwargs): self._emit("warning", msg, args)
    def info(self, msg, *args, **kwargs): self._emit("info", msg, args)
    def debug(self, msg, *args, **kwargs): pass
    def exception(self, msg, *args, **kwargs):
        self._emit("error", f"{msg}\n{traceback.format_exc(limit=8)}", args)

    def log(self, lvl, msg, *args, **kwargs):
        if not isinstance(lvl, int) or lvl >= 20:
            self._emit("info", msg, args)

    def access(self, *args, **kwargs): pass
    def reopen_files(self): pass
    def close_on_exec(self): pass


class Application(BaseApplication):
    """gunicorn's settings from ours: no config file, no GUNICORN_CMD_ARGS, nothing read at run time."""

    def __init__(self, served: Served, listener: socket.socket):
        self.served, self.port = served, listener.getsockname()[1]
        self.fd = listener.detach()  # gunicorn takes the socket over (and closes this descriptor)
        super().__init__()

    def load_config(self) -> None:
        s = self.served.settings
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # heartbeats off the disk
        settings = {
            "bind": [f"fd://{self.fd}"],
            "workers": s.workers,
            "worker_class": serve_worker.ModelWorker,
            "preload_app": True,
            # gunicorn's own timeout (whole seconds) is unused: Supervisor.murder_workers keeps ours
            "timeout": max(1, math.ceil(s.timeout)),
            "graceful_timeout": math.ceil(s.grace),
            "max_requests": s.max_requests,
            "max_requests_jitter": s.max_requests_jitter,
            "worker_tmp_dir": shm,
            "logger_class": _JsonLog,
            "proc_name": "model.serve",
            "pre_fork": lambda arbiter, worker: arbiter.before_fork(worker),
            "child_exit": lambda arbiter, worker: arbiter.worker_gone(worker),
            "when_ready": lambda arbiter: log(
                "info", "serving", host=s.host, port=self.port, workers=s.workers,
                threads_per_worker=s.threads, timeout_s=s.timeout,
                model_loaded=self.served.model is not None),
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Served:
        return self.served


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def load_model(cfg: Config):
    """(model, None) or (None, reason). Runs in the master, before any worker exists."""
    t0 = time.monotonic()
    try:
        import torch
        torch.set_num_threads(1)  # the master never computes in parallel: forking stays safe
        from .inference import model_fn
        model = model_fn(cfg.model_dir)
        from .inference import probabilities
        probabilities(model.model, [[1, 2, 3], [1, 2]])  # first-call setup of the kernels, shared
    except Exception as exc:  # noqa: BLE001 - any failure: serve 503 with the reason, never hang
        reason = str(exc) or type(exc).__name__
        log("error", "model_load_failed", model_dir=cfg.model_dir, reason=reason)
        print(f"serve: cannot load the model from {cfg.model_dir}: {reason}\n"
              "serve: /ping answers 503 and /invocations 503 until the server is restarted with a "
              "complete model directory", file=sys.stderr, flush=True)
        return None, reason
    log("info", "model_loaded", model_dir=cfg.model_dir, ms=round((time.monotonic() - t0) * 1000))
    return model, None


def main(argv: list[str] | None = None) -> int:
    gc.disable()  # loading allocates many objects and frees few: no collections until it is done
    cfg = Config.from_args(argv)
    # OpenMP reads this when torch loads; the master computes with one thread (load_model) and each
    # worker sets its own count after the fork.
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    try:
        listener = bind(cfg.host, cfg.port)
    except OSError as exc:
        print(f"serve: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        return 1
    model, error = load_model(cfg)
    gc.collect()
    gc.freeze()  # what exists now is shared with the workers: keep the collector off those pages
    gc.enable()
    sys.stdout.flush()
    Supervisor(Application(Served(cfg, model, error), listener)).run()  # exits with its status
    return 0


if __name__ == "__main__":
    sys.exit(main())
