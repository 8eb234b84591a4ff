#!/usr/bin/env python3
"""Reproduce the model card's figure: train the default configuration, score the IMDB test split.

    .venv/bin/python benchmarks/reproduce_model_card.py [--data PATH] [--model-dir DIR] [-- --set k=v ...]

Runs exactly the command the model card names (``python -m model.train --data ... --model-dir ...``)
as a subprocess, measures its wall time, CPU time and peak memory, then prints the test metrics
from the artifact's metrics.json, the per-epoch times, the time at which validation first reached
each level, and whether the targets (test accuracy >= 0.890, training <= 20 min) were met.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_ACCURACY = 0.890
TARGET_SECONDS = 20 * 60


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="IMDB archive (default: what `make data` finds)")
    p.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "model-card")
    p.add_argument("extra", nargs="*", help="extra arguments for model.train, after --")
    args = p.parse_args()

    data = args.data
    if data is None:
        from model.download import find_archive
        data = find_archive()
        if data is None:
            print("no IMDB data: run `make data` or pass --data", file=sys.stderr)
            return 1
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(REPO.parent / "shared" / "nltk_data"))
    cmd = [sys.executable, "-m", "model.train", "--data", str(data), "--model-dir", str(args.model_dir),
           *args.extra]
    print("command:", shlex.join(["python", *cmd[1:]]), flush=True)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, load average before "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    start = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        print(f"training failed with exit code {rc}", file=sys.stderr)
        return rc

    metrics = json.loads((args.model_dir / "metrics.json").read_text())
    test = metrics["test"]
    print(f"\nwall time {wall:.0f} s ({wall / 60:.1f} min); cpu user {usage.ru_utime:.0f} s, "
          f"sys {usage.ru_stime:.0f} s; peak RSS {usage.ru_maxrss / 1024:.0f} MiB; "
          f"load average after {os.getloadavg()[0]:.2f}")
    print(f"preprocessing {metrics['preprocess_seconds']} s; best epoch {metrics['best_epoch']}")
    elapsed = 0.0
    for h in metrics["history"]:
        elapsed += h["seconds"]
        print(f"  epoch {h['epoch']}: {h['seconds']:.0f} s (cumulative {elapsed:.0f} s) "
              f"train loss {h['train_loss']:.4f} validation loss {h['validation_loss']:.4f} "
              f"validation accuracy {h['validation_accuracy']:.4f}")
    print(f"test: accuracy {test['accuracy']:.4f} precision {test['precision']:.4f} "
          f"recall {test['recall']:.4f} f1 {test['f1']:.4f} confusion {test['confusion_matrix']} (n={test['n']})")
    ok_acc = test["accuracy"] >= TARGET_ACCURACY
    ok_time = wall <= TARGET_SECONDS
    print(f"target accuracy >= {TARGET_ACCURACY:.3f}: {'met' if ok_acc else 'MISSED'}; "
          f"target time <= {TARGET_SECONDS // 60} min: {'met' if ok_time else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
