#!/usr/bin/env python3
"""Run the project's image as an ad-hoc SageMaker training job or hyperparameter-tuning job.

The deployed stacks train one model per change of data, image or hyperparameters. For
experiments, this script starts the same image (same `train` contract) with the SageMaker Python
SDK, which is the best tool for tuning jobs. The SDK is heavy, optional, and pins packages the
main environment does not want, so it lives in a venv of its own, which `make test-sagemaker`
creates (and tests this script in, against moto):

    make test-sagemaker

    # one training job
    .venv-sagemaker/bin/python scripts/sagemaker_job.py train --image-uri <ecr image> --role <execution role arn> \\
        --data s3://<bucket>/data/ --output s3://<bucket>/experiments/ --set epochs=4 [--spot] [--wait]

    # a tuning job over learning rate, hidden size and dropout, maximising validation accuracy
    .venv-sagemaker/bin/python scripts/sagemaker_job.py tune --image-uri ... --role ... --data ... --output ... \\
        --max-jobs 8 --max-parallel 2

Image, role and bucket are the deployed stack's (`make deploy` prints them; the training stack's
role may be used, or any role with the same permissions). Metric definitions are the ones the
stacks use (model/metrics.py), so the console shows validation accuracy per job.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.hyperparameters import HyperparameterError, Hyperparameters, parse_assignments, resolve  # noqa: E402
from model.metrics import metric_definitions  # noqa: E402

OBJECTIVE = "validation:accuracy"
# name -> (kind, low, high): searched when `tune` is given no --range
DEFAULT_RANGES = {
    "learning_rate": ("continuous", 5e-4, 5e-3),
    "hidden_dim": ("integer", 64, 256),
    "dropout": ("continuous", 0.1, 0.6),
}


class UsageError(ValueError):
    pass


def parse_overrides(items: list[str]) -> dict[str, str]:
    """--set KEY=VALUE pairs, checked as `train` will read them (names, values, preset)."""
    try:
        values = parse_assignments(items)
        resolve(values)
    except HyperparameterError as exc:
        raise UsageError(str(exc)) from None
    return values


def parse_ranges(items: list[str]) -> dict[str, tuple[str, float, float]]:
    """--range NAME=LOW:HIGH; integer-valued hyperparameters get an integer range."""
    if not items:
        return dict(DEFAULT_RANGES)
    known = Hyperparameters().to_dict()
    ranges = {}
    for item in items:
        name, sep, bounds = item.partition("=")
        low, colon, high = bounds.partition(":")
        if not sep or not colon:
            raise UsageError(f"--range expects NAME=LOW:HIGH, got {item!r}")
        if name not in known or isinstance(known[name], (bool, str)):
            numeric = sorted(k for k, v in known.items() if not isinstance(v, (bool, str)))
            raise UsageError(f"--range {name}: not a numeric hyperparameter; choose from {', '.join(numeric)}")
        kind = "integer" if isinstance(known[name], int) else "continuous"
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise UsageError(f"--range {item!r}: bounds must be numbers") from None
        if lo >= hi:
            raise UsageError(f"--range {item!r}: LOW must be below HIGH")
        ranges[name] = (kind, lo, hi)
    return ranges


def estimator_kwargs(args: argparse.Namespace, hyperparameters: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        image_uri=args.image_uri, role=args.role, instance_count=1, instance_type=args.instance_type,
        output_path=args.output, hyperparameters=hyperparameters, metric_definitions=metric_definitions(),
        max_run=args.max_run, base_job_name="imdb-lstm-adhoc", volume_size=10,
    )
    if args.spot:
        kwargs.update(use_spot_instances=True, max_wait=args.max_run * 2,
                      checkpoint_s3_uri=args.output.rstrip("/") + "/checkpoints/")
    return kwargs


def load_sdk():
    try:
        import sagemaker
        from sagemaker.estimator import Estimator
        from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
    except ImportError:
        raise UsageError(f"the SageMaker Python SDK is not installed in this Python ({sys.executable}): "
                         "run this script with .venv-sagemaker/bin/python, which `make test-sagemaker` "
                         "creates") from None
    return sagemaker, Estimator, HyperparameterTuner, ContinuousParameter, IntegerParameter


def run(args: argparse.Namespace) -> str:
    hyperparameters = parse_overrides(args.overrides)
    ranges = parse_ranges(args.ranges) if args.command == "tune" else {}
    if not args.data.startswith("s3://") or not args.output.startswith("s3://"):
        raise UsageError("--data and --output must be s3:// URIs")
    sagemaker, Estimator, HyperparameterTuner, ContinuousParameter, IntegerParameter = load_sdk()
    session = sagemaker.Session()
    estimator = Estimator(sagemaker_session=session, **estimator_kwargs(args, hyperparameters))
    inputs = {"train": args.data}
    if args.command == "train":
        estimator.fit(inputs, wait=args.wait, logs=args.wait)
        return estimator.latest_training_job.name
    parameter = {"continuous": ContinuousParameter, "integer": IntegerParameter}
    tuner = HyperparameterTuner(
        estimator, objective_metric_name=OBJECTIVE, objective_type="Maximize",
        hyperparameter_ranges={name: parameter[kind](int(lo) if kind == "integer" else lo,
                                                     int(hi) if kind == "integer" else hi)
                               for name, (kind, lo, hi) in ranges.items()},
        metric_definitions=metric_definitions(), max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel,
        base_tuning_job_name="imdb-lstm-tune",
    )
    tuner.fit(inputs, wait=args.wait)
    return tuner.latest_tuning_job.name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("train", "tune"):
        s = sub.add_parser(name)
        s.add_argument("--image-uri", required=True)
        s.add_argument("--role", required=True, help="SageMaker execution role ARN")
        s.add_argument("--data", required=True, help="s3:// prefix holding the IMDB archive")
        s.add_argument("--output", required=True, help="s3:// prefix for model artifacts")
        s.add_argument("--instance-type", default="ml.m5.xlarge")
        s.add_argument("--max-run", type=int, default=3600, help="seconds")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        s.add_argument("--spot", action="store_true", help="managed spot training")
        s.add_argument("--wait", action="store_true", help="wait and stream the logs")
        if name == "tune":
            s.add_argument("--range", dest="ranges", action="append", default=[], metavar="NAME=LOW:HIGH")
            s.add_argument("--max-jobs", type=int, default=8)
            s.add_argument("--max-parallel", type=int, default=2)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        name = run(args)
    except UsageError as exc:
        print(f"sagemaker_job: error: {exc}", file=sys.stderr)
        return 2
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
