"""Experiment: `train` with smaller length-bucket pools, to see what the bucketing does to accuracy.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_bucket_pool.py --pool-batches 8 \\
        [-- --preset original]

``model.training_loop.bucketed_batches`` sorts pools of 50 batches by length. With the original
configuration's batch of 512 a pool (25,600 reviews) holds the whole training split (22,500), so the
batches hardly change from one epoch to the next. This runs ``python -m model.train`` in-process (its
own ``main``: same threads, malloc and OpenMP settings) with pools of ``--pool-batches`` batches instead,
everything else unchanged, and prints what ``train`` prints (per-epoch validation accuracy, test
accuracy of the best epoch). Also prints the padded LSTM steps per epoch of that pool size. model/ is
not changed; the function is replaced for this process only.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool-batches", type=int, default=8)
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: arguments for train")
    args = ap.parse_args()
    extra = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    extra = extra or ["--preset", "original"]
    _common.set_nltk_data()
    header(f"train with length-bucket pools of {args.pool_batches} batches")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what train's main sets, before torch loads
    from model import train, training_loop

    def bucketed_batches(lengths, batch_size, rng: random.Random):
        order = list(range(len(lengths)))
        rng.shuffle(order)
        pool = batch_size * args.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        if not getattr(bucketed_batches, "reported", False):
            bucketed_batches.reported = True
            padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
            print(f"padded LSTM steps per epoch with pools of {args.pool_batches} batches: {padded:,} "
                  f"({padded / sum(lengths):.2f}x the real tokens)", flush=True)
        return batches

    training_loop.bucketed_batches = bucketed_batches
    with tempfile.TemporaryDirectory(prefix="explore_pool_") as tmp:
        argv = ["--data", str(_common.DATA), "--model-dir", tmp, "--quiet", *extra]
        print("train " + " ".join(argv), flush=True)
        code = train.main(argv)
    footer()
    return code


if __name__ == "__main__":
    sys.exit(main())
