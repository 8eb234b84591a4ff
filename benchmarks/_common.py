"""Shared helpers for the benchmarks: paths, machine description, timing summaries.

Every benchmark prints the machine it ran on and the load average before and after, because the
machine these numbers come from has 2 cores shared with other work: only ratios measured in the same
run mean anything.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATA = SHARED / "data" / "aclImdb_v1_labeled.tar.gz"
NLTK_DATA = SHARED / "nltk_data"
PEER_DIR = SHARED / "bench" / "peer_serving"
RESULTS = REPO / "benchmarks" / "results"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def set_nltk_data() -> None:
    if NLTK_DATA.is_dir():
        os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))


def imdb_archive(given: Path | str | None, script: str) -> Path | str | None:
    """``given`` (the script's --data), else the archive `make data` finds; None, after saying so
    on stderr (the script then exits with its own status)."""
    from model.download import find_archive
    data = given or find_archive()
    if data is None:
        print(f"{script}: no IMDB archive found; run `make data` or pass --data", file=sys.stderr)
    return data


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict:
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "kernel": platform.release()}
    try:
        import torch  # noqa: F401 - only its version
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def header(title: str) -> None:
    print(f"# {title}")
    print(f"# date      {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# git       {git_rev()}")
    print(f"# machine   {json.dumps(machine())}")
    print(f"# load avg  {loadavg()}  (1/5/15 min, at start)")
    print(f"# command   {' '.join([Path(sys.executable).name] + sys.argv)}", flush=True)


def footer() -> None:
    print(f"# load avg  {loadavg()}  (1/5/15 min, at end)", flush=True)


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "model", "lambda",
                                "stacks"], capture_output=True, text=True, check=False).stdout.strip()
        return rev + (" (model/lambda/stacks modified)" if dirty else "")
    except OSError:
        return "?"


def percentile(values: list[float], p: float) -> float:
    vals = sorted(values)
    if not vals:
        return float("nan")
    k = (len(vals) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(vals) - 1)
    return vals[f] + (vals[c] - vals[f]) * (k - f)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(num: float, den: float) -> str:
    if not den or den != den or num != num:
        return "n/a"
    return f"{num / den:.2f}x"
