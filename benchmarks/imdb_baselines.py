#!/usr/bin/env python3
"""The baselines on IMDB: train the NB-weighted 1-3-gram logistic regression, score it and VADER.

    .venv/bin/python benchmarks/imdb_baselines.py [--data PATH] [--out artifacts/nblr]

Protocol, as for the LSTM: the validation split is the same 10% of train's movies (seed 42); C is
chosen on it alone; the chosen C is refitted on all of train (a linear model has no epoch to pick,
so the validation reviews are used to fit it too) and the test split is scored once. VADER has
nothing to choose; it is scored on validation and test as it ships. Prints what it measured,
the machine and the load; the model goes to --out (git-ignored artifacts/), for behaviour_suite.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402
from sentiment_predictors import MissingDependency, require, vader_label  # noqa: E402

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def accuracy(pred, y) -> float:
    return float((pred == y).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=_common.DATA)
    p.add_argument("--out", type=Path, default=_common.REPO / "artifacts" / "nblr")
    p.add_argument("--no-vader", action="store_true", help="skip scoring VADER")
    args = p.parse_args()
    try:
        require("sklearn")
        if not args.no_vader:
            require("vaderSentiment")
    except MissingDependency as exc:
        print(exc, file=sys.stderr)
        return 2
    import numpy as np

    from model.data import load, split_validation
    from model.hyperparameters import Hyperparameters
    from nb_logistic import NBLogistic, vectoriser

    header("IMDB baselines: NB-weighted 1-3-gram logistic regression and VADER")
    hp = Hyperparameters()
    t0 = time.perf_counter()
    data = load(args.data)
    fit_part, val = split_validation(data.train, hp.validation_fraction, hp.seed,
                                     by_movie=hp.validation_split == "movie")
    print(f"data: {len(fit_part)} train, {len(val)} validation (by movie, seed {hp.seed}), "
          f"{len(data.test)} test; read in {time.perf_counter() - t0:.1f} s", flush=True)

    vec = vectoriser()
    t = time.perf_counter()
    x_fit = vec.transform([r.text for r in fit_part])
    x_val = vec.transform([r.text for r in val])
    y_fit = np.array([r.label for r in fit_part])
    y_val = np.array([r.label for r in val])
    print(f"features: {x_fit.shape[1]} hashed 1-3-gram columns, {x_fit.nnz / x_fit.shape[0]:.0f} per "
          f"review; {time.perf_counter() - t:.1f} s", flush=True)
    best = None
    for c in C_GRID:
        t = time.perf_counter()
        model = NBLogistic.fit(x_fit, y_fit, c)
        acc = accuracy(model.probabilities_of_features(x_val) >= 0.5, y_val)
        print(f"  C={c:<5} validation accuracy {acc:.4f}  ({time.perf_counter() - t:.1f} s)", flush=True)
        if best is None or acc > best[1]:
            best = (c, acc)
    c, val_acc = best
    print(f"chosen on validation: C={c} ({val_acc:.4f})", flush=True)

    t = time.perf_counter()
    x_train = vec.transform([r.text for r in data.train])
    y_train = np.array([r.label for r in data.train])
    model = NBLogistic.fit(x_train, y_train, c)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    x_test = vec.transform([r.text for r in data.test])
    y_test = np.array([r.label for r in data.test])
    pred = model.probabilities_of_features(x_test) >= 0.5
    test_acc = accuracy(pred, y_test)
    tp, fp = int((pred & (y_test == 1)).sum()), int((pred & (y_test == 0)).sum())
    fn, tn = int((~pred & (y_test == 1)).sum()), int((~pred & (y_test == 0)).sum())
    print(f"NB-LR refitted on all {len(data.train)} training reviews in {fit_s:.1f} s (features included); "
          f"test scored in {time.perf_counter() - t:.1f} s")
    print(f"NB-LR test accuracy {test_acc:.4f}  confusion [[{tn}, {fp}], [{fn}, {tp}]] (n={len(y_test)})",
          flush=True)
    model.save(args.out, {"validation_accuracy": val_acc, "test_accuracy": test_acc,
                          "trained_on": f"all {len(data.train)} IMDB training reviews"})
    print(f"saved to {args.out}")

    if not args.no_vader:
        from model.preprocess import html_to_text
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        analyser = SentimentIntensityAnalyzer()
        for split, reviews in (("validation", val), ("test", data.test)):
            t = time.perf_counter()
            labels = [vader_label(analyser.polarity_scores(html_to_text(r.text))["compound"]) for r in reviews]
            right = sum(lab == ("positive" if r.label else "negative") for lab, r in zip(labels, reviews))
            neutral = labels.count("neutral")
            print(f"VADER {split} accuracy {right / len(reviews):.4f} (n={len(reviews)}; {neutral} neutral, "
                  f"counted wrong; {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
