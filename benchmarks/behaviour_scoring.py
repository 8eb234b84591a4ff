"""Failure rates of the behaviour suite per category, split and model, and the table that shows them.

``overall`` is the mean of the category rates, not the rate over all cases: categories differ in
size by how many fills their templates have, not by how much they matter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from behaviour_cases import SPLITS, Case
from behaviour_templates import CATEGORIES

Labeller = Callable[[Sequence[str]], Sequence[str]]  # texts -> "positive" / "negative" / "neutral"
OVERALL = "overall"


@dataclass(frozen=True)
class Rate:
    failed: int
    total: int
    mean: float | None = None  # OVERALL: the mean of the category rates, which is its value

    @property
    def value(self) -> float:
        if self.mean is not None:
            return self.mean
        return self.failed / self.total if self.total else float("nan")


def label_cases(cases: Sequence[Case], labeller: Labeller) -> dict[str, tuple[str, ...]]:
    """Every case's labels, from one call over all distinct texts (batching is the labeller's job)."""
    texts = list(dict.fromkeys(t for c in cases for t in c.texts))
    labels = list(labeller(texts))
    if len(labels) != len(texts):
        raise ValueError(f"the labeller gave {len(labels)} labels for {len(texts)} texts")
    by_text = dict(zip(texts, labels))
    return {c.id: tuple(by_text[t] for t in c.texts) for c in cases}


def failure_rates(cases: Sequence[Case], labels: Mapping[str, tuple[str, ...]]) -> dict[tuple[str, str], Rate]:
    """{(category, split): Rate}, plus (OVERALL, split) as the mean of that split's category rates
    (``Rate.failed``/``total`` of OVERALL are the pooled counts, for reference)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for case in cases:
        c = counts.setdefault((case.category, case.split), [0, 0])
        c[0] += case.failed(labels[case.id])
        c[1] += 1
    rates = {key: Rate(*c) for key, c in counts.items()}
    for split in SPLITS:
        parts = [r for (cat, s), r in rates.items() if s == split]
        if parts:
            rates[(OVERALL, split)] = Rate(sum(r.failed for r in parts), sum(r.total for r in parts),
                                           sum(r.value for r in parts) / len(parts))
    return rates


def template_rates(cases: Sequence[Case], labels: Mapping[str, tuple[str, ...]]) -> dict[str, Rate]:
    """{template id: Rate}: a category's rate hides that its templates often pass or fail whole."""
    counts: dict[str, list[int]] = {}
    for case in cases:
        c = counts.setdefault(case.template_id, [0, 0])
        c[0] += case.failed(labels[case.id])
        c[1] += 1
    return {tid: Rate(*c) for tid, c in counts.items()}


def swap_effects(cases: Sequence[Case], scores: Mapping[str, float], words: Sequence[str],
                 category: str) -> dict[str, float]:
    """Per swapped word (a name, a title): the mean of (score of the sentence with it - the mean
    score of its case's sentences), over the ``category``'s cases. 0 for a model that ignores it."""
    shifts: dict[str, list[float]] = {w: [] for w in words}
    for case in cases:
        if case.category != category:
            continue
        mean = sum(scores[t] for t in case.texts) / len(case.texts)
        for text in case.texts:
            found = [w for w in words if w in text]
            if len(found) != 1:
                raise ValueError(f"case {case.id}: {text!r} holds {len(found)} of the swapped words")
            shifts[found[0]].append(scores[text] - mean)
    return {w: sum(v) / len(v) for w, v in shifts.items() if v}


def failures(cases: Sequence[Case], labels: Mapping[str, tuple[str, ...]], category: str,
             split: str | None = None) -> list[tuple[Case, tuple[str, ...]]]:
    return [(c, labels[c.id]) for c in cases
            if c.category == category and (split is None or c.split == split) and c.failed(labels[c.id])]


def table(cases: Sequence[Case], rates_by_model: Mapping[str, Mapping[tuple[str, str], Rate]]) -> str:
    """One text table: a row per category and overall; per model, dev and held-out failure rates (%)."""
    sizes = {(c.category, c.split): 0 for c in cases}
    for c in cases:
        sizes[(c.category, c.split)] += 1
    categories = [c for c in CATEGORIES if any((c, s) in sizes for s in SPLITS)]
    categories += sorted({c.category for c in cases} - set(categories))
    models = list(rates_by_model)
    head = ["category", "n dev", "n held"] + [f"{m} {s}" for m in models for s in ("dev", "held")]
    rows = []
    for cat in categories + [OVERALL]:
        if cat == OVERALL:
            row = [OVERALL, str(sum(v for (c, s), v in sizes.items() if s == SPLITS[0])),
                   str(sum(v for (c, s), v in sizes.items() if s == SPLITS[1]))]
        else:
            row = [cat, str(sizes.get((cat, SPLITS[0]), 0)), str(sizes.get((cat, SPLITS[1]), 0))]
        for m in models:
            for split in SPLITS:
                rate = rates_by_model[m].get((cat, split))
                row.append("-" if rate is None else f"{100 * rate.value:.1f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule] + [line(r) for r in rows[:-1]] + [rule, line(rows[-1])])
