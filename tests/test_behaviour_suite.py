"""The behaviour suite's generator, split and scoring (benchmarks/behaviour_*.py), on toy predictors.

Standard library only, like the modules it tests: the suite's models (scikit-learn, VADER, torch)
are not needed to trust what the table counts.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.append(str(BENCHMARKS))  # appended: benchmark scripts must not shadow what other tests import

import behaviour_cases as bc  # noqa: E402
import behaviour_scoring as bs  # noqa: E402
from behaviour_templates import CATEGORIES, INVARIANCE, NEG, POS, TEMPLATES, WORDS, Template  # noqa: E402


@pytest.fixture(scope="module")
def cases():
    return bc.generate()


def test_every_category_of_the_issue_has_dev_and_held_out_cases_of_each_label(cases):
    groups = Counter((c.category, c.split, c.label) for c in cases)
    for category in CATEGORIES:
        labels = {t.label for t in TEMPLATES if t.category == category}
        for label in labels:
            for split in bc.SPLITS:
                assert groups[(category, split, label)] >= 8, (category, split, label)
    mft_labels = {t.label for t in TEMPLATES if t.category == "negated_positive"}
    assert mft_labels == {NEG}
    assert {t.label for t in TEMPLATES if t.category == "negated_negative"} == {POS}


def test_templates_are_filled_completely_and_in_good_english(cases):
    for c in cases:
        for text in c.texts if c.category != "inv_typo" else c.texts[:1]:  # typos are meant
            assert "{" not in text and "}" not in text, text
            assert text[0].isupper() or c.category == "inv_case", text
            # "an" before a vowel, "a" before a consonant, as the article fixer promises
            assert not re.search(r"\b[Aa] [aeiouAEIOU]", text), text
            assert not re.search(r"\b[Aa]n [b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z]", text), text


def test_mft_sentences_carry_the_words_that_make_their_label():
    """Spot checks that templates mean what their label says: negated positives hold a negation and
    a positive word, contrasts end on the deciding clause's polarity."""
    for t in TEMPLATES:
        if t.category == "negated_positive":
            assert re.search(r"\b(not|n't|never|nothing)\b|n't", t.text), t.text
            assert re.search(r"\{pos_", t.text), t.text
        if t.category == "contrast":
            last = t.text.split(",")[-1]
            wanted = "pos_" if t.label == POS else "neg_"
            assert wanted in last, t.text


def test_split_is_by_template_disjoint_and_a_third_of_each_group():
    held = bc.held_out_ids(TEMPLATES)
    groups = Counter((t.category, t.label) for t in TEMPLATES)
    held_groups = Counter((t.category, t.label) for t in TEMPLATES if t.id in held)
    for group, n in groups.items():
        assert n >= 2, f"{group}: one template cannot be split"
        assert held_groups[group] == max(1, round(n / 3)), group


def test_split_and_sentences_are_stable(cases):
    again = bc.generate()
    assert [(c.id, c.split, c.texts) for c in again] == [(c.id, c.split, c.texts) for c in cases]
    # Pinned: a change to the templates, word lists, sampling or split moves sentences between the
    # splits, and every reported held-out figure would then mean something else. Change these only
    # with the model card's tables rerun.
    held = sorted(bc.held_out_ids(TEMPLATES))
    assert len(held) == 32 and held[:4] == ["contrast-n1", "contrast-p1", "intensifier-n3", "intensifier-p3"]
    digest = hashlib.sha256("\n".join(f"{c.id}|{c.split}|{c.label}|" + "|".join(c.texts)
                                      for c in cases).encode()).hexdigest()
    assert digest == "396b604f8f847337c98f29d784289b01f62be8802b0a00e7e2155e0f6710239e"


def test_split_depends_only_on_each_groups_ids():
    """Adding a template to one category must not move any other category's templates."""
    extra = Template("plain-p99", "plain", "The {thing} was {pos_adj} indeed.", POS)
    before = bc.held_out_ids(TEMPLATES)
    after = bc.held_out_ids(TEMPLATES + (extra,))
    others = {t.id for t in TEMPLATES if (t.category, t.label) != ("plain", POS)}
    assert before & others == after & others


def test_no_sentence_is_in_both_splits(cases):
    dev = {t for c in cases if c.split == bc.DEV for t in c.texts}
    held = {t for c in cases if c.split == bc.HELD_OUT for t in c.texts}
    assert dev and held and not dev & held


def test_templates_that_make_the_same_sentence_in_both_splits_are_refused():
    # same text, other category: one of the pair lands in the held-out split, the other not
    twins = (Template("plain-p1", "plain", "I {pos_verb} this {film}.", POS),
             Template("plain-n1", "plain", "I {neg_verb} this {film}.", NEG),
             Template("softener-p1", "softener", "Fine {film}.", POS),
             Template("softener-p2", "softener", "I {pos_verb} this {film}.", POS),
             Template("softener-p3", "softener", "Good {film}.", POS))
    assert "softener-p2" not in bc.held_out_ids(twins) and "plain-p1" in bc.held_out_ids(twins)
    with pytest.raises(ValueError, match="in both splits"):
        bc.generate(twins)


def test_duplicate_template_ids_are_refused():
    with pytest.raises(ValueError, match="unique"):
        bc.generate(TEMPLATES + (TEMPLATES[0],))


def test_fills_use_distinct_words_for_repeated_slots():
    t = Template("x-p1", "plain", "A {pos_adj} {film} with a {pos_adj2} {count_aspect}.", POS)
    for values in bc.fills(t, 500):
        assert values["pos_adj"] != values["pos_adj2"]
        assert values["pos_adj"] in WORDS["pos_adj"] and values["count_aspect"] in WORDS["count_aspect"]
    assert len(bc.fills(t, 500)) == 500
    assert bc.fills(t, 30) == bc.fills(t, 30)


def test_invariance_variants_differ_from_their_base_in_the_intended_way(cases):
    for c in cases:
        if not c.invariance:
            assert len(c.texts) == 1
            continue
        base, variants = c.texts[0], c.texts[1:]
        assert variants and all(v != base for v in variants), c
        if c.category == "inv_case":
            assert all(v.lower() == base.lower() for v in variants)
        elif c.category == "inv_punctuation":
            assert all(re.sub(r"[^\w]", "", v) == re.sub(r"[^\w]", "", base) for v in variants)
        elif c.category == "inv_typo":
            for v in variants:
                assert len(v) == len(base) and sorted(v) == sorted(base)
                diff = [i for i, (a, b) in enumerate(zip(base, v)) if a != b]
                assert len(diff) == 2 and diff[1] == diff[0] + 1
        elif c.category == "inv_name":
            names = [n for n in WORDS["name"] if n in base]
            assert len(names) == 1 and all(names[0] not in v for v in variants)
            assert all(v.replace(n, names[0]) == base for v in variants for n in WORDS["name"] if n in v)
    assert set(INVARIANCE) == {c.category for c in cases if c.invariance}


# ------------------------------------------------------------------- scoring on toy predictors

def keyword_predictor(texts):
    """Reads a single cue word, blind to negation and invariant to everything else."""
    pos_words = set(WORDS["pos_adj"] + WORDS["pos_grad"] + WORDS["perf_pos"] + WORDS["pos_verb"]
                    + WORDS["pos_verb_base"] + WORDS["pos_verb_present"] + WORDS["pos_verb_soft"])
    out = []
    for t in texts:
        words = re.findall(r"[a-z]+", t.lower())
        out.append(POS if any(w in pos_words for w in words) else NEG)
    return out


def test_a_predictor_that_is_always_right_fails_nothing(cases):
    truth = {t: c.label for c in cases for t in c.texts}
    labels = bs.label_cases(cases, lambda texts: [truth[t] for t in texts])
    rates = bs.failure_rates(cases, labels)
    assert all(r.failed == 0 for r in rates.values())
    assert rates[(bs.OVERALL, bc.DEV)].value == 0.0


def test_a_constant_predictor_fails_half_the_mfts_and_no_invariance(cases):
    labels = bs.label_cases(cases, lambda texts: [POS] * len(texts))
    rates = bs.failure_rates(cases, labels)
    for split in bc.SPLITS:
        neg_only = rates[("negated_positive", split)]
        assert neg_only.failed == neg_only.total  # every case wants negative
        assert rates[("negated_negative", split)].failed == 0
        for cat in INVARIANCE:
            assert rates[(cat, split)].failed == 0
        plain = [c for c in cases if c.category == "plain" and c.split == split]
        assert rates[("plain", split)].failed == sum(c.label == NEG for c in plain)


def test_a_negation_blind_predictor_fails_where_it_should(cases):
    labels = bs.label_cases(cases, keyword_predictor)
    rates = bs.failure_rates(cases, labels)
    for split in bc.SPLITS:
        assert rates[("negated_positive", split)].value > 0.8
        assert rates[("inv_case", split)].value == 0.0
        assert rates[("inv_name", split)].value == 0.0
        # it reads the verdict words of plain statements right
        plain = rates[("plain", split)]
        assert plain.value < 0.1, plain
    # a typo in the one cue word of a sentence changes its answer (dev: the templates with one cue)
    assert rates[("inv_typo", bc.DEV)].failed > 0


def test_overall_is_the_mean_of_category_rates_not_the_pooled_rate():
    def case(i, cat, label, texts=("x",)):
        return bc.Case(f"c{i}", cat, f"{cat}-t", bc.DEV, texts, label)
    cases = [case(0, "plain", POS)] + [case(i, "contrast", POS) for i in range(1, 10)]
    # plain: 1/1 failed; contrast: 0/9 failed -> mean 50%, pooled 10%
    labels = {"c0": (NEG,), **{f"c{i}": (POS,) for i in range(1, 10)}}
    rates = bs.failure_rates(cases, labels)
    overall = rates[(bs.OVERALL, bc.DEV)]
    assert overall.value == pytest.approx(0.5)
    assert (overall.failed, overall.total) == (1, 10)
    assert (bs.OVERALL, bc.HELD_OUT) not in rates


def test_invariance_case_fails_on_any_changed_label_even_if_all_are_wrong():
    c = bc.Case("i", "inv_case", "t", bc.DEV, ("A", "a", "A!"), POS)
    assert not c.failed((NEG, NEG, NEG))  # consistent: INV does not judge correctness
    assert c.failed((POS, POS, NEG))
    assert c.failed((POS, "neutral", POS))
    with pytest.raises(ValueError):
        c.failed((POS,))


def test_table_shows_each_model_and_split_as_computed(cases):
    rates = {"always-pos": bs.failure_rates(cases, bs.label_cases(cases, lambda t: [POS] * len(t))),
             "keyword": bs.failure_rates(cases, bs.label_cases(cases, keyword_predictor))}
    text = bs.table(cases, rates)
    lines = text.splitlines()
    assert lines[0].split() == ["category", "n", "dev", "n", "held", "always-pos", "dev", "always-pos",
                                "held", "keyword", "dev", "keyword", "held"]
    row = next(line for line in lines if line.startswith("negated_positive")).split()
    n_dev = sum(c.category == "negated_positive" and c.split == bc.DEV for c in cases)
    assert row[1] == str(n_dev)
    assert row[3:5] == ["100.0", "100.0"]
    assert row[5] == f"{100 * rates['keyword'][('negated_positive', bc.DEV)].value:.1f}"
    assert lines[-1].startswith("overall")
    assert len([line for line in lines if line and not line.startswith("-")]) == 1 + len(CATEGORIES) + 1


def test_template_rates_count_each_template_alone(cases):
    labels = bs.label_cases(cases, lambda texts: [POS] * len(texts))
    per = bs.template_rates(cases, labels)
    assert set(per) == {t.id for t in TEMPLATES}
    for t in TEMPLATES:
        n = sum(c.template_id == t.id for c in cases)
        want = 0 if t.category in INVARIANCE or t.label == POS else n
        assert (per[t.id].failed, per[t.id].total) == (want, n), t.id


def test_swap_effects_find_the_one_name_a_model_dislikes(cases):
    names = WORDS["name"]
    scores = {t: (0.2 if "Chen Wei" in t else 0.8) for c in cases for t in c.texts}
    effects = bs.swap_effects(cases, scores, names, "inv_name")
    assert set(effects) == set(names)
    assert min(effects, key=effects.get) == "Chen Wei" and effects["Chen Wei"] < -0.3
    assert all(d >= 0 for n, d in effects.items() if n != "Chen Wei")
    flat = bs.swap_effects(cases, {t: 0.7 for t in scores}, names, "inv_name")
    assert all(d == pytest.approx(0.0) for d in flat.values())


def test_labeller_must_answer_every_text(cases):
    with pytest.raises(ValueError, match="labels for"):
        bs.label_cases(cases[:5], lambda texts: [POS])


def test_perturbations():
    assert bc.drop_end_punctuation("Good film.") == "Good film"
    assert bc.exclaim("Good film.") == "Good film!"
    assert bc.drop_commas("Honestly, good; fine.") == "Honestly good fine."
    import random
    assert bc.typo("ab great", random.Random(0)) in {"ab rgeat", "ab gerat", "ab graet", "ab greta"}


# ------------------------------------------------------------------- missing optional packages

_HIDE = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in {hidden!r} else real(name, *a)
sys.argv = ["behaviour_suite.py", "--models", {spec!r}]
sys.path.insert(0, {bench!r})
import behaviour_suite
sys.exit(behaviour_suite.main())
"""


@pytest.mark.parametrize("hidden, spec, package", [("vaderSentiment", "vader", "vaderSentiment"),
                                                    ("sklearn", "nblr=", "scikit-learn")], ids=["vader", "nblr"])
def test_the_suite_says_which_package_to_install_when_one_is_missing(tmp_path, hidden, spec, package):
    if spec.startswith("nblr="):  # a model directory that needs scikit-learn to load
        (tmp_path / "nblr.json").write_text("{}")
        spec = f"nblr={tmp_path}"
    code = _HIDE.format(hidden=[hidden], spec=spec, bench=str(BENCHMARKS))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"pip install {package}" in run.stderr and "Traceback" not in run.stderr
