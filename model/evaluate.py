"""`evaluate`: score any model directory on the IMDB test split (or train, for a sanity check).

  python -m model.evaluate --model-dir artifacts/model --data data/aclImdb_v1.tar.gz
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .artifact import ArtifactError
from .data import DataError


def evaluate(model_dir: Path, data_path: Path, split: str = "test", workers: int = 0,
             progress: bool = True) -> dict:
    from . import artifact, data
    from .metrics import binary_metrics
    from .training_loop import Encoded, configure_threads, pick_device, score

    threads = configure_threads(workers)
    loaded = artifact.load(model_dir)
    reviews = getattr(data.load(data_path, splits=(split,)), split)
    t0 = time.perf_counter()
    tokens = loaded.preprocessor.tokens_many([r.text for r in reviews], workers=threads, progress=progress)
    max_len = loaded.hyperparameters.max_len
    encoded = Encoded(ids=[loaded.vocab.encode(t, max_len) for t in tokens], labels=[r.label for r in reviews])
    device = pick_device()
    probs, loss = score(loaded.model.to(device), encoded, device)
    return {"split": split, **binary_metrics(encoded.labels, probs), "loss": loss,
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--data", type=Path, help="IMDB archive or aclImdb/ folder (default: what `make data` found)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--output", type=Path, help="also write the metrics to this JSON file")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        data_path = args.data
        if data_path is None:
            from .download import find_archive
            data_path = find_archive()
            if data_path is None:
                raise DataError("no IMDB data found: run `make data` or pass --data")
        result = evaluate(args.model_dir, data_path, args.split, progress=not args.quiet)
    except (ArtifactError, DataError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.split}:accuracy={result['accuracy']:.4f} {args.split}:f1={result['f1']:.4f} "
          f"n={result['n']} confusion_matrix={result['confusion_matrix']}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
