"""The IMDB Large Movie Review data set in its original layout.

``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` read from the original ``aclImdb_v1.tar.gz``,
from any archive repacked with the same layout (such as ``aclImdb_v1_labeled.tar.gz``), or from an
extracted folder. A SageMaker channel directory holding one of those is accepted too.
"""
from __future__ import annotations

import random
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


class DataError(ValueError):
    """The data is missing or not in the IMDB layout; the message says what to do."""


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 1 = positive, 0 = negative
    rating: int
    id: str


@dataclass
class Dataset:
    train: list[Review]
    test: list[Review]


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


def load(path: str | Path, splits: tuple[str, ...] = SPLITS) -> Dataset:
    """Read the labelled reviews of the requested splits, in a fixed order (sorted by split/label/id)."""
    src = locate(path)
    found: dict[str, list[Review]] = {s: [] for s in SPLITS}
    if src.is_file():
        try:
            with tarfile.open(src, "r:*") as tar:
                for member in tar:
                    m = _MEMBER.search(member.name)
                    if not m or not member.isfile() or m.group(1) not in splits:
                        continue
                    fh = tar.extractfile(member)
                    assert fh is not None
                    found[m.group(1)].append(_review(fh.read(), m))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{src} is not a readable tar.gz archive ({exc}). Delete it and run "
                            "`make data` again to download a fresh copy.") from exc
    else:
        root = src
        for split in splits:
            for label in LABELS:
                for f in (root / split / label).glob("*.txt"):
                    m = _MEMBER.search(f"aclImdb/{split}/{label}/{f.name}")
                    if m:
                        found[split].append(_review(f.read_bytes(), m))
    for split in splits:
        if not found[split]:
            raise DataError(f"{src} has no reviews under aclImdb/{split}/{{pos,neg}}/: is it the IMDB "
                            "Large Movie Review archive (aclImdb_v1.tar.gz)?")
        found[split].sort(key=lambda r: (r.label, int(r.id)))
    return Dataset(train=found["train"], test=found["test"])


def _review(raw: bytes, m: re.Match) -> Review:
    return Review(text=raw.decode("utf-8", errors="replace"), label=LABELS[m.group(2)],
                  rating=int(m.group(4)), id=m.group(3))


def split_validation(reviews: list[Review], fraction: float, seed: int) -> tuple[list[Review], list[Review]]:
    """A seeded, label-stratified split of ``train`` into (train, validation)."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1; got {fraction}")
    rng = random.Random(seed)
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
