"""The training sentences of model/augment.py: seeded, balanced, labelled as they compose, and none
of them a behaviour-suite sentence (the suite scores templates the training never saw)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from model import augment

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated() -> list[augment.Sentence]:
    return augment.sentences(4000, seed=42)


def test_same_seed_same_sentences_and_half_positive(generated):
    assert augment.sentences(4000, seed=42) == generated
    assert augment.sentences(4000, seed=7) != generated
    assert sum(s.label for s in generated) == 2000
    assert len(augment.sentences(5, seed=1)) == 5 and augment.sentences(0, seed=1) == []


def _polar_words(text: str) -> list[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return [w for w in words if w in augment.GOOD or w in augment.BAD]


def _without_neutral(text: str) -> str:
    for n in augment.NEUTRAL:
        text = text.replace(n, "").strip()
    return text


@pytest.mark.parametrize("endings, flips", [(augment.DENY, True), (augment.DENY_APART, True),
                                            (augment.CONFIRM, False), (augment.CONFIRM_APART, False)])
def test_an_expectation_denied_at_the_end_flips_the_label_and_one_met_keeps_it(generated, endings, flips):
    expectations = "|".join(re.escape(e).replace(r"\{s\}", "(?:[a-z ]+)").replace(r"\{w\}", "([a-z]+)")
                            for e in augment.EXPECT)
    sep = ", " if endings in (augment.DENY, augment.CONFIRM) else ". "
    shape = re.compile(rf"(?i)(?:{expectations}){re.escape(sep)}(?:{'|'.join(map(re.escape, endings))})[.!]*")
    seen = 0
    for s in generated:
        match = shape.fullmatch(_without_neutral(s.text))
        if not match:
            continue
        word = next(g for g in match.groups() if g)
        assert s.label == int((word in augment.GOOD) != flips), s.text
        seen += 1
    assert seen > 30


def test_a_single_negated_statement_has_the_other_label(generated):
    seen = 0
    for s in generated:
        text = s.text.lower()
        clauses = [c for c in re.split(r"[.!;,]", text) if _polar_words(c)]
        negated = [n for n in augment.NOT_BE if re.search(rf"\b{re.escape(n)}\b", text)]
        if len(clauses) != 1 or not negated or "expected" in text or "nothing" in text:
            continue
        words = _polar_words(clauses[0])
        if len(words) != 1 or " i " in f" {text} ":
            continue
        assert s.label == int(words[0] in augment.BAD), s.text
        seen += 1
    assert seen > 100


def test_hardly_any_sentence_is_one_the_behaviour_suite_scores():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from behaviour_cases import generate

    def norm(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    suite = {norm(t) for c in generate() for t in c.texts}
    same = {norm(s.text) for s in augment.sentences(20_000, seed=42)} & suite
    # A few of the shortest statements come out word for word alike from any two generators
    # ("I loved this film"): 31 of the suite's 3,922 sentences when this was written, recorded in
    # docs/model-card.md. More would mean the generator had drifted towards the suite's templates.
    assert len(same) <= len(suite) // 100, sorted(same)


def test_sentences_join_the_training_reviews_and_are_spared_word_dropout():
    from model.training_loop import Encoded, training_examples
    from model.vocab import Vocabulary

    vocab = Vocabulary.build([["not", "good", "film"]], 10)
    reviews = Encoded(ids=[[2, 3], [4]], labels=[1, 0])
    sentences = [augment.Sentence("Not good.", 0)]
    examples, is_review = training_examples(reviews, sentences, [["not", "good", "unseen"]], vocab, max_len=2)
    assert examples.ids == [[2, 3], [4], [vocab.index["not"], vocab.index["good"]]]
    assert examples.labels == [1, 0, 0]
    assert is_review.tolist() == [True, True, False]
    assert reviews.ids == [[2, 3], [4]]  # the reviews' own lists are left as they were
