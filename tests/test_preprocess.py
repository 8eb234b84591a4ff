"""Preprocessing: parity with the original pipeline, HTML handling, the negation variant, speed path."""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("NLTK_DATA", str(REPO.parent / "shared" / "nltk_data"))

from model.preprocess import (  # noqa: E402
    Preprocessor, StopwordsMissing, html_to_text, nltk_english_stopwords, original_review_to_words, porter_stem,
    review_words,
)

SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"

SAMPLES = [
    "This movie was <b>great</b>!<br /><br />I didn't like the ending, though.",
    "I loved it &amp; my kids loved it too. 10/10",
    "Not good. Not bad. <i>Meh</i>",
    "He said: \"I <em>won't</em> watch this again\" -- and he didn't.<br />",
    "Caf\u00e9 d\u00e9j\u00e0 vu, na\u00efve \u00fcber STRANGE   spacing\tand\nnewlines",
    "a < b and c > d, 3<4 but <br/> and <BR> differ from <br />",
    "<p>Paragraph</p><script>alert('x')</script>&lt;tag&gt; &#39;quoted&#39;",
    "",
    "   ",
    "the a an of and",  # only stopwords
    "Running runners ran; generously generous generalizations",
]


@pytest.fixture(scope="module")
def original():
    return Preprocessor.create("original")


@pytest.fixture(scope="module")
def negation():
    return Preprocessor.create("negation")


@pytest.mark.parametrize("review", SAMPLES)
def test_original_mode_gives_the_original_tokens(original, review):
    assert original.tokens(review) == original_review_to_words(review)


@pytest.mark.parametrize("review", SAMPLES)
def test_html_fast_path_matches_beautifulsoup(review):
    from bs4 import BeautifulSoup
    assert html_to_text(review) == BeautifulSoup(review, "html.parser").get_text()


def real_reviews() -> list[str]:
    """The committed IMDB-style reviews, plus 20 sampled from the real archive where it is at hand."""
    import json
    reviews = json.loads((REPO / "tests" / "data" / "imdb_style_reviews.json").read_text())["reviews"]
    if SHARED_ARCHIVE.is_file():
        from model.data import load
        reviews += [r.text for r in random.Random(1).sample(load(SHARED_ARCHIVE, splits=("test",)).test, 20)]
    return reviews


def test_parity_on_real_reviews(original):
    reviews = real_reviews()
    assert len(reviews) >= 20
    for review in reviews:
        assert original.tokens(review) == original_review_to_words(review), review[:80]
        from bs4 import BeautifulSoup
        assert html_to_text(review) == BeautifulSoup(review, "html.parser").get_text(), review[:80]


def test_html_is_stripped_and_words_lowercased():
    assert review_words("A <b>Bold</b> claim<br />Next") == ["a", "bold", "claimnext"]
    assert review_words("Tom &amp; Jerry") == ["tom", "jerry"]


def test_negation_mode_keeps_negations(original, negation):
    review = "I didn't like it. It was not good, no fun, nor clever."
    assert "not" not in original.tokens(review)
    tokens = negation.tokens(review)
    assert tokens.count("not") == 4  # didn(t), not, no, nor
    assert tokens[:2] == ["not", "like"]
    # everything that is not a negation is treated exactly as in the original mode
    assert [t for t in tokens if t != "not"] == original.tokens(review)


def test_token_of_single_words(negation, original):
    assert original.token("the") is None
    assert original.token("running") == "run"
    assert negation.token("don") == "not"
    assert negation.token("t") is None


def test_zero_token_review(original):
    assert original.tokens("the and of <br />") == []


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="original, negation"):
        Preprocessor.create("stemless", stopwords=[])


def test_stored_stopwords_need_no_nltk_data(monkeypatch, original):
    monkeypatch.setenv("NLTK_DATA", "/nonexistent")
    p = Preprocessor.create("original", stopwords=sorted(original.stopwords))
    assert p.tokens("This is the best film") == ["best", "film"]


def test_missing_stopwords_corpus_gives_an_actionable_error(tmp_path):
    import subprocess
    import sys
    # nltk.data.path emptied but for an empty folder: the system-wide NLTK folders, where a machine
    # may have the stopwords installed, are not searched either
    code = ("import nltk; nltk.data.path[:] = [%r]; from model.preprocess import Preprocessor; "
            "Preprocessor.create('original')" % str(tmp_path))
    env = {**os.environ, "NLTK_DATA": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "StopwordsMissing" in proc.stderr and "NLTK_DATA" in proc.stderr


def test_many_reviews_over_processes_match_single_process(original):
    reviews = [SAMPLES[i % len(SAMPLES)] + f" review number {i}" for i in range(2500)]
    assert original.tokens_many(reviews, workers=2) == [original.tokens(r) for r in reviews]


def _clock(text: str) -> int:
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def test_progress_bar_over_processes_promises_a_sensible_time(original, monkeypatch):
    """Every tick's ETA is within reach of the real run time (it once said 72 hours at first)."""
    import io
    import time

    import tqdm

    out = io.StringIO()

    class EveryUpdate(tqdm.tqdm):  # print every tick, into ``out``
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": out, "mininterval": 0, "miniters": 1})

    monkeypatch.setattr(tqdm, "tqdm", EveryUpdate)
    reviews = [SAMPLES[i % len(SAMPLES)] + f" review number {i}" for i in range(8000)]
    t0 = time.perf_counter()
    assert len(original.tokens_many(reviews, workers=2, progress=True)) == len(reviews)
    took = time.perf_counter() - t0
    ticks = [(int(m[1]), _clock(m[2])) for m in re.finditer(r"(\d+)/8000 \[[\d:]+<([\d:]+),", out.getvalue())]
    assert ticks and ticks[-1][0] == 8000, out.getvalue()[-500:]
    assert all(eta <= 5 + 10 * took for n, eta in ticks if n > 0), (took, ticks[:5])


HOSTILE_UNITS = ["<a x=", "<!--", "<b>", "<<<<>", "a < b ", "<a href='x'>t</a> ", "&#", "<![CDATA[", "<?x",
                 "</", "x <!-- c --> y", "<p>end", "tail <a x=1"]


@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_unclosed_markup_reads_as_the_parser_reads_it(unit):
    """Stray '<' are escaped before parsing (html.parser is quadratic on them) with the same words."""
    import re
    from bs4 import BeautifulSoup
    text = unit * 5 + " word"
    expected = re.sub(r"[^a-z0-9]", " ", BeautifulSoup(text, "html.parser").get_text().lower()).split()
    assert review_words(text) == expected


def test_stray_markup_is_escaped_and_well_formed_markup_kept():
    from model.preprocess import _neutralise_stray_markup
    assert _neutralise_stray_markup("<a x=" * 3) == "&lt;a x=" * 3
    assert _neutralise_stray_markup("<!--<!--") == "&lt;!--&lt;!--"
    assert _neutralise_stray_markup("<i>ok</i> 3<4 <!-- c -->") == "<i>ok</i> 3&lt;4 <!-- c -->"


def test_keep_mode_drops_no_word_but_still_stems(original):
    keep = Preprocessor.create("keep", stopwords=original.stopwords)
    review = "I didn't like it, but the acting was very good"
    assert keep.tokens(review) == [porter_stem(w) for w in review_words(review)]
    assert {"but", "veri"} <= set(keep.tokens(review))
    assert keep.token("the") == "the"


# CVE-2025-6069: html.parser is quadratic on unclosed markup. Before the escape, 128 KB of "<a x="
# cost 128 s of CPU and of "<!--" 14 s; with it, about 0.3 s each. At 256 KB (the bug: 4x that)
# the bound of 10 s CPU per review leaves room for a machine 30x slower than this one, and the
# child is stopped by the kernel (RLIMIT_CPU) once it has spent 40 s, so a regression fails in
# under a minute of CPU instead of running for ten.
_CPU_PROBE = """
import json, resource, sys, time
from model.preprocess import review_words
resource.setrlimit(resource.RLIMIT_CPU, (40, 40))
out = {}
for unit in json.loads(sys.argv[1]):
    text = unit * (262144 // len(unit))
    t0 = time.process_time()
    review_words(text)
    out[unit] = time.process_time() - t0
print(json.dumps(out))
"""


def test_unclosed_markup_costs_linear_time():
    import json
    import subprocess
    import sys
    units = ["<a x=", "<!--", "<<<<>", "</", "<![CDATA[", "<?x"]
    proc = subprocess.run([sys.executable, "-c", _CPU_PROBE, json.dumps(units)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"killed after 40 s of CPU (quadratic parsing?): {proc.stderr[-500:]}"
    seconds = json.loads(proc.stdout)
    assert max(seconds.values()) < 10, seconds
