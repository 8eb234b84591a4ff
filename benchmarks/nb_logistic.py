"""The bag-of-words baseline: logistic regression on NB-weighted binary 1-3-grams (Wang & Manning 2012).

Features: presence of each word 1-, 2- and 3-gram, hashed into 2**24 columns (no vocabulary to
hold or store; collisions among 16.8 M columns are rare at IMDB's few million n-grams), each scaled
by its log-count ratio r = log(p/|p|) - log(q/|q|) with add-alpha counts in positive (p) and
negative (q) reviews. Tokens keep "n't" forms whole ("wasn't") and count "!" and "?": an n-gram
model can learn "not good" as a unit, which is what makes it a strong baseline for negation.

Saved as numpy arrays (weights as r times the regression's coefficients, so prediction is one sparse
product) and JSON; nothing that executes on load. Needs scikit-learn (benchmarks only).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

N_FEATURES = 2 ** 24
TOKEN_PATTERN = r"[a-z0-9]+(?:'[a-z]+)?|[!?]"
WEIGHTS, CONFIG = "nblr-weights.npz", "nblr.json"

_APOSTROPHES = re.compile("[\u2018\u2019\u02bc`]")


def normalise(text: str) -> str:
    from model.preprocess import html_to_text  # the LSTM's HTML handling, so both read the same text
    return _APOSTROPHES.sub("'", html_to_text(text).lower())


def vectoriser():
    from sklearn.feature_extraction.text import HashingVectorizer
    return HashingVectorizer(n_features=N_FEATURES, ngram_range=(1, 3), binary=True, norm=None,
                             alternate_sign=False, preprocessor=normalise, token_pattern=TOKEN_PATTERN,
                             dtype=np.float32)


def log_count_ratio(x, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """r per column; 0 where no training review has the n-gram (the smoothing there would only shift
    the norms |p| and |q| by the number of empty hash columns)."""
    seen = np.asarray(x.sum(axis=0)).ravel() > 0
    p = np.asarray(x[y == 1].sum(axis=0)).ravel() + alpha
    q = np.asarray(x[y == 0].sum(axis=0)).ravel() + alpha
    r = np.log(p / p[seen].sum()) - np.log(q / q[seen].sum())
    r[~seen] = 0.0
    return r.astype(np.float32)


class NBLogistic:
    def __init__(self, weights: np.ndarray, intercept: float, c: float):
        self.weights, self.intercept, self.c = weights, intercept, c

    @classmethod
    def fit(cls, x, y: np.ndarray, c: float, alpha: float = 1.0) -> "NBLogistic":
        """``x``: binary features from ``vectoriser()`` (transform once, fit several C)."""
        from sklearn.linear_model import LogisticRegression
        r = log_count_ratio(x, y, alpha)
        lr = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
        lr.fit(x.multiply(r).tocsr(), y)
        return cls((lr.coef_.ravel() * r).astype(np.float32), float(lr.intercept_[0]), c)

    def probabilities_of_features(self, x) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x @ self.weights + self.intercept)))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities_of_features(vectoriser().transform(list(texts)))

    def save(self, directory: Path, extra: dict | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        nz = np.flatnonzero(self.weights)
        np.savez_compressed(directory / WEIGHTS, index=nz.astype(np.int32), value=self.weights[nz])
        (directory / CONFIG).write_text(json.dumps({"intercept": self.intercept, "C": self.c,
                                                    "n_features": N_FEATURES, "token_pattern": TOKEN_PATTERN,
                                                    **(extra or {})}, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "NBLogistic":
        config = json.loads((directory / CONFIG).read_text())
        if config["n_features"] != N_FEATURES or config["token_pattern"] != TOKEN_PATTERN:
            raise ValueError(f"{directory} was trained with other features than this code makes")
        with np.load(directory / WEIGHTS, allow_pickle=False) as arrays:
            weights = np.zeros(N_FEATURES, dtype=np.float32)
            weights[arrays["index"]] = arrays["value"]
        return cls(weights, config["intercept"], config["C"])
