"""The inference handlers (model/inference.py) and occlusion explanations (model/explain.py)."""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from fixtures_model import write_model_dir
from model import inference
from model.artifact import ArtifactError
from model.explain import occlusion_probabilities, word_tokens
from model.inference import MAX_BODY_BYTES, MAX_INSTANCES, RequestError, input_fn, output_fn, predict_fn

REPO = Path(__file__).resolve().parent.parent
POSITIVE = "A wonderful, brilliant film: superb acting and a beautiful, delightful story."


@pytest.fixture(scope="module")
def loaded(model_dir):
    return inference.model_fn(str(model_dir))


def single_logit(network, ids: list[int]) -> float:
    """The network's log-odds for one review, run on its own (the reference for everything)."""
    with torch.inference_mode():
        ids = ids or [0]
        return network(torch.tensor([ids]), torch.tensor([len(ids)])).item()


def single_probability(network, ids: list[int]) -> float:
    return torch.sigmoid(torch.tensor(single_logit(network, ids))).item()


def answer(body, ctype, model):
    return json.loads(output_fn(predict_fn(input_fn(body, ctype), model), "application/json")[0])


# --------------------------------------------------------------------------- model_fn

def test_model_fn_loads_the_artifact(loaded):
    assert loaded.model.training is False
    assert loaded.encode("great film") and all(isinstance(i, int) for i in loaded.encode("great film"))


def test_model_fn_missing_dir_says_which_file(tmp_path):
    with pytest.raises(ArtifactError, match="config.json is missing"):
        inference.model_fn(str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------- input_fn: good input

@pytest.mark.parametrize("body", [POSITIVE.encode(), bytearray(POSITIVE.encode()),
                                  memoryview(POSITIVE.encode()), POSITIVE])
def test_text_plain_in_any_buffer(body):
    assert input_fn(body, "text/plain") == inference.Request(texts=(POSITIVE,))


@pytest.mark.parametrize("ctype", ["text/plain; charset=utf-8", "TEXT/PLAIN;charset=UTF-8",
                                   'text/plain; charset="us-ascii"'])
def test_text_plain_charsets(ctype):
    assert input_fn(b"great", ctype).texts == ("great",)


def test_json_forms():
    assert input_fn(b'{"text": "great"}', "application/json") == inference.Request(texts=("great",))
    assert input_fn('{"text": "great", "explain": true}', "application/json; charset=utf-8").explain
    assert input_fn(b'{"text": "great", "explain": null}', "application/json").explain is False
    batch = input_fn(b'{"instances": ["a film", "b film"], "other": 1}', "application/json")
    assert batch == inference.Request(texts=("a film", "b film"), batch=True)
    assert input_fn("\ufeff{\"text\": \"x\"}".encode(), "application/json").texts == ("x",)


def test_limits_are_inclusive():
    assert input_fn(b"a" * MAX_BODY_BYTES, "text/plain")
    body = json.dumps({"instances": ["film"] * MAX_INSTANCES}).encode()
    assert len(input_fn(body, "application/json").texts) == MAX_INSTANCES


# --------------------------------------------------------------------------- input_fn: bad input

BAD = [
    # (body, content type, status, words the message must hold)
    (b"great", "application/xml", 415, "unsupported Content-Type"),
    (b"great", None, 415, "unsupported Content-Type 'none'"),
    (b"great", "", 415, "text/plain"),
    (b"great", "text/html", 415, "application/json"),
    (b"great", "text/plain; charset=latin-1", 415, "charset"),
    (b"", "text/plain", 400, "empty"),
    (b"  \n\t ", "text/plain", 400, "whitespace"),
    ("\u3000\u2003".encode(), "text/plain", 400, "whitespace"),
    (b"\xff\xfegreat", "text/plain", 400, "not valid UTF-8"),
    (b'{"text": "caf\xe9"}', "application/json", 400, "not valid UTF-8"),
    (b'{"text": ', "application/json", 400, "malformed JSON"),
    (b"", "application/json", 400, "malformed JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 413, "limit"),
    (b"[" * 60_000 + b"]" * 60_000, "application/json", 400, "nested too deeply"),
    (b'["great"]', "application/json", 400, "must be an object"),
    (b'"great"', "application/json", 400, "must be an object"),
    (b'{"text": 5}', "application/json", 400, "must be a string, not a number"),
    (b'{"text": null}', "application/json", 400, "must be a string, not null"),
    (b'{"text": ["a"]}', "application/json", 400, "not an array"),
    (b'{"text": " "}', "application/json", 400, "empty"),
    (b'{"text": "great", "explain": "yes"}', "application/json", 400, "'explain' must be true or false"),
    (b'{"text": "great", "explain": 1}', "application/json", 400, "'explain'"),
    (b'{"instances": "great"}', "application/json", 400, "array of strings"),
    (b'{"instances": []}', "application/json", 400, "empty"),
    (b'{"instances": ["ok", 3]}', "application/json", 400, "instances[1] must be a string"),
    (b'{"instances": ["ok", ""]}', "application/json", 400, "instances[1] is empty"),
    (b'{"text": "a", "instances": ["b"]}', "application/json", 400, "not both"),
    (b'{"txt": "great"}', "application/json", 400, "needs a field 'text'"),
    (b"a" * (MAX_BODY_BYTES + 1), "text/plain", 413, "131072"),
    ("a" * (MAX_BODY_BYTES + 1), "text/plain", 413, "131072"),
    (json.dumps({"instances": ["film"] * (MAX_INSTANCES + 1)}).encode(), "application/json", 413,
     "65 instances"),
]


@pytest.mark.parametrize("body,ctype,status,words", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_gets_the_right_status_and_message(body, ctype, status, words):
    with pytest.raises(RequestError) as info:
        input_fn(body, ctype)
    err = info.value
    assert (err.status, err.status_code) == (status, status)
    assert words in err.message and str(err) == err.message
    assert isinstance(err, ValueError)


def test_request_error_maps_to_the_toolkit_error_in_aws_image(monkeypatch):
    """In AWS's prebuilt image the toolkit answers BaseInferenceToolkitError with its status."""
    errors = types.ModuleType("sagemaker_inference.errors")

    class BaseInferenceToolkitError(Exception):
        def __init__(self, status_code, message, phrase):
            self.status_code, self.message, self.phrase = status_code, message, phrase

    errors.BaseInferenceToolkitError = BaseInferenceToolkitError
    monkeypatch.setitem(sys.modules, "sagemaker_inference", types.ModuleType("sagemaker_inference"))
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", errors)
    # A second copy of the module, under another name: reloading model.inference itself would give
    # it a new RequestError class, which other test modules' `except RequestError` (the class they
    # imported) no longer catch.
    spec = importlib.util.spec_from_file_location("model._inference_in_aws_image",
                                                  REPO / "model" / "inference.py")
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fresh)  # its dataclasses look their module up there
    spec.loader.exec_module(fresh)
    with pytest.raises(BaseInferenceToolkitError) as info:
        fresh.input_fn(b"x", "image/png")
    assert (info.value.status_code, info.value.phrase) == (415, "Unsupported Media Type")


# --------------------------------------------------------------------------- predict_fn / output_fn

def test_single_prediction_is_the_networks_probability(loaded):
    got = answer(POSITIVE.encode(), "text/plain", loaded)
    assert set(got) == {"label", "score", "words_read"}
    assert got["words_read"] == len(loaded.encode(POSITIVE)) > 0
    expected = single_probability(loaded.model, loaded.encode(POSITIVE))
    assert got["score"] == pytest.approx(expected, abs=2e-6)
    assert got["label"] == ("positive" if got["score"] >= 0.5 else "negative")


def test_batch_answers_in_order_like_singles(loaded):
    reviews = [POSITIVE, "terrible boring mess", "!!!", "film " * 300, "the and of", "great"]
    got = answer(json.dumps({"instances": reviews}).encode(), "application/json", loaded)
    assert list(got) == ["predictions"] and len(got["predictions"]) == len(reviews)
    for review, pred in zip(reviews, got["predictions"]):
        assert pred["score"] == pytest.approx(single_probability(loaded.model, loaded.encode(review)), abs=2e-6)
        assert pred["words_read"] == len(loaded.encode(review))


@pytest.mark.parametrize("review", ["!!! ???", "the and of it", "<br /><br />", "\u00e9\u00e8"])
def test_review_with_zero_tokens_still_gets_an_answer(loaded, review):
    assert loaded.encode(review) == []
    got = answer(json.dumps({"text": review, "explain": True}).encode(), "application/json", loaded)
    assert got["label"] in ("positive", "negative") and 0.0 <= got["score"] <= 1.0
    assert all(e["weight"] is None for e in got["explanation"])
    assert got["words_read"] == 0  # said, so that nobody takes its score for a reading
    assert answer(json.dumps({"text": review}).encode(), "application/json", loaded)["words_read"] == 0


def test_output_fn_returns_json_body_and_content_type():
    body, ctype = output_fn({"label": "positive", "score": 0.9}, "text/csv")
    assert ctype == "application/json" and json.loads(body) == {"label": "positive", "score": 0.9}
    assert json.loads(inference.error_body("bad \"x\"")) == {"error": "bad \"x\""}


def test_predict_many_scores_requests_together_like_alone(loaded):
    reqs = [input_fn(b"great film", "text/plain"),
            input_fn(b'{"instances": ["dull", "superb cast"]}', "application/json"),
            input_fn(b'{"text": "awful plot", "explain": true}', "application/json")]
    together = inference.predict_many(reqs, loaded)
    alone = [predict_fn(r, loaded) for r in reqs]
    assert together[0]["score"] == pytest.approx(alone[0]["score"], abs=2e-6)
    assert [p["score"] for p in together[1]["predictions"]] == pytest.approx(
        [p["score"] for p in alone[1]["predictions"]], abs=2e-6)
    assert together[2] == alone[2] and "explanation" in together[2] and "explanation" not in together[0]


# --------------------------------------------------------------------------- explanations

def test_explanation_schema_one_entry_per_surface_word(loaded):
    review = "The <b>acting</b> was NOT great, but the music-score was wonderful!"
    got = answer(json.dumps({"text": review, "explain": True}).encode(), "application/json", loaded)
    words = [e["word"] for e in got["explanation"]]
    assert words == ["the", "acting", "was", "not", "great", "but", "the", "music", "score", "was",
                     "wonderful"]
    weights = {e["word"]: e["weight"] for e in got["explanation"]}
    assert weights["the"] is None and weights["was"] is None  # stopwords
    assert isinstance(weights["not"], float)  # negation mode keeps it
    assert all(set(e) == {"word", "weight"} for e in got["explanation"])


def test_word_tokens_match_the_encoder(loaded):
    for review in (POSITIVE, "film " * 100, "the and", "it wasn't bad, it didn't bore"):
        words, positions, ids = word_tokens(loaded, review)
        assert ids == loaded.encode(review)
        assert len(words) == len(positions)
        kept = [p for p in positions if p is not None]
        assert kept == list(range(len(ids)))


def occlusion_reference(network, ids):
    full = single_probability(network, ids)
    return full, [single_probability(network, ids[:i] + ids[i + 1:]) for i in range(len(ids))]


@pytest.mark.parametrize("shape", [
    {"bidirectional": True, "num_layers": 1},
    {"bidirectional": False, "num_layers": 1},
    {"bidirectional": True, "num_layers": 2},   # the plain batched way
    {"bidirectional": False, "num_layers": 2},
    {"bidirectional": True, "num_layers": 1, "pooling": "last"},
    {"bidirectional": False, "num_layers": 1, "pooling": "last"},
    {"bidirectional": True, "num_layers": 1, "pooling": "last+max+mean"},
    {"bidirectional": False, "num_layers": 1, "pooling": "last+max+mean"},
    {"bidirectional": True, "num_layers": 2, "pooling": "last+max+mean"},
    {"bidirectional": True, "num_layers": 1, "pooling": "last+max+mean", "ngram_buckets": 4099, "ngram_order": 3},
    {"bidirectional": True, "num_layers": 2, "pooling": "last+max+mean", "ngram_buckets": 4099, "ngram_order": 3},
], ids=["bi1", "uni1", "bi2", "uni2", "bi1-last", "uni1-last", "bi1-mean", "uni1-mean", "bi2-mean", "bi1-ngrams",
        "bi2-ngrams"])
def test_occlusion_weights_match_individually_computed_scores(tmp_path, nltk_data, shape):
    from model.inference import model_fn

    art = model_fn(str(write_model_dir(tmp_path / "m", seed=3, **shape)))
    rng = torch.Generator().manual_seed(1)
    for n in (0, 1, 2, 3, 40):
        ids = torch.randint(1, len(art.vocab), (n,), generator=rng).tolist()
        if n > 5:
            ids[3] = ids[2]  # a repeated token: both removals are the same review
        full, without = occlusion_probabilities(art.model, ids)
        ref_full, ref_without = occlusion_reference(art.model, ids)
        assert full == pytest.approx(ref_full, abs=1e-6)
        assert without == pytest.approx(ref_without, abs=1e-6)


def test_explanation_weights_are_log_odds_minus_log_odds_without_the_word(loaded):
    review = "superb acting, dull plot, wonderful music and a terrible ending; the cast was great"
    got = answer(json.dumps({"text": review, "explain": True}).encode(), "application/json", loaded)
    words, positions, ids = word_tokens(loaded, review)
    full = single_probability(loaded.model, ids)
    assert got["score"] == pytest.approx(full, abs=2e-6)
    for entry, pos in zip(got["explanation"], positions):
        if pos is None:
            assert entry["weight"] is None
        else:
            # weights are changes of the log-odds
            without = single_logit(loaded.model, ids[:pos] + ids[pos + 1:])
            assert entry["weight"] == pytest.approx(single_logit(loaded.model, ids) - without, abs=2e-6)


def test_words_past_max_len_get_null(tmp_path, nltk_data):
    art = inference.model_fn(str(write_model_dir(tmp_path / "m", max_len=5)))
    review = "great film superb cast dull plot awful music boring ending"
    got = json.loads(output_fn(predict_fn(inference.Request(texts=(review,), explain=True), art))[0])
    weights = [e["weight"] for e in got["explanation"]]
    assert len(weights) == 10
    assert all(w is not None for w in weights[:5]) and weights[5:] == [None] * 5


def test_batch_explain(loaded):
    got = answer(json.dumps({"instances": ["great film", "dull"], "explain": True}).encode(),
                 "application/json", loaded)
    assert [len(p["explanation"]) for p in got["predictions"]] == [2, 1]


# --------------------------------------------------------------------------- what mutation testing found
# (`make mutation ARGS=inference`): the label's boundary, the score's rounding, the length groups.

def test_the_label_agrees_with_the_score_the_caller_sees():
    """Positive from 0.5 up, judged on the rounded score, so a caller never sees 0.5 "negative"."""
    label = inference._label
    assert label(0.5, 3) == {"label": "positive", "score": 0.5, "words_read": 3}
    assert label(0.4999996, 3)["label"] == "positive"  # shown as 0.5
    assert label(0.4999994, 3) == {"label": "negative", "score": 0.499999, "words_read": 3}
    assert label(0.2, 1)["label"] == "negative" and label(0.0, 0)["label"] == "negative"
    assert label(0.93, 41)["label"] == "positive"


def test_scores_are_rounded_to_six_decimals(loaded):
    assert inference._label(0.123456789, 1)["score"] == 0.123457
    got = answer(POSITIVE.encode(), "text/plain", loaded)
    assert got["score"] == round(got["score"], 6)


class _CountingNetwork(torch.nn.Module):
    """Wraps a network and records the batch sizes and padded lengths of its forward passes."""

    def __init__(self, network):
        super().__init__()
        self.network, self.passes = network, []

    def forward(self, ids, lengths):
        self.passes.append((ids.shape[0], ids.shape[1]))
        return self.network(ids, lengths)


def test_reviews_of_very_different_lengths_go_in_separate_passes(loaded):
    """A group holds lengths within 1.5x of its shortest (an empty review counts as 1), so a short
    review is never padded to a long one's length; scores are the same as one at a time."""
    net = _CountingNetwork(loaded.model)
    lengths = [10, 1, 0, 2, 3, 100, 15, 16, 1]
    sequences = [[(k % 40) + 4 for k in range(n)] for n in lengths]
    got = inference.probabilities(net, sequences)
    # sorted: 0 1 1 | 2 3 | 10 15 | 16 | 100, each pass padded up to a multiple of LENGTH_BUCKET (16)
    assert sorted(net.passes) == sorted([(3, 16), (2, 16), (2, 16), (1, 16), (1, 112)])
    for ids, p in zip(sequences, got):
        assert p == pytest.approx(single_probability(loaded.model, ids), abs=2e-6)


def test_a_field_of_the_wrong_json_type_is_named_by_its_json_type():
    for body, words in [(b'{"text": {}}', "field 'text' must be a string, not an object"),
                        (b'{"text": []}', "field 'text' must be a string, not an array"),
                        (b'{"instances": ["ok", {"a": 1}]}', "instances[1] must be a string, not an object")]:
        with pytest.raises(RequestError) as info:
            input_fn(body, "application/json")
        assert info.value.status == 400 and words in info.value.message, info.value.message


def test_batches_are_padded_to_a_bucket_of_lengths_with_the_same_answers(loaded):
    from model.network import LENGTH_BUCKET, pad_batch, pad_to_bucket

    ids, lengths = pad_batch([[5, 6, 7], [8]])
    bucketed = pad_to_bucket(ids)
    assert bucketed.shape == (2, LENGTH_BUCKET) and (bucketed[:, 3:] == 0).all()
    assert pad_to_bucket(bucketed) is bucketed  # already a multiple: unchanged
    long_ids, _ = pad_batch([[5] * 17])
    assert pad_to_bucket(long_ids).shape == (1, 2 * LENGTH_BUCKET)
    # the answers are the network's own on the unpadded review
    for review in (POSITIVE, "terrible boring mess", "film " * 37):
        seq = loaded.encode(review)
        assert inference.probabilities(loaded.model, [seq])[0] == pytest.approx(
            single_probability(loaded.model, seq), abs=1e-6)
