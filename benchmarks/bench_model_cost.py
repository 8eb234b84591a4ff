#!/usr/bin/env python3
"""Serving cost per review of one trained model against another, in-process, same reviews, same run.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_model_cost.py \\
        --baseline artifacts/suite-default --candidate artifacts/model-card [--reviews 400]

What a worker does for a request, without HTTP: ``input_fn`` -> ``predict_fn`` -> ``output_fn`` on
IMDB test reviews (the archive `make data` finds), one review per request, then the same reviews as
batches of 16 (``predict_many``, as the server's batching does), then explanations of a few. The two
models take turns review by review, each going first every other time (the stem cache is shared),
so the machine's load falls on both alike; one torch thread, as a serving worker runs. Prints per model the median and mean milliseconds per review and the
candidate/baseline ratio of each (the issue's bound: 1.5x).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402 - puts the repository on sys.path
from _common import footer, header  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, required=True, help="model directory to compare against")
    p.add_argument("--candidate", type=Path, required=True, help="model directory measured")
    p.add_argument("--data", type=Path, help="IMDB archive (default: what `make data` finds)")
    p.add_argument("--reviews", type=int, default=400)
    p.add_argument("--explain", type=int, default=20, help="reviews explained per model")
    args = p.parse_args()
    _common.set_nltk_data()

    import torch

    from model.data import load
    from model.inference import input_fn, model_fn, output_fn, predict_fn, predict_many

    torch.set_num_threads(1)
    data = _common.imdb_archive(args.data, "bench_model_cost")
    if data is None:
        return 2
    reviews = [r.text for r in random.Random(0).sample(load(data, splits=("test",)).test, args.reviews)]
    models = {"baseline": model_fn(str(args.baseline)), "candidate": model_fn(str(args.candidate))}
    header("serving cost per review: candidate against baseline, in-process, one thread")
    for name, path in (("baseline", args.baseline), ("candidate", args.candidate)):
        hp = models[name].hyperparameters
        print(f"{name:9} {path}: preprocessing {hp.preprocessing}, ngram_buckets {hp.ngram_buckets}, "
              f"hidden {hp.hidden_dim}, pooling {hp.pooling}")
    print(f"reviews: {len(reviews)} IMDB test reviews (seeded sample), median {statistics.median(map(len, reviews))} characters")

    def one(model, text: str, explain: bool = False) -> float:
        body = f'{{"text": {__import__("json").dumps(text)}, "explain": {str(explain).lower()}}}'
        start = time.perf_counter()
        output_fn(predict_fn(input_fn(body, "application/json"), model))
        return time.perf_counter() - start

    for model in models.values():  # warm-up: first-call allocations and caches
        for text in reviews[:20]:
            one(model, text)
    # Which model goes first alternates: the stem cache is shared, and the second to read a review
    # finds its words stemmed already.
    def in_turn(i: int):
        pairs = list(models.items())
        return pairs if i % 2 == 0 else pairs[::-1]

    single = {name: [] for name in models}
    for i, text in enumerate(reviews):
        for name, model in in_turn(i):
            single[name].append(one(model, text))
    batched = {name: [] for name in models}
    requests = [input_fn(text, "text/plain") for text in reviews]
    for start in range(0, len(requests), 16):
        for name, model in in_turn(start // 16):
            t0 = time.perf_counter()
            predict_many(requests[start:start + 16], model)
            batched[name].append((time.perf_counter() - t0) / len(requests[start:start + 16]))
    explained = {name: [] for name in models}
    for i, text in enumerate(reviews[:args.explain]):
        for name, model in in_turn(i):
            explained[name].append(one(model, text, explain=True))

    print(f"\n{'ms per review':28} {'baseline':>10} {'candidate':>10} {'ratio':>7}")
    for what, runs in (("one per request, median", single), ("one per request, mean", single),
                       ("batches of 16, median", batched), (f"explained ({args.explain}), median", explained)):
        pick = statistics.mean if "mean" in what else statistics.median
        b, c = pick(runs["baseline"]) * 1e3, pick(runs["candidate"]) * 1e3
        print(f"{what:28} {b:10.2f} {c:10.2f} {c / b:6.2f}x")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
