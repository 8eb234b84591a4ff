"""Preprocessing of all 50,000 labelled IMDB reviews: the original per-review code against ours.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_preprocess.py [--sample 200]

Baseline: ``model.preprocess.original_review_to_words``, the original function (BeautifulSoup per
review, NLTK's stopword list rebuilt and a new PorterStemmer for every word), one process, as the
original ran it. At ~100-140 ms a review it would take well over an hour on all 50k, so it is timed on
a seeded random sample of ``--sample`` reviews and extrapolated to 50k (the sample's mean per review
times 50,000; the sample is drawn from all four train/test x pos/neg parts).

Ours: ``Preprocessor.create("original").tokens_many(all 50k, workers=all cores)``, timed for real on
every review (the stem cache starts empty; workers are forked per run). Also timed: ours on one
process (per-core speed-up), and the ``negation`` mode on all cores.

Parity: ours must give exactly the original tokens on every sampled review (asserted).
A breakdown of ours follows (one process: splitting into words, then stemming each distinct word
once; and how many stems the pool's workers compute between them, each with its own cache).
``--profile`` adds cProfile listings of both (the evidence for the design in docs/performance.md).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header, ratio  # noqa: E402


def clear_stem_cache() -> None:
    """Empty our stem cache (its name moved between versions of model/preprocess.py)."""
    from model import preprocess
    for name in ("_cached_stem", "porter_stem"):
        fn = getattr(preprocess, name, None)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
            return
    raise RuntimeError("model.preprocess has no stem cache to clear")


def profile(fn, *args, top: int = 12, sort: str = "tottime") -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn(*args)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(sort).print_stats(top)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(_common.DATA))
    ap.add_argument("--sample", type=int, default=200, help="reviews the original code is timed on")
    ap.add_argument("--seed", type=int, default=20241128)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--profile", action="store_true", help="print cProfile listings")
    args = ap.parse_args()

    _common.set_nltk_data()
    header("preprocessing: original per-review code vs ours")
    from model.data import load
    from model.preprocess import Preprocessor, original_review_to_words, porter_stem, review_words

    t0 = time.perf_counter()
    dataset = load(args.data)
    texts = [r.text for r in dataset.train + dataset.test]
    print(f"loaded {len(texts)} reviews in {time.perf_counter() - t0:.1f} s (not timed below)")
    n = len(texts)
    rng = random.Random(args.seed)
    sample_idx = sorted(rng.sample(range(n), args.sample))
    sample_words = sum(len(texts[i].split()) for i in sample_idx) / len(sample_idx)
    all_words = sum(len(t.split()) for t in texts) / n
    print(f"sample: {len(sample_idx)} reviews (seed {args.seed}), mean {sample_words:.0f} "
          f"whitespace words/review; all {n}: mean {all_words:.0f}")

    original = Preprocessor.create("original")
    negation = Preprocessor.create("negation")

    # --- ours, all cores, all reviews (cold stem cache: workers fork from a parent with none)
    clear_stem_cache()
    t0 = time.perf_counter()
    ours_tokens = original.tokens_many(texts, workers=args.workers)
    ours_s = time.perf_counter() - t0
    print(f"ours     original mode, {args.workers} workers, all {n}: {ours_s:.2f} s "
          f"({1e3 * ours_s / n:.3f} ms/review wall)", flush=True)

    clear_stem_cache()
    t0 = time.perf_counter()
    neg_tokens = negation.tokens_many(texts, workers=args.workers)
    neg_s = time.perf_counter() - t0
    print(f"ours     negation mode, {args.workers} workers, all {n}: {neg_s:.2f} s", flush=True)
    del neg_tokens

    clear_stem_cache()
    t0 = time.perf_counter()
    one_tokens = original.tokens_many(texts, workers=1)
    one_s = time.perf_counter() - t0
    print(f"ours     original mode, 1 process, all {n}: {one_s:.2f} s "
          f"({1e3 * one_s / n:.3f} ms/review)", flush=True)
    assert one_tokens == ours_tokens, "one process and the pool disagree"
    del one_tokens

    # --- the original code on the sample, one process
    base = []
    t0 = time.perf_counter()
    for i in sample_idx:
        base.append(original_review_to_words(texts[i]))
    base_s = time.perf_counter() - t0
    per_review = base_s / len(sample_idx)
    base_50k = per_review * n
    print(f"original {len(sample_idx)} reviews: {base_s:.2f} s = {1e3 * per_review:.1f} ms/review "
          f"-> extrapolated to {n}: {base_50k:.0f} s ({base_50k / 3600:.2f} h)", flush=True)

    mismatches = [i for i, toks in zip(sample_idx, base) if toks != ours_tokens[i]]
    assert not mismatches, f"tokens differ from the original on reviews {mismatches[:10]}"
    print(f"parity: identical tokens on all {len(sample_idx)} sampled reviews "
          f"({sum(len(t) for t in base)} tokens)")

    print()
    print("| measure | original (extrapolated) | ours | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| 50k reviews, all cores ({args.workers}) | {base_50k:.0f} s | {ours_s:.1f} s | "
          f"{ratio(base_50k, ours_s)} |")
    print(f"| 50k reviews, one process each | {base_50k:.0f} s | {one_s:.1f} s | {ratio(base_50k, one_s)} |")
    print(f"| 50k reviews, negation mode, all cores | {base_50k:.0f} s | {neg_s:.1f} s | "
          f"{ratio(base_50k, neg_s)} |")
    print(f"target: >=300x and <=20 s on 2 cores: ratio {base_50k / ours_s:.0f}x "
          f"({'met' if base_50k / ours_s >= 300 else 'MISSED'}), total {ours_s:.1f} s "
          f"({'met' if ours_s <= 20 else 'MISSED'})")

    # --- where ours spends its time (one process): words, then stemming each distinct word once
    t0 = time.perf_counter()
    words = [review_words(t) for t in texts]
    words_s = time.perf_counter() - t0
    distinct = {w for ws in words for w in ws if w not in original.stopwords}
    clear_stem_cache()
    t0 = time.perf_counter()
    for w in distinct:
        porter_stem(w)
    stem_s = time.perf_counter() - t0
    # what the pool's workers stem: each has its own cache, so a word met by both is stemmed twice
    chunk = max(64, n // (args.workers * 16))
    per_worker = [set() for _ in range(args.workers)]
    for c, start in enumerate(range(0, n, chunk)):
        seen = per_worker[c % args.workers]
        for ws in words[start:start + chunk]:
            seen.update(w for w in ws if w not in original.stopwords)
    stemmed = sum(len(s) for s in per_worker)
    print(f"\nbreakdown, one process: HTML check + lower-case + split of all {n}: {words_s:.1f} s; "
          f"{len(distinct):,} distinct non-stopwords, stemming each once: {stem_s:.1f} s "
          f"({1e3 * stem_s / len(distinct):.3f} ms/word); the rest (stopword filter, cache look-ups) "
          f"~{max(0.0, one_s - words_s - stem_s):.1f} s of the one-process {one_s:.1f} s")
    print(f"with {args.workers} workers (chunks of {chunk} dealt round-robin, as an estimate of the pool's "
          f"dynamic dealing), {stemmed:,} stems are computed in all, {stemmed / len(distinct):.2f}x the "
          f"distinct words: a cache each")
    del words

    if args.profile:
        prof_idx = sample_idx[:20]
        print("\n## cProfile: original code, 20 sampled reviews (sorted by cumulative time)")
        print(profile(lambda: [original_review_to_words(texts[i]) for i in prof_idx], top=25, sort="cumulative"))
        clear_stem_cache()
        print("\n## cProfile: ours, one process, first 5000 reviews, cold stem cache (sorted by own time)")
        print(profile(lambda: [original.tokens(t) for t in texts[:5000]]))
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
