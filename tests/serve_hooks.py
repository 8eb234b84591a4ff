"""``python tests/serve_hooks.py <serve flags>``: model.serve with one test-only hook, a slow step on cue.

A review that holds ``SLOW_STEP`` is scored only once the file ``$SLOW_STEP_RELEASE`` exists (at most
``$SLOW_STEP_MAX_S`` seconds, 120 by default); ``$SLOW_STEP_ENTERED`` is created when the worker starts
waiting, and ``$SLOW_STEP_SIGNALLED`` once a worker has handled SIGTERM. Tests that need a worker busy on a batch (the drain and timeout tests) used to send one that
was merely slow, which a fast machine scored before the signal or the timeout came.

The hook is installed in the master before it forks, so every worker has it; the server is otherwise
the real one.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import inference, serve, serve_worker  # noqa: E402

MARK = "SLOW_STEP"
_predict_many = inference.predict_many


def predict_many(requests, model):
    if any(MARK in text for r in requests for text in r.texts):
        entered, release = os.environ.get("SLOW_STEP_ENTERED"), os.environ.get("SLOW_STEP_RELEASE")
        if entered:
            Path(entered).touch()
        deadline = time.monotonic() + float(os.environ.get("SLOW_STEP_MAX_S", "120"))
        while time.monotonic() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.01)
    return _predict_many(requests, model)


inference.predict_many = predict_many

_on_sigterm = serve_worker.ModelWorker.on_sigterm


def on_sigterm(self, signum, frame):
    """The worker's SIGTERM handler, which also says that it ran (``$SLOW_STEP_SIGNALLED``)."""
    _on_sigterm(self, signum, frame)
    signalled = os.environ.get("SLOW_STEP_SIGNALLED")
    if signalled:
        Path(signalled).touch()


serve_worker.ModelWorker.on_sigterm = on_sigterm

if __name__ == "__main__":
    sys.exit(serve.main(sys.argv[1:]))
