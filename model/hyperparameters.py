"""Typed, validated training hyperparameters: the one place their names, types and defaults live.

SageMaker writes every hyperparameter as a string (``{"epochs": "6"}``); ``from_strings`` parses
them into the right types and refuses unknown names, so a typo fails the job with a clear reason
instead of silently training the default. ``resolve`` is what ``train`` trains with (a ``preset`` and
values over it); the CDK settings and scripts/sagemaker_job.py call it too, so a typo fails
``cdk synth`` or the script before any job starts. Standard library only: the stacks and the SageMaker
SDK's venv (no torch) import it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

from .preprocess import MODES

# "last": the state after the last real token (the original); "+max"/"+mean": also max-/mean-pooled
# over the review's real tokens.
POOLINGS = ("last", "last+max", "last+max+mean")


class HyperparameterError(ValueError):
    pass


@dataclass(frozen=True)
class Hyperparameters:
    # preprocessing and encoding
    preprocessing: str = "contrast"
    vocab_size: int = 25_000
    max_len: int = 400
    # Start the embedding from word vectors learnt on the training split and the unlabelled reviews
    # (model/embeddings.py); "none": random, as the original did.
    embedding_init: str = "ppmi-svd"
    # The embedding's learning rate relative to the rest (0 freezes it): slower steps keep pretrained
    # vectors from drifting towards the few labelled reviews a rare word appears in.
    embedding_lr_scale: float = 1.0
    # network
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.4
    # one of POOLINGS, chosen by validation accuracy (docs/model-card.md)
    pooling: str = "last+max+mean"
    # A linear model over hashed n-grams of the ids beside the LSTM, its score added to the
    # LSTM's (model/network.py NgramBag): how many hash buckets (0: none) and the longest n-gram.
    ngram_buckets: int = 0
    ngram_order: int = 2
    # Probability of replacing a training token by <unk> (never at scoring time): the net cannot
    # lean on any single word, such as a film's title or cast, that a test review won't have.
    word_dropout: float = 0.2
    # Short labelled sentences added to the training split (model/augment.py): how negation and
    # "but" compose, which the long IMDB reviews show too rarely. 0: IMDB's reviews only.
    augment_sentences: int = 20_000
    # optimisation
    epochs: int = 5
    batch_size: int = 64
    # Length buckets: batches are cut from pools of this many batches sorted by length. Larger pools
    # waste less on padding; a pool holding the whole split makes the same batches every epoch
    # (the original configuration's batch of 512: 81.3% test against 84.7% with pools of 8).
    bucket_pool: int = 50
    learning_rate: float = 2e-3
    # "constant", or "linear": decay to zero over the run (larger steps early, fine ones late)
    lr_schedule: str = "linear"
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    validation_fraction: float = 0.1
    # "movie": hold out whole movies, as test does (needs the archive's urls_*.txt); "random"
    validation_split: str = "movie"
    seed: int = 42
    # 0 = all CPU cores
    workers: int = 0

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, what: str) -> None:
            if not cond:
                raise HyperparameterError(f"hyperparameter {name}={getattr(self, name)!r}: {what}")

        need(self.preprocessing in MODES, "preprocessing", f"must be one of {', '.join(MODES)}")
        for name in ("vocab_size", "max_len", "embedding_dim", "hidden_dim", "num_layers", "epochs",
                     "batch_size", "bucket_pool"):
            need(getattr(self, name) >= 1, name, "must be a positive integer")
        need(self.ngram_buckets >= 0, "ngram_buckets", "must be >= 0 (0: no n-gram features)")
        need(1 <= self.ngram_order <= 4, "ngram_order", "must be 1 to 4")
        need(self.augment_sentences >= 0, "augment_sentences", "must be >= 0 (0 adds none)")
        need(self.vocab_size >= 3, "vocab_size", "must be at least 3 (padding, unknown, one word)")
        need(self.pooling in POOLINGS, "pooling", f"must be one of {', '.join(POOLINGS)}")
        need(self.embedding_init in ("none", "ppmi-svd"), "embedding_init", "must be one of none, ppmi-svd")
        need(self.embedding_lr_scale >= 0, "embedding_lr_scale", "must be >= 0 (0 freezes the embedding)")
        need(0.0 <= self.word_dropout < 1.0, "word_dropout", "must be in [0, 1)")
        need(self.validation_split in ("movie", "random"), "validation_split", "must be one of movie, random")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(self.learning_rate > 0, "learning_rate", "must be positive")
        need(self.lr_schedule in ("constant", "linear"), "lr_schedule", "must be one of constant, linear")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 turns clipping off)")
        need(0.0 < self.validation_fraction < 1.0, "validation_fraction", "must be in (0, 1)")
        need(self.workers >= 0, "workers", "must be >= 0 (0 = all CPU cores)")

    @classmethod
    def from_strings(cls, values: Mapping[str, Any], base: "Hyperparameters | None" = None) -> "Hyperparameters":
        """Parse SageMaker-style string values over ``base`` (default: the defaults)."""
        known = {f.name: f for f in fields(cls)}
        parsed: dict[str, Any] = {}
        for key, raw in values.items():
            if key.startswith(("sagemaker_", "_")):  # set by SageMaker's own tooling, not ours
                continue
            if key not in known:
                raise HyperparameterError(
                    f"unknown hyperparameter {key!r}; known: {', '.join(sorted(known))}")
            parsed[key] = _parse(key, known[key].type, raw)
        return dataclasses.replace(base or cls(), **parsed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


def parse_bool(raw: Any) -> bool:
    """A bool, or one of TRUE_WORDS / FALSE_WORDS in any case; ``ValueError`` for anything else.

    The one reading of true/false for hyperparameters and CDK context values alike.
    """
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{raw!r} is not true or false")


_ACCEPTS = {"bool": "true or false", "int": "a whole number", "float": "a number"}


def _parse(key: str, type_name: Any, raw: Any) -> Any:
    type_name = getattr(type_name, "__name__", type_name)
    text = str(raw).strip()
    try:
        if type_name == "bool":
            return parse_bool(raw)
        if type_name == "int":
            return int(float(text)) if float(text).is_integer() else int(text)
        if type_name == "float":
            return float(text)
        return text
    except ValueError:
        raise HyperparameterError(
            f"hyperparameter {key}={raw!r} is not a valid {type_name}: {_ACCEPTS[type_name]}") from None


# Named starting points; any field can still be overridden.
PRESETS: dict[str, dict[str, Any]] = {
    # The default: the configuration the model card reports.
    "full": {},
    # First run of local mode: a few minutes on a laptop, a usable model. Four epochs, not two: the
    # training sentences take half the batches (docs/model-card.md, "The quick preset").
    "quick": {"epochs": 4, "vocab_size": 10_000, "max_len": 200, "embedding_dim": 64, "hidden_dim": 64},
    # Tests on synthetic reviews: seconds.
    # (The original head: on a barely trained net, max-pooling over redundant words blurs which of
    # them decided, and the chain tests assert on that.)
    # No pretrained vectors, word dropout or decay either: a few epochs over a few hundred reviews.
    # The training sentences are English; the synthetic reviews' words are not, so none are added.
    "tiny": {"epochs": 3, "vocab_size": 200, "max_len": 40, "embedding_dim": 16, "hidden_dim": 16, "pooling": "last",
             "batch_size": 16, "validation_fraction": 0.2, "dropout": 0.0, "learning_rate": 1e-2,
             "embedding_init": "none", "word_dropout": 0.0, "lr_schedule": "constant",
             "preprocessing": "negation", "augment_sentences": 0},
    # The original system's configuration, for the baseline benchmark.
    "original": {"preprocessing": "original", "vocab_size": 5000, "max_len": 500, "embedding_dim": 32,
                 "hidden_dim": 100, "bidirectional": False, "pooling": "last", "dropout": 0.0, "batch_size": 512,
                 "bucket_pool": 8, "embedding_init": "none", "word_dropout": 0.0, "lr_schedule": "constant",
                 "learning_rate": 1e-3, "epochs": 10, "grad_clip": 0.0, "augment_sentences": 0},
}


def preset(name: str) -> Hyperparameters:
    if name not in PRESETS:
        raise HyperparameterError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Hyperparameters.from_strings(PRESETS[name])


def parse_assignments(items: Iterable[str], flag: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` items (``train --set``, ``sagemaker_job.py --set``) as a dict of strings."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HyperparameterError(f"{flag} expects KEY=VALUE, got {item!r}")
        values[key.strip()] = value.strip()
    return values


def resolve(values: Mapping[str, Any], preset_name: str | None = None) -> Hyperparameters:
    """What ``train`` trains with: ``values`` (SageMaker-style strings) over a preset.

    The preset is ``preset_name`` (``train --preset``), else ``values["preset"]``, else ``full``;
    raises ``HyperparameterError`` naming an unknown preset or name, or a bad value, and what it accepts.
    """
    values = dict(values)
    named = values.pop("preset", None)
    return Hyperparameters.from_strings(values, base=preset(preset_name or str(named or "full")))
