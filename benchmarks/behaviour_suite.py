#!/usr/bin/env python3
"""The behaviour suite: CheckList-style minimum-functionality and invariance tests about films.

    .venv/bin/python benchmarks/behaviour_suite.py --models default=artifacts/model-card \\
        quick=.local/model original=artifacts/original nblr=artifacts/nblr vader \\
        [--examples 3] [--cases-out benchmarks/results/behaviour-suite-cases.csv] [--dev-only]

Prints the machine and load, each model, one table of failure rates (%) per category and overall
(the mean of the categories) on the development and the held-out templates side by side, then a
few failed sentences per model and category, from the development templates only unless
--held-out-examples: the held-out part is for reporting, not for looking at while choosing.
Sentences and splits come from behaviour_templates.py and behaviour_cases.py (Ribeiro et al.,
ACL 2020: a test fails when an MFT sentence gets the wrong label, or when any variant of an
invariance case gets another label than its base sentence).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401 - puts the repository on sys.path
from _common import footer, header  # noqa: E402
from behaviour_cases import DEV, HELD_OUT, generate  # noqa: E402
from behaviour_scoring import failure_rates, failures, label_cases, swap_effects, table, template_rates  # noqa: E402
from behaviour_templates import CATEGORIES, SWAPPED_SLOT, TEMPLATES, WORDS  # noqa: E402
from sentiment_predictors import NEUTRAL, MissingDependency, from_spec  # noqa: E402

DEFAULT_MODELS = ("default=artifacts/model-card", "quick=.local/model", "original=artifacts/original",
                  "nblr=artifacts/nblr", "vader")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help="NAME=DIR (an LSTM or NB-LR model directory) or vader; default: %(default)s")
    p.add_argument("--examples", type=int, default=3, help="failed sentences shown per model and category")
    p.add_argument("--held-out-examples", action="store_true", help="show held-out failures too")
    p.add_argument("--by-template", action="store_true", help="also print each template's failure rate")
    p.add_argument("--cases-out", type=Path, help="write every sentence's score per model to this CSV")
    p.add_argument("--dev-only", action="store_true",
                   help="score the development templates only: for choosing a model without seeing the held-out part")
    args = p.parse_args()
    _common.set_nltk_data()

    try:
        predictors = [from_spec(spec) for spec in args.models]
    except (MissingDependency, FileNotFoundError) as exc:
        print(f"behaviour_suite: {exc}", file=sys.stderr)
        return 2
    cases = generate()
    if args.dev_only:
        cases = [c for c in cases if c.split == DEV]
    header("behaviour suite: failure rate (%) per category, development and held-out templates")
    print(f"cases: {len(cases)} ({sum(c.split == DEV for c in cases)} dev, "
          f"{sum(c.split == HELD_OUT for c in cases)} held-out) from "
          f"{len({c.template_id for c in cases})} templates; "
          f"{len({t for c in cases for t in c.texts})} distinct sentences")
    texts = list(dict.fromkeys(t for c in cases for t in c.texts))
    scores, labels, rates = {}, {}, {}
    for pred in predictors:
        start = time.perf_counter()
        scores[pred.name] = dict(zip(texts, pred.scores(texts)))
        labels[pred.name] = label_cases(
            cases, lambda ts, s=scores[pred.name], p=pred: p.labels_of_scores([s[t] for t in ts]))
        rates[pred.name] = failure_rates(cases, labels[pred.name])
        mft = [c for c in cases if not c.invariance]
        neutral = sum(labels[pred.name][c.id][0] == NEUTRAL for c in mft)
        said = f"; neutral for {neutral} of the {len(mft)} MFT sentences" if neutral else ""
        print(f"model {pred.name}: {pred.describe}; {time.perf_counter() - start:.1f} s{said}", flush=True)

    print()
    print(table(cases, rates))
    print("\nfailure: an MFT sentence with the wrong label (VADER's neutral is wrong), or an invariance "
          "case whose variants do not all keep the base sentence's label; overall = mean of the categories.")
    for cat, what in CATEGORIES.items():
        print(f"  {cat:26} {what}")

    if args.by_template:
        per_model = {pred.name: template_rates(cases, labels[pred.name]) for pred in predictors}
        split_of = {c.template_id: c.split for c in cases}
        print("\nfailure rate (%) per template: " + "  ".join(pred.name for pred in predictors))
        for t in TEMPLATES:
            cells = "  ".join(f"{100 * per_model[pred.name][t.id].value:5.1f}" for pred in predictors)
            print(f"  {t.id:24} {split_of[t.id]:8} {t.label:8} {cells}  {t.text}")

    print("\nmean shift of the score by the name or title in a sentence, from its case's mean (names: "
          "all INV_name cases; titles: all INV_title cases; VADER: compound)")
    for cat, slot in SWAPPED_SLOT.items():
        for pred in predictors:
            effects = sorted(swap_effects(cases, scores[pred.name], WORDS[slot], cat).items(), key=lambda kv: kv[1])
            print(f"  {slot:5} {pred.name:9} " + ", ".join(f"{w} {d:+.3f}" for w, d in effects))

    splits = (DEV, HELD_OUT) if args.held_out_examples else (DEV,)
    if args.examples:
        print(f"\nfailed examples ({' and '.join(splits)} templates; score = P(positive), VADER: compound)")
        for pred in predictors:
            print(f"\n[{pred.name}]")
            for cat in CATEGORIES:
                shown = [f for split in splits for f in failures(cases, labels[pred.name], cat, split)]
                for case, got in shown[:args.examples]:
                    texts_shown = case.texts if case.invariance else case.texts[:1]
                    said = ", ".join(f"{t!r} {scores[pred.name][t]:+.2f} {g}" for t, g in zip(texts_shown, got))
                    want = "same label for all" if case.invariance else case.label
                    print(f"  {cat}: {said}  (wanted: {want})")
    if args.cases_out:
        args.cases_out.parent.mkdir(parents=True, exist_ok=True)
        with args.cases_out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case", "category", "split", "template", "label", "text"] + [p.name for p in predictors])
            for c in cases:
                for t in c.texts:
                    w.writerow([c.id, c.category, c.split, c.template_id, c.label, t]
                               + [f"{scores[p.name][t]:.4f}" for p in predictors])
        print(f"\nper-sentence scores: {args.cases_out}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
