"""The model directory: everything needed to serve, and nothing that executes on load.

``model.safetensors`` (weights), ``vocab.json``, ``config.json`` (hyperparameters, preprocessing mode
and its stopword list, package versions), plus ``metrics.json`` and plots written by training.
Files are written under temporary names and renamed into place, ``config.json`` last, so an
interrupted run never leaves something that looks like a complete model.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .hyperparameters import Hyperparameters
from .network import LSTMClassifier
from .preprocess import Preprocessor
from .vocab import Vocabulary

WEIGHTS = "model.safetensors"
VOCAB = "vocab.json"
CONFIG = "config.json"
METRICS = "metrics.json"
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """The model directory is missing, incomplete or corrupt; the message says which file and why."""


@dataclass
class Artifact:
    model: LSTMClassifier
    vocab: Vocabulary
    preprocessor: Preprocessor
    hyperparameters: Hyperparameters
    config: dict[str, Any]

    def encode(self, review: str) -> list[int]:
        return self.vocab.encode(self.preprocessor.tokens(review), self.hyperparameters.max_len)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    found = {"python": platform.python_version()}
    for pkg in ("torch", "nltk", "beautifulsoup4", "safetensors"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return found


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False).encode())


def save(model_dir: str | Path, model: LSTMClassifier, vocab: Vocabulary, preprocessor: Preprocessor,
         hp: Hyperparameters, extra: dict[str, Any] | None = None) -> None:
    from safetensors.torch import save as save_tensors

    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).unlink(missing_ok=True)  # the model is incomplete until config.json is back
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(out / WEIGHTS, save_tensors(state))
    write_atomic(out / VOCAB, json.dumps({"tokens": vocab.tokens}, ensure_ascii=False).encode())
    config = {
        "format_version": FORMAT_VERSION,
        "hyperparameters": hp.to_dict(),
        "vocab_size": len(vocab),
        "preprocessing": {"mode": preprocessor.mode, "stopwords": sorted(preprocessor.stopwords)},
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    write_json(out / CONFIG, config)


def is_complete(model_dir: str | Path) -> bool:
    d = Path(model_dir)
    return all((d / f).is_file() for f in (CONFIG, VOCAB, WEIGHTS))


def load(model_dir: str | Path) -> Artifact:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(model_dir)
    for name in (CONFIG, VOCAB, WEIGHTS):
        if not (d / name).is_file():
            raise ArtifactError(f"{d / name} is missing: {d} is not a complete model directory "
                                "(train one with `train`, or point SM_MODEL_DIR/--model-dir at one)")
    try:
        config = json.loads((d / CONFIG).read_text())
        hp = Hyperparameters.from_strings(config["hyperparameters"])
        prep = config["preprocessing"]
        preprocessor = Preprocessor.create(prep["mode"], prep["stopwords"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{d / CONFIG} is corrupt or from an unknown version: {exc}") from exc
    try:
        vocab = Vocabulary.load(d / VOCAB)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{d / VOCAB} is corrupt: {exc}") from exc
    model = LSTMClassifier.from_hyperparameters(hp, len(vocab))
    try:
        model.load_state_dict(load_file(str(d / WEIGHTS)))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"{d / WEIGHTS} does not hold this model's weights: {exc}") from exc
    model.eval()
    return Artifact(model=model, vocab=vocab, preprocessor=preprocessor, hyperparameters=hp, config=config)
