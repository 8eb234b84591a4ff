"""Raw review -> words -> tokens, as the original system did it, fast.

The original pipeline (per review): BeautifulSoup(html.parser).get_text(), lower-case, every character
outside [a-z0-9] to a space, split, drop NLTK's English stopwords, Porter-stem each word. It rebuilt
the stopword list and a PorterStemmer for every word; here the stopwords are a frozenset, stems are
cached, and reviews whose only markup is the IMDB corpus' ``<br />`` skip the HTML parser, which
yields the same text for them (parity is tested against the parser on real reviews).

Two modes:
  * ``original``: exactly the original tokens.
  * ``negation``: the same, but negations survive: "not", "no", "nor" are kept and the stems of
    n't-contractions ("don", "didn", "wasn", ...) become "not", so "didn't like" -> ["not", "like"].
  * ``contrast``: ``negation``, and the words that join or grade clauses survive too ("but", "very",
    "too", "only", ...: ``CONTRAST_WORDS``), so "good, but too long" keeps what decides it.
  * ``keep``: no stopword is dropped ("but", "too", "very", "only" stay); words are still stemmed.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

MODES = ("original", "negation", "contrast", "keep")

_NON_ALNUM = re.compile(r"[^a-z0-9]")
_BR = "<br />"

# Stems NLTK's English list holds for n't-contractions once the apostrophe became a space
# ("don't" -> "don t"). In negation mode they stand for "not".
NEGATION_CONTRACTIONS = frozenset(
    "ain aren couldn didn doesn don hadn hasn haven isn mightn mustn needn shan shouldn wasn weren "
    "won wouldn".split()
)
NEGATION_WORDS = frozenset({"not", "no", "nor"})
# Stopwords that turn or grade what a clause says: "X, but Y" is decided by Y; "too long", "very
# good", "only good", "not at all" / "not in any way". NLTK's list drops every one of them.
CONTRAST_WORDS = frozenset("but very too so only more most few against than all any".split())
# Modes that read n't-contractions and "no"/"nor" as "not".
_READS_NEGATION = ("negation", "contrast")


class StopwordsMissing(RuntimeError):
    """NLTK's stopword corpus is not installed where NLTK looks."""


def nltk_english_stopwords() -> list[str]:
    """NLTK's English stopword list, from the local NLTK data (never downloads).

    The list is stored in every model artifact, so serving never needs NLTK's data at all.
    """
    try:
        from nltk.corpus import stopwords
        return list(stopwords.words("english"))
    except LookupError as exc:  # NLTK raises LookupError with a long banner; say what to do.
        raise StopwordsMissing(
            "NLTK's English stopwords are not installed. Set NLTK_DATA to a folder holding "
            "corpora/stopwords.zip (this repo's CI uses ../shared/nltk_data), or run "
            "`python -m nltk.downloader stopwords` once with network access."
        ) from exc


def html_to_text(review: str) -> str:
    """BeautifulSoup(review, "html.parser").get_text(), skipping the parser when it cannot matter."""
    if "&" not in review and not review.isspace():  # the parser collapses whitespace-only text
        if "<" not in review:
            return review
        # The corpus' only markup is "<br />"; the parser drops it and keeps the text around it.
        if review.count("<") == review.count(_BR) and ">" not in review.replace(_BR, ""):
            return review.replace(_BR, "")
    from bs4 import BeautifulSoup
    return BeautifulSoup(_neutralise_stray_markup(review), "html.parser").get_text()


_TAG_START = re.compile(r"</?[A-Za-z]|<[!?]")


def _neutralise_stray_markup(text: str) -> str:
    """Escape every '<' that does not open a complete tag or comment, in one linear pass.

    Python's html.parser is quadratic on unclosed markup (``<a x=`` or ``<!--`` repeated: minutes of
    CPU for one 128 KB request; CVE-2025-6069). Well-formed tags and comments pass through unchanged,
    and a stray '<' becomes ``&lt;``, which the parser turns back into the '<' it would have kept as
    text: the words are the same, the cost is linear.
    """
    if "<" not in text:
        return text
    out: list[str] = []
    i, gt = 0, -1
    while True:
        lt = text.find("<", i)
        if lt < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:lt])
        if text.startswith("<!--", lt):
            end = text.find("-->", lt + 4)
            if end < 0:  # no comment closes after this point: the rest is text
                out.append(text[lt:].replace("<", "&lt;"))
                return "".join(out)
            out.append(text[lt:end + 3])
            i = end + 3
            continue
        if gt < lt:
            gt = text.find(">", lt + 1)
            if gt < 0:  # no tag closes after this point: the rest is text
                out.append(text[lt:].replace("<", "&lt;"))
                return "".join(out)
        next_lt = text.find("<", lt + 1, gt)
        if next_lt >= 0 or not _TAG_START.match(text, lt):
            out.append("&lt;")
            i = lt + 1
            continue
        out.append(text[lt:gt + 1])
        i = gt + 1


def review_words(review: str) -> list[str]:
    """The words of a review as the model reads them: HTML stripped, lower-cased, [a-z0-9] runs."""
    return _NON_ALNUM.sub(" ", html_to_text(review).lower()).split()


@functools.lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer
    return PorterStemmer()


@functools.lru_cache(maxsize=200_000)  # bounded: hostile input must not grow memory without end
def _cached_stem(word: str) -> str:
    return _stemmer().stem(word)


def porter_stem(word: str) -> str:
    # Real words are short; a 100 KB "word" from a hostile caller is stemmed but never cached.
    return _cached_stem(word) if len(word) <= 64 else _stemmer().stem(word)


@dataclass(frozen=True)
class Preprocessor:
    """Turns a raw review into model tokens. Built from the stopword list stored in the artifact."""

    mode: str
    stopwords: frozenset[str] = field(repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"preprocessing mode must be one of {', '.join(MODES)}; got {self.mode!r}")

    @classmethod
    def create(cls, mode: str, stopwords: Iterable[str] | None = None) -> "Preprocessor":
        words = nltk_english_stopwords() if stopwords is None else stopwords
        return cls(mode=mode, stopwords=frozenset(words))

    @functools.cached_property
    def _dropped(self) -> frozenset[str]:
        if self.mode == "negation":
            return self.stopwords - NEGATION_WORDS - NEGATION_CONTRACTIONS
        if self.mode == "contrast":
            return self.stopwords - NEGATION_WORDS - NEGATION_CONTRACTIONS - CONTRAST_WORDS
        if self.mode == "keep":
            return frozenset()
        return self.stopwords

    def token(self, word: str) -> str | None:
        """The token for one word, or None when the preprocessing drops it."""
        if word in self._dropped:
            return None
        if self.mode in _READS_NEGATION and (word in NEGATION_CONTRACTIONS or word in NEGATION_WORDS):
            return "not"
        return porter_stem(word)

    def tokens(self, review: str) -> list[str]:
        dropped = self._dropped
        if self.mode not in _READS_NEGATION:
            return [porter_stem(w) for w in review_words(review) if w not in dropped]
        return [t for t in map(self.token, review_words(review)) if t is not None]

    __call__ = tokens

    def tokens_many(self, reviews: Sequence[str], workers: int | None = None,
                    progress: bool = False) -> list[list[str]]:
        """Tokens for many reviews, over worker processes (the parser and stemmer are pure Python)."""
        workers = workers or os.cpu_count() or 1
        if workers <= 1 or len(reviews) < 2000:
            return [self.tokens(r) for r in _progress(reviews, progress, "preprocess")]
        import multiprocessing as mp
        size = max(64, len(reviews) // (workers * 16))
        chunks = [reviews[i:i + size] for i in range(0, len(reviews), size)]
        ctx = mp.get_context("fork")
        out: list[list[str]] = []
        # The bar advances a whole chunk at a time: counting reviews one by one, its first tick came
        # when the first chunk arrived, one review after a second or more, and promised 40 hours.
        bar = _progress(None, progress, "preprocess", total=len(reviews))
        with ctx.Pool(workers) as pool:
            for part in pool.imap(self._tokens_of_chunk, chunks):
                out.extend(part)
                if bar is not None:
                    bar.update(len(part))
        if bar is not None:
            bar.close()
        return out

    def _tokens_of_chunk(self, reviews: Sequence[str]) -> list[list[str]]:
        return [self.tokens(r) for r in reviews]


def _progress(it, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return it
    from tqdm import tqdm
    return tqdm(it, desc=desc, total=total if total is not None else len(it), unit="review",
                mininterval=1.0)


def original_review_to_words(review: str) -> list[str]:
    """The original system's function, verbatim in behaviour and cost: the parity and speed baseline."""
    from bs4 import BeautifulSoup
    from nltk.corpus import stopwords
    from nltk.stem.porter import PorterStemmer

    text = BeautifulSoup(review, "html.parser").get_text()
    text = re.sub(r"[^a-zA-Z0-9]", " ", text.lower())
    words = text.split()
    words = [w for w in words if w not in stopwords.words("english")]
    words = [PorterStemmer().stem(w) for w in words]
    return words
