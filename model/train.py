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
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .data import DataError
from .hyperparameters import HyperparameterError, Hyperparameters, PRESETS, parse_assignments, resolve
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


# Where Debian/Ubuntu (libtcmalloc-minimal4, in the image), Fedora/Amazon Linux (gperftools-libs) and
# Homebrew (gperftools) put it.
TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
ALLOCATOR_ENV = "TRAIN_ALLOCATOR"  # "tcmalloc" (default: when installed) or "system"


def tcmalloc_command(env: dict[str, str], orig_argv: list[str], executable: str,
                     candidates: tuple[str, ...] = TCMALLOC_PATHS) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment that rerun this process under tcmalloc, or None to stay.

    Why: every training batch, the LSTM allocates ~100 MiB-1.5 GiB work buffers. glibc serves each
    with a fresh mmap (its mmap threshold cannot go above 32 MiB) and returns it at the end of the
    batch, so the kernel zeroes those pages again on every batch: measured here, 26.5 s of system
    time and 5.4 M page faults in one epoch of the default configuration, 9.3 s and 0.5 M with
    tcmalloc, which keeps freed spans mapped (docs/performance.md). An allocator can only be
    swapped before the process starts, hence the re-exec.
    """
    if env.get(ALLOCATOR_ENV, "tcmalloc") != "tcmalloc" or "tcmalloc" in env.get("LD_PRELOAD", ""):
        return None
    lib = next((c for c in candidates if Path(c).is_file()), None)
    if lib is None or len(orig_argv) < 2:
        return None
    preload = f"{lib}:{env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else lib
    return [executable, *orig_argv[1:]], {**env, "LD_PRELOAD": preload}


def use_tcmalloc() -> None:
    """Re-exec the command line under tcmalloc where it is installed (see ``tcmalloc_command``)."""
    rerun = tcmalloc_command(dict(os.environ), list(getattr(sys, "orig_argv", [])), sys.executable)
    if rerun is not None:
        argv, env = rerun
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(argv[0], argv, env)


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
    return resolve({**values, **parse_assignments(args.overrides)}, preset_name=args.preset)


def duration(seconds: float) -> str:
    """``1 min 31 s``, ``48 s``, ``1 h 02 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def percent(fraction: float) -> str:
    """One decimal, as the README and the model card round: 0.8754 -> ``87.5%``."""
    return f"{fraction * 100:.1f}%"


def summary(metrics: dict, model_dir: Path, seconds: float) -> str:
    """What a person reads at the end of a run, after the ``name=value`` lines SageMaker scrapes."""
    model_dir = Path(model_dir).resolve()
    val = metrics["validation"]
    epochs = len(metrics.get("history") or [])
    where = f"validation {percent(val['accuracy'])}, best epoch {metrics['best_epoch']} of {epochs}"
    if "test" in metrics:
        scored = (f"Test accuracy {percent(metrics['test']['accuracy'])} on {metrics['test']['n']:,} "
                  f"test reviews ({where}).")
    else:
        scored = f"Validation accuracy {percent(val['accuracy'])} (test split not scored; {where})."
    return "\n".join([
        "",
        f"Trained in {duration(seconds)}. {scored}",
        f"  Model    {model_dir}",
        f"  Metrics  {model_dir / 'metrics.json'}  (every figure and the per-epoch history)",
        f"  Plots    {model_dir / 'training_curves.png'}, confusion_matrix.png",
    ])


def write_failure(path: Path, reason: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024])  # SageMaker shows the first 1024 characters as FailureReason
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the process's own command line (not a caller inside another program)
        use_tcmalloc()
    started = time.monotonic()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Its first run in a fresh environment logs "generated new fontManager" at INFO: not ours to report.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args = parse_args(argv)
    paths = JobPaths.from_environment()
    # A laptop run has no /opt/ml; only write the failure file where a job would look for it.
    in_job = "SAGEMAKER_BASE_DIR" in os.environ or paths.base.is_dir()
    tune_threads()
    logging.getLogger("model.train").info("allocator: %s", "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "")
                                          else "system (install libtcmalloc-minimal4 for faster training)")
    try:
        hp = resolve_hyperparameters(args, paths)
        from .data import load

        # a missing or bad channel fails before torch loads
        dataset = load(args.data or paths.data, unlabelled=hp.embedding_init != "none")
        from .training_loop import fit

        model_dir = args.model_dir or paths.model_dir
        metrics = fit(dataset, hp, model_dir, progress=not args.quiet, evaluate_test=not args.no_test)
        print(summary(metrics, model_dir, time.monotonic() - started), flush=True)
        return 0
    except KeyboardInterrupt:
        reason = "training interrupted"
        detail = reason
    except (HyperparameterError, DataError, StopwordsMissing) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        detail = reason
    except Exception as exc:  # noqa: BLE001 - a job must always leave a reason behind
        # MemoryError() and friends carry no message: the type alone, not "MemoryError: "
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        detail = traceback.format_exc()
    print(f"train: error: {detail}", file=sys.stderr, flush=True)
    if in_job:
        write_failure(paths.failure, reason)
    return 1


if __name__ == "__main__":
    sys.exit(main())
