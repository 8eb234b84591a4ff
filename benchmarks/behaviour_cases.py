"""The behaviour suite's test cases, generated from behaviour_templates.py, and its held-out split.

A case is one minimum-functionality sentence with the label it must get, or (invariance) a base
sentence and its perturbed variants, which must all get the base's label, whatever that is
(CheckList's INV: correctness is the MFTs' job).

The split is by template, never by sentence: sentences of one template share almost every word, so
a held-out sentence from a template seen in development would not be held out. Within each
(category, label) group, the templates whose SHA-256 of their id ranks lowest are held out (a third,
at least one), so the split depends on nothing but the ids, and adding a template moves nothing in
the other groups. Generation is seeded by template id, so the same code gives the same sentences anywhere.
"""
from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from behaviour_templates import SWAPPED_SLOT, TEMPLATES, WORDS, Template

DEV, HELD_OUT = "dev", "held-out"
SPLITS = (DEV, HELD_OUT)

MFT_FILLS_PER_TEMPLATE = 40
INV_BASES_PER_TEMPLATE = 20
NAME_TITLE_VARIANTS = 4
TYPO_VARIANTS = 3

_SLOT = re.compile(r"\{([a-z_]+?)(\d*)\}")
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    template_id: str
    split: str
    texts: tuple[str, ...]  # MFT: one sentence; INV: the base sentence, then its variants
    label: str  # MFT: the label it must get; INV: the base sentence's intended label

    @property
    def invariance(self) -> bool:
        return self.category.startswith("inv_")

    def failed(self, labels: tuple[str, ...]) -> bool:
        """Whether a model's labels for ``texts`` (in order) fail this case."""
        if len(labels) != len(self.texts):
            raise ValueError(f"case {self.id}: {len(labels)} labels for {len(self.texts)} texts")
        if self.invariance:
            return any(label != labels[0] for label in labels[1:])
        return labels[0] != self.label


def held_out_ids(templates: Iterable[Template]) -> frozenset[str]:
    groups: dict[tuple[str, str], list[str]] = {}
    for t in templates:
        groups.setdefault((t.category, t.label), []).append(t.id)
    held = set()
    for ids in groups.values():
        ranked = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        held.update(ranked[:max(1, round(len(ids) / 3))])
    return frozenset(held)


def slots(text: str) -> list[str]:
    """The template's slots in order of first use ("pos_adj", "pos_adj2", ...)."""
    seen: list[str] = []
    for m in _SLOT.finditer(text):
        if m.group(0)[1:-1] not in seen:
            seen.append(m.group(0)[1:-1])
    return seen


def fill(text: str, values: dict[str, str]) -> str:
    out = _SLOT.sub(lambda m: values[m.group(0)[1:-1]], text)
    out = _ARTICLE.sub(lambda m: m.group(1) + "n ", out)
    return out[0].upper() + out[1:]


def fills(template: Template, limit: int) -> list[dict[str, str]]:
    """Up to ``limit`` distinct slot assignments, a sample of all of them seeded by the template id.
    Slots from one list (``pos_adj``, ``pos_adj2``) take different words: "a good film with a good
    plot" tests less than it seems to."""
    names = slots(template.text)
    lists = [_SLOT.fullmatch("{" + s + "}").group(1) for s in names]
    combos = []
    for words in itertools.product(*(WORDS[name] for name in lists)):
        if all(len(set(w for w, l in zip(words, lists) if l == name)) == lists.count(name) for name in set(lists)):
            combos.append(dict(zip(names, words)))
    return combos if len(combos) <= limit else random.Random(template.id).sample(combos, limit)


# ---------------------------------------------------------------- perturbations (INV)

def drop_end_punctuation(text: str) -> str:
    return text.rstrip(".!?;")


def exclaim(text: str) -> str:
    return drop_end_punctuation(text) + "!"


def drop_commas(text: str) -> str:
    return re.sub(r"\s*[,;]\s*", " ", text)


def typo(text: str, rng: random.Random) -> str:
    """One swap of two neighbouring letters inside a word of four letters or more (CheckList's typo)."""
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", text)]
    m = rng.choice(words)
    i = rng.randrange(m.start(), m.end() - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


SURFACE: dict[str, tuple[Callable[[str], str], ...]] = {
    "inv_punctuation": (drop_end_punctuation, exclaim, drop_commas),
    "inv_case": (str.lower, str.upper),
}


def _variants(template: Template, values: dict[str, str], base: str) -> list[str]:
    category = template.category
    if category in SWAPPED_SLOT:
        slot = SWAPPED_SLOT[category]
        rng = random.Random(f"{template.id}|{base}")
        others = rng.sample([w for w in WORDS[slot] if w != values[slot]], NAME_TITLE_VARIANTS)
        return [fill(template.text, {**values, slot: other}) for other in others]
    if category == "inv_typo":
        rng = random.Random(f"{template.id}|{base}")
        return [typo(base, rng) for _ in range(TYPO_VARIANTS)]
    return [perturb(base) for perturb in SURFACE[category]]


def generate(templates: Iterable[Template] = TEMPLATES) -> list[Case]:
    templates = list(templates)
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise ValueError("template ids must be unique")
    held = held_out_ids(templates)
    cases: list[Case] = []
    for t in templates:
        split = HELD_OUT if t.id in held else DEV
        if not t.category.startswith("inv_"):
            for i, values in enumerate(fills(t, MFT_FILLS_PER_TEMPLATE)):
                cases.append(Case(f"{t.id}-{i}", t.category, t.id, split, (fill(t.text, values),), t.label))
            continue
        for i, values in enumerate(fills(t, INV_BASES_PER_TEMPLATE)):
            base = fill(t.text, values)
            variants = [v for v in dict.fromkeys(_variants(t, values, base)) if v != base]
            cases.append(Case(f"{t.id}-{i}", t.category, t.id, split, (base, *variants), t.label))
    splits_of: dict[str, set[str]] = {}
    for c in cases:
        for text in c.texts:
            splits_of.setdefault(text, set()).add(c.split)
    shared = [text for text, s in splits_of.items() if len(s) > 1]
    if shared:  # two templates of different splits can make the same sentence
        raise ValueError(f"{len(shared)} sentences are in both splits, e.g. {shared[0]!r}: reword a template")
    return cases
