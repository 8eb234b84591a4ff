"""`train`: SageMaker's training contract, and the same command on a laptop with ordinary flags.

In a SageMaker training job (``docker run <image> train``):
  hyperparameters  $SAGEMAKER_BASE_DIR/input/config/hyperparameters.json (string values)
  data channel     $SM_CHANNEL_TRAIN, else $SAGEMAKER_BASE_DIR/input/data/train
  model            $SM_MODEL_DIR, else $SAGEMAKER_BASE_DIR/model
  failure reason   $SAGEMAKER_BASE_DIR/output/failure, with a non-zero exit
``SAGEMAKER_BASE_DIR`` defaults to /opt/ml. Flags override each of them:

  python -m model.train --data data/aclImdb_v1.tar.gz --model-dir artifacts/model --preset quick
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from .data import DataError
from .hyperparameters import HyperparameterError, Hyperparameters, PRESETS, preset
from .preprocess import StopwordsMissing


@dataclass(frozen=True)
class JobPaths:
    base: Path
    hyperparameters: Path
    data: Path
    model_dir: Path
    failure: Path

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> "JobPaths":
        env = dict(os.environ if env is None else env)
        base = Path(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        return cls(
            base=base,
            hyperparameters=base / "input" / "config" / "hyperparameters.json",
            data=Path(env.get("SM_CHANNEL_TRAIN", base / "input" / "data" / "train")),
            model_dir=Path(env.get("SM_MODEL_DIR", base / "model")),
            failure=base / "output" / "failure",
        )


def tune_threads() -> None:
    """Let torch's OpenMP threads sleep at barriers instead of spinning.

    Must run before torch is imported. Measured here on 2 busy cores, spinning threads made a
    training step 3.5x slower than sleeping ones (other processes held the core a spinner waited
    on). An explicit OMP_WAIT_POLICY in the environment wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def tune_malloc() -> None:
    """Keep glibc from handing the LSTM's large buffers back to the OS after every batch.

    Measured here, mmap/munmap of those buffers on each step doubled the epoch time of the original
    configuration (system time 12 s against 0.1 s over 20 batches).
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum on 64-bit
        libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="aclImdb tar.gz, an extracted aclImdb/ folder, or a folder holding one")
    p.add_argument("--model-dir", type=Path, help="where the model is written")
    p.add_argument("--preset", choices=sorted(PRESETS), help="starting hyperparameters (default: full)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter, e.g. --set epochs=3 (repeatable)")
    p.add_argument("--no-test", action="store_true", help="skip scoring the test split")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def resolve_hyperparameters(args: argparse.Namespace, paths: JobPaths) -> Hyperparameters:
    values: dict[str, str] = {}
    if paths.hyperparameters.is_file():
        try:
            values = json.loads(paths.hyperparameters.read_text())
        except json.JSONDecodeError as exc:
            raise HyperparameterError(f"{paths.hyperparameters} is not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise HyperparameterError(f"{paths.hyperparameters} must hold a JSON object")
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise HyperparameterError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = value
    preset_name = args.preset or str(values.pop("preset", "full"))
    return Hyperparameters.from_strings(values, base=preset(preset_name))


def write_failure(path: Path, reason: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024])  # SageMaker shows the first 1024 characters as FailureReason
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    paths = JobPaths.from_environment()
    # A laptop run has no /opt/ml; only write the failure file where a job would look for it.
    in_job = "SAGEMAKER_BASE_DIR" in os.environ or paths.base.is_dir()
    tune_threads()
    try:
        tune_malloc()
        hp = resolve_hyperparameters(args, paths)
        from .data import load

        dataset = load(args.data or paths.data)  # a missing or bad channel fails before torch loads
        from .training import fit

        fit(dataset, hp, args.model_dir or paths.model_dir, progress=not args.quiet,
            evaluate_test=not args.no_test)
        return 0
    except KeyboardInterrupt:
        reason = "training interrupted"
        detail = reason
    except (HyperparameterError, DataError, StopwordsMissing) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        detail = reason
    except Exception as exc:  # noqa: BLE001 - a job must always leave a reason behind
        reason = f"{type(exc).__name__}: {exc}"
        detail = traceback.format_exc()
    print(f"train: error: {detail}", file=sys.stderr, flush=True)
    if in_job:
        write_failure(paths.failure, reason)
    return 1


if __name__ == "__main__":
    sys.exit(main())
