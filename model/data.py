"""The IMDB Large Movie Review data set in its original layout.

``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` read from the original ``aclImdb_v1.tar.gz``,
from any archive repacked with the same layout (such as ``aclImdb_v1_labeled.tar.gz``), or from an
extracted folder. A SageMaker channel directory holding one of those is accepted too.

The archive also lists, per split and label, the IMDB page each review came from
(``urls_{pos,neg}.txt``, line *i* for review id *i*). Train and test hold disjoint movies, so the
validation split is drawn by movie too: a random split shares movies with the reviews trained on
and overstated test accuracy by about 2 points here (docs/model-card.md).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import random
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_UNSUP = re.compile(r"(?:^|/)aclImdb/train/unsup/(\d+)_\d+\.txt$")
_URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(pos|neg)\.txt$")
_TITLE = re.compile(r"/title/(tt\d+)")

log = logging.getLogger("model.train")


class DataError(ValueError):
    """The data is missing or not in the IMDB layout; the message says what to do."""


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 1 = positive, 0 = negative
    rating: int
    id: str
    movie: str | None = None  # IMDB title id (tt0453418) where the archive lists it


@dataclass
class Dataset:
    train: list[Review]
    test: list[Review]
    # aclImdb/train/unsup: 50,000 reviews without labels (only when asked for, and where present)
    unlabelled: list[str] = field(default_factory=list)


def locate(path: str | Path) -> Path:
    """Resolve a user's or a channel's path to an archive or an ``aclImdb`` folder."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"IMDB data not found at {p}. Run `make data` (or `python -m model.download`) "
                        "to fetch the original archive, or pass the path of aclImdb_v1.tar.gz.")
    if p.is_file():
        return p
    if (p / "aclImdb").is_dir():
        return p / "aclImdb"
    if p.name == "aclImdb" or (p / "train").is_dir():
        return p
    archives = sorted(p.glob("*.tar.gz")) + sorted(p.glob("*.tgz"))
    labeled = [a for a in archives if "unsup" not in a.name]
    if labeled:
        return labeled[0]
    raise DataError(f"{p} holds neither an aclImdb/ folder nor a .tar.gz archive of it.")


def load(path: str | Path, splits: tuple[str, ...] = SPLITS, unlabelled: bool = False) -> Dataset:
    """Read the labelled reviews of the requested splits, in a fixed order (sorted by split/label/id).

    With ``unlabelled``, also the unlabelled reviews: from ``aclImdb/train/unsup`` in the same
    archive or folder (the original archive has them), else from an archive next to it whose name
    says ``unsup`` (as in ../shared/data). None found is not an error: the caller decides.
    """
    src = locate(path)
    unsup: list[tuple[int, str]] = []
    found: dict[str, list[Review]] = {s: [] for s in SPLITS}
    urls: dict[tuple[str, str], list[str]] = {}
    if src.is_file():
        try:
            with tarfile.open(src, "r:*") as tar:
                for member in tar:
                    u = _URLS.search(member.name)
                    if u and member.isfile() and u.group(1) in splits:
                        urls[(u.group(1), u.group(2))] = _text(_read(tar, member)).splitlines()
                        continue
                    if unlabelled and member.isfile() and (x := _UNSUP.search(member.name)):
                        unsup.append((int(x.group(1)), _text(_read(tar, member))))
                        continue
                    m = _MEMBER.search(member.name)
                    if not m or not member.isfile() or m.group(1) not in splits:
                        continue
                    found[m.group(1)].append(_review(_read(tar, member), m))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{src} is not a readable tar.gz archive ({exc}). Delete it and run "
                            "`make data` again to download a fresh copy.") from exc
    else:
        root = src
        for split in splits:
            for label in LABELS:
                listing = root / split / f"urls_{label}.txt"
                if listing.is_file():
                    urls[(split, label)] = _text(listing.read_bytes()).splitlines()
                for f in (root / split / label).glob("*.txt"):
                    m = _MEMBER.search(f"aclImdb/{split}/{label}/{f.name}")
                    if m:
                        found[split].append(_review(f.read_bytes(), m))
        if unlabelled:
            for f in (root / "train" / "unsup").glob("*.txt"):
                if x := _UNSUP.search(f"aclImdb/train/unsup/{f.name}"):
                    unsup.append((int(x.group(1)), _text(f.read_bytes())))
    for split in splits:
        if not found[split]:
            raise DataError(f"{src} has no reviews under aclImdb/{split}/{{pos,neg}}/: is it the IMDB "
                            "Large Movie Review archive (aclImdb_v1.tar.gz)?")
        found[split] = [_with_movie(r, urls.get((split, _LABEL_NAMES[r.label]))) for r in found[split]]
        found[split].sort(key=lambda r: (r.label, int(r.id)))
    if unlabelled and not unsup and src.is_file():
        for sibling in sorted(src.parent.glob("*unsup*.tar.gz")):
            if sibling != src:
                unsup = load_unlabelled(sibling)
                break
    unsup.sort()
    return Dataset(train=found["train"], test=found["test"], unlabelled=[text for _, text in unsup])


def load_unlabelled(archive: Path) -> list[tuple[int, str]]:
    """(id, text) of every ``aclImdb/train/unsup/*.txt`` in a tar.gz."""
    out = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and (x := _UNSUP.search(member.name)):
                    out.append((int(x.group(1)), _text(_read(tar, member))))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive} is not a readable tar.gz archive ({exc}).") from exc
    return out


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    assert fh is not None  # callers pass regular files only
    return fh.read()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _review(raw: bytes, m: re.Match) -> Review:
    return Review(text=_text(raw), label=LABELS[m.group(2)],
                  rating=int(m.group(4)), id=m.group(3))


_LABEL_NAMES = {v: k for k, v in LABELS.items()}


def _with_movie(review: Review, listing: list[str] | None) -> Review:
    index = int(review.id)
    if listing is None or index >= len(listing):
        return review
    m = _TITLE.search(listing[index])
    return dataclasses.replace(review, movie=m.group(1)) if m else review


def split_validation(reviews: list[Review], fraction: float, seed: int,
                     by_movie: bool = True) -> tuple[list[Review], list[Review]]:
    """A seeded split of ``train`` into (train, validation).

    By movie where every review knows its movie (no movie on both sides, as between train and
    test), else label-stratified at random.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1; got {fraction}")
    rng = random.Random(seed)
    if by_movie and not (reviews and all(r.movie for r in reviews)):
        log.warning("the data lists no movie for some reviews (no urls_*.txt): validation split at random")
    elif by_movie:
        movies = sorted({r.movie for r in reviews})
        rng.shuffle(movies)
        size = collections.Counter(r.movie for r in reviews)
        held, target, n = set(), fraction * len(reviews), 0
        for movie in movies:
            if n >= target:
                break
            held.add(movie)
            n += size[movie]
        val = [r for r in reviews if r.movie in held]
        train = [r for r in reviews if r.movie not in held]
        if train and val:
            rng.shuffle(train)
            return train, val
        log.warning("the training split holds too few movies to hold some out: validation split at random")
    train, val = [], []
    for label in sorted(LABELS.values()):
        group = [r for r in reviews if r.label == label]
        rng.shuffle(group)
        n_val = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        val += group[:n_val]
        train += group[n_val:]
    if not train or not val:
        raise DataError("the training split is too small to hold out a validation set")
    rng.shuffle(train)
    return train, val
