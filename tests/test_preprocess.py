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


def test_contrast_mode_also_keeps_the_words_that_turn_a_clause(original, negation):
    from model.preprocess import CONTRAST_WORDS
    contrast = Preprocessor.create("contrast", stopwords=original.stopwords)
    review = "I didn't like it, but it was very short and only too funny; not at all bad, no more, nor any."
    tokens = contrast.tokens(review)
    assert tokens[:2] == ["not", "like"]
    assert {"but", "veri", "onli", "too", "all", "ani", "more"} <= set(tokens)
    # everything else is what the negation mode gives
    assert [t for t in tokens if t not in {porter_stem(w) for w in CONTRAST_WORDS}] == negation.tokens(review)
    assert CONTRAST_WORDS <= original.stopwords  # each would be dropped otherwise
    assert contrast.token("but") == "but" and contrast.token("wasn") == "not" and contrast.token("the") is None


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


# What mutation testing (`make mutation ARGS=preprocess`) found unguarded: the escape's offsets and
# boundaries, the fast path's conditions, the mode comparisons and the stem cache's bypass.

def _escape_by_its_rule(text: str) -> str:
    """The escape's rule, written the obvious (quadratic) way: the reference for the linear pass.

    A '<' is kept when it opens a comment that closes ('<!--' ... '-->') or a tag ('</x', '<x', '<!',
    '<?') whose first '>' comes before any other '<'; the first '<!--' that no '-->' closes escapes
    every '<' after it; every other '<' becomes '&lt;'.
    """
    kept = re.compile(r"<!--.*?-->|(?:</?[A-Za-z]|<[!?])[^<>]*>", re.S)
    out, i = [], 0
    while (lt := text.find("<", i)) >= 0:
        out.append(text[i:lt])
        if text.startswith("<!--", lt) and "-->" not in text[lt + 4:]:
            return "".join(out) + text[lt:].replace("<", "&lt;")
        m = kept.match(text, lt)
        if m:
            out.append(m.group())
            i = m.end()
        else:
            out.append("&lt;")
            i = lt + 1
    return "".join(out) + text[i:]


_MARKUP = "ab <b>cd</b> ef<br />gh <!-- i<j --> kl &amp; <!----> mn <i x='1'>op</i> <p/>q"
_STRAY = ["<", ">", "<!--", "-->", "&", "<b", "</", "<!", "<?", "<!-->", "-", "!"]


def _generated_markup(seed: int = 0, n: int = 3000) -> list[str]:
    """Each stray piece at every offset of a well-formed review, and random runs of the pieces."""
    pieces = _STRAY + ["a", " b ", "<b>", "</b>", "<br />", "<i x='1'>", "=", "'", "\n", "3"]
    rng = random.Random(seed)
    texts = [_MARKUP[:i] + s + _MARKUP[i:] for s in _STRAY for i in range(len(_MARKUP) + 1)]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(n)]
    return texts


def test_the_escape_follows_its_rule_at_every_offset():
    from model.preprocess import _neutralise_stray_markup
    for text in _generated_markup():
        assert _neutralise_stray_markup(text) == _escape_by_its_rule(text), text


def test_well_formed_markup_passes_the_escape_unchanged():
    from model.preprocess import _neutralise_stray_markup
    for text in [_MARKUP, "<!---->", "<!-- <b> -->x", "<a>" * 3, "x<br />" * 3, "<!x><?y>z"]:
        assert _neutralise_stray_markup(text) == text


def _readable_markup(seed: int, n: int) -> list[str]:
    """Well-formed tags and comments, stray '<', '>' and '&' that the parser keeps as text, and one
    unclosed construct at the end: where the escape promises the parser's own text."""
    body = ["ab", " cd ", "3", "\n", "&amp;", "& ", "&", "< ", "3<4", " > ", ">", "<br />", "<b>", "</b>",
            "<i x='1'>", "</i>", "<!-- c -->", "<!---->", "<p/>"]
    tails = ["", "<!-- open", "<a x=", "<p", "<", "<!--", "</b", "&#"]
    rng = random.Random(seed)
    texts = [_MARKUP[:i] + s + _MARKUP[i:] for s in ("< ", " > ", "& ") for i in range(len(_MARKUP) + 1)
             if not re.search(r"<[^>]*$", _MARKUP[:i]) and not re.search(r"<!--((?!-->).)*$", _MARKUP[:i])]
    texts += ["".join(rng.choice(body) for _ in range(rng.randint(0, 8))) + rng.choice(tails)
              for _ in range(n)]
    return texts


def test_escaped_markup_reads_as_the_parser_reads_it():
    from bs4 import BeautifulSoup
    for text in _readable_markup(seed=1, n=2000):
        assert html_to_text(text) == BeautifulSoup(text, "html.parser").get_text(), text


def test_the_fast_path_is_a_shortcut_of_the_parser():
    """Whatever skips the parser reads as escape + parser would read it, but for runs of whitespace:
    the parser makes a whitespace-only piece between tags one space ("a<br />  <br />b" is "a b"),
    the fast path keeps it ("a  b"), which changes no word."""
    import itertools

    from bs4 import BeautifulSoup

    from model.preprocess import _neutralise_stray_markup
    pieces = ["a", " ", "<br />", "<", ">", "&", "<br/>", "\n"]
    texts = ["".join(p) for k in range(1, 5) for p in itertools.product(pieces, repeat=k)]
    for text in texts + ["<br /><br />", " \t\n", "a<br />>", "<br /><", "x > y<br />"]:
        parsed = BeautifulSoup(_neutralise_stray_markup(text), "html.parser").get_text()
        assert html_to_text(text).split() == parsed.split(), text
        assert (html_to_text(text) == "") == (parsed == ""), text


def test_reviews_whose_only_markup_is_br_skip_the_parser(monkeypatch):
    import bs4

    def no_parser(*args, **kwargs):
        raise AssertionError("the parser ran")
    monkeypatch.setattr(bs4, "BeautifulSoup", no_parser)
    assert html_to_text("Great.<br /><br />Really great, 10/10") == "Great.Really great, 10/10"
    assert html_to_text("plain text, no markup") == "plain text, no markup"
    for needs_parser in ["a &amp; b", "a<br/>b", "<b>x</b>", "a > b<br />", " \n "]:
        with pytest.raises(AssertionError, match="the parser ran"):
            html_to_text(needs_parser)


# The stopwords below are a small stand-in list, so each mode's rule is visible in its tokens.
_STOP = ["i", "the", "it", "was", "but", "not", "no", "don", "t", "didn", "very"]
_REVIEW = "I didn't like the ending, but it was not bad, no; very good. Don't go"


def test_each_mode_drops_and_maps_exactly_its_words():
    words = review_words(_REVIEW)
    original = Preprocessor.create("original", stopwords=_STOP)
    negation = Preprocessor.create("negation", stopwords=_STOP)
    keep = Preprocessor.create("keep", stopwords=_STOP)
    assert original.tokens(_REVIEW) == ["like", "end", "bad", "good", "go"]
    assert negation.tokens(_REVIEW) == ["not", "like", "end", "not", "bad", "not", "good", "not", "go"]
    assert keep.tokens(_REVIEW) == [porter_stem(w) for w in words]
    assert keep.tokens(_REVIEW)[:4] == ["i", "didn", "t", "like"]
    for p in (original, negation, keep):  # one word at a time as in a whole review
        assert [t for t in map(p.token, words) if t is not None] == p.tokens(_REVIEW), p.mode


def test_negation_words_are_only_mapped_in_negation_mode():
    none_dropped = {m: Preprocessor.create(m, stopwords=[]) for m in ("original", "negation", "keep")}
    for word in ("don", "didn", "no", "nor", "wasn"):
        assert none_dropped["original"].token(word) == porter_stem(word), word
        assert none_dropped["keep"].token(word) == porter_stem(word), word
        assert none_dropped["negation"].token(word) == "not", word
    assert none_dropped["original"].tokens("I don't") == ["i", "don", "t"]
    assert none_dropped["keep"].tokens("I don't") == ["i", "don", "t"]
    assert none_dropped["negation"].tokens("I don't") == ["i", "not", "t"]


def test_only_short_words_enter_the_stem_cache():
    """The cache is bounded and a hostile 100 KB "word" never enters it (memory, not tokens)."""
    from model.preprocess import _cached_stem
    assert _cached_stem.cache_info().maxsize == 200_000
    _cached_stem.cache_clear()
    for word in ("films", "x" * 64, "y" * 65, "z" * 100_000):
        porter_stem(word)
    assert _cached_stem.cache_info().currsize == 2  # "films" and the 64 x's


def test_one_stemmer_serves_every_word():
    """The original built a PorterStemmer per word; words past the cache still share one."""
    from model.preprocess import _stemmer
    assert _stemmer() is _stemmer()


def test_a_preprocessor_cannot_change_mode_after_its_dropped_words_are_known(original):
    """``_dropped`` is cached from the mode: a mode changed afterwards would drop the old mode's words."""
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        original.mode = "keep"


def test_many_reviews_go_to_worker_processes_only_when_it_pays(original, monkeypatch):
    """2,000 reviews or more and more than one worker: a pool; fewer, or one worker: this process."""
    import multiprocessing
    pools = []
    real = multiprocessing.get_context

    def counting(method=None):
        pools.append(method)
        return real(method)
    monkeypatch.setattr(multiprocessing, "get_context", counting)
    reviews = [f"review number {i}, a fine film" for i in range(2000)]
    expected = [original.tokens(r) for r in reviews]
    assert original.tokens_many(reviews, workers=2) == expected and pools == ["fork"]
    assert original.tokens_many(reviews[:1999], workers=2) == expected[:1999] and pools == ["fork"]
    assert original.tokens_many(reviews, workers=1) == expected and pools == ["fork"]
    # no workers given: one per CPU, and this process alone where the CPU count is unknown
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert original.tokens_many(reviews) == expected and pools == ["fork", "fork"]
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert original.tokens_many(reviews) == expected and pools == ["fork", "fork"]


def test_no_progress_bar_unless_asked(original, capsys):
    original.tokens_many(["a fine film", "a dull one"])
    assert capsys.readouterr() == ("", "")
