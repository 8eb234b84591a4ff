"""The models the behaviour suite compares, behind one interface: texts -> labels and scores.

* an LSTM artifact written by ``train`` (a directory with config.json), read as the endpoint reads it;
* the NB-weighted logistic regression of nb_logistic.py (a directory with nblr.json);
* VADER (``vader``), the rule-based lexicon tool from the ``vaderSentiment`` package. It has a
  neutral answer: compound within +-0.05 (its authors' thresholds) is "neutral", which fails every
  minimum-functionality case, since each has a clear polar label.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

POS, NEG, NEUTRAL = "positive", "negative", "neutral"
VADER_NEUTRAL_BAND = 0.05

BENCHMARK_PACKAGES = {"sklearn": "scikit-learn", "vaderSentiment": "vaderSentiment"}


class MissingDependency(RuntimeError):
    pass


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        package = BENCHMARK_PACKAGES.get(module, module)
        raise MissingDependency(
            f"the benchmark needs the Python package {package!r}, which is not installed: "
            f"`.venv/bin/pip install -e '.[benchmarks]'` (or `.venv/bin/pip install {package}`; benchmarks only, "
            "the model and the endpoint don't use it)")


@dataclass
class Predictor:
    name: str
    kind: str  # "lstm", "nblr", "vader"
    scores: Callable[[Sequence[str]], list[float]]  # P(positive); VADER: its compound in [-1, 1]
    describe: str = ""

    def labels_of_scores(self, scores: Sequence[float]) -> list[str]:
        if self.kind == "vader":
            return [vader_label(s) for s in scores]
        return [POS if s >= 0.5 else NEG for s in scores]

    def labels(self, texts: Sequence[str]) -> list[str]:
        return self.labels_of_scores(self.scores(texts))


def vader_label(compound: float) -> str:
    if compound >= VADER_NEUTRAL_BAND:
        return POS
    if compound <= -VADER_NEUTRAL_BAND:
        return NEG
    return NEUTRAL


def lstm(name: str, model_dir: Path) -> Predictor:
    from model.artifact import load
    from model.inference import probabilities

    artifact = load(model_dir)
    hp = artifact.hyperparameters
    metrics_file = Path(model_dir) / "metrics.json"
    test = json.loads(metrics_file.read_text()).get("test", {}) if metrics_file.is_file() else {}
    return Predictor(name, "lstm", lambda texts: probabilities(artifact.model, [artifact.encode(t) for t in texts]),
                     f"LSTM artifact {model_dir} of {artifact.config.get('created', '?')} (preprocessing "
                     f"{hp.preprocessing}, vocabulary {hp.vocab_size}, embedding {hp.embedding_dim}, hidden "
                     f"{hp.hidden_dim}, pooling {hp.pooling}, {hp.augment_sentences} training sentences, "
                     f"n-gram buckets {hp.ngram_buckets}); validation accuracy "
                     f"{artifact.config.get('validation_accuracy', float('nan')):.4f}, IMDB test accuracy "
                     + (f"{test['accuracy']:.4f}" if "accuracy" in test else "not scored"))


def nblr(name: str, model_dir: Path) -> Predictor:
    require("sklearn")
    from nb_logistic import NBLogistic

    model = NBLogistic.load(model_dir)
    config = json.loads((Path(model_dir) / "nblr.json").read_text())
    return Predictor(name, "nblr", lambda texts: model.probabilities(texts).tolist(),
                     f"NB-weighted 1-3-gram logistic regression {model_dir} (C={model.c}); validation accuracy "
                     f"{config.get('validation_accuracy', float('nan')):.4f}, IMDB test accuracy "
                     f"{config.get('test_accuracy', float('nan')):.4f}")


def vader(name: str = "vader") -> Predictor:
    require("vaderSentiment")
    from importlib.metadata import version

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    return Predictor(name, "vader", lambda texts: [analyser.polarity_scores(t)["compound"] for t in texts],
                     f"VADER (vaderSentiment {version('vaderSentiment')}), neutral within "
                     f"+-{VADER_NEUTRAL_BAND} compound")


def from_spec(spec: str) -> Predictor:
    """``NAME=PATH`` or ``PATH`` (an LSTM or NB-LR model directory), or ``vader`` / ``NAME=vader``."""
    name, sep, target = spec.partition("=")
    if not sep:
        name, target = Path(spec).name or spec, spec
    if target == "vader":
        return vader(name)
    path = Path(target)
    if (path / "nblr.json").is_file():
        return nblr(name, path)
    if (path / "config.json").is_file():
        return lstm(name, path)
    raise FileNotFoundError(f"{spec}: not a model directory (no config.json or nblr.json in {path}); "
                            "train one with `python -m model.train` or benchmarks/imdb_baselines.py")
