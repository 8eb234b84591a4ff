"""Vocabulary, encoding, hyperparameters, the network's last-real-token read, the IMDB reader."""
from __future__ import annotations

import json
import tarfile
from dataclasses import replace

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from model.data import DataError, load, split_validation
from model.hyperparameters import (HyperparameterError, Hyperparameters, parse_assignments, parse_bool, preset,
                                   resolve)
from model.network import LSTMClassifier, NgramBag, drop_words, pad_batch, reverse_padded
from model.vocab import PAD, UNK, Vocabulary

from fixtures_model import write_tar_gz


# ----------------------------------------------------------------------------- vocabulary

def test_vocabulary_is_ranked_by_frequency_with_reserved_ids():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]], size=4)
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a"]
    assert vocab.encode(["a", "b", "c", "zzz"], max_len=10) == [3, 2, UNK, UNK]
    assert vocab.encode(["a", "b", "a"], max_len=2) == [3, 2]
    assert PAD == 0 and UNK == 1


def test_vocabulary_json_round_trip(tmp_path):
    vocab = Vocabulary.build([["x", "y", "y"]], size=10)
    vocab.save(tmp_path / "vocab.json")
    assert json.loads((tmp_path / "vocab.json").read_text()) == {"tokens": ["<pad>", "<unk>", "y", "x"]}
    assert Vocabulary.load(tmp_path / "vocab.json").tokens == vocab.tokens


@pytest.mark.parametrize("content", ['["a"]', '{"tokens": ["a", "b"]}', '{"tokens": ["<pad>", "<unk>", "a", "a"]}'])
def test_vocabulary_refuses_malformed_files(tmp_path, content):
    (tmp_path / "v.json").write_text(content)
    with pytest.raises(ValueError):
        Vocabulary.load(tmp_path / "v.json")


# ----------------------------------------------------------------------------- hyperparameters

def test_hyperparameters_parse_sagemaker_strings():
    hp = Hyperparameters.from_strings({"epochs": "3", "bidirectional": "false", "dropout": "0.25",
                                       "preprocessing": "original", "sagemaker_region": "x"})
    assert (hp.epochs, hp.bidirectional, hp.dropout, hp.preprocessing) == (3, False, 0.25, "original")


@pytest.mark.parametrize("values, message", [
    ({"epochz": "3"}, "unknown hyperparameter 'epochz'"),
    ({"epochs": "three"}, "not a valid int"),
    ({"epochs": "0"}, "positive integer"),
    ({"dropout": "1.5"}, r"\[0, 1\)"),
    ({"preprocessing": "lemmas"}, "original, negation"),
    ({"bidirectional": "maybe"}, "not a valid bool"),
    ({"vocab_size": "2"}, "at least 3"),
    ({"word_dropout": "1"}, r"\[0, 1\)"),
    ({"validation_split": "year"}, "movie, random"),
    ({"embedding_init": "glove"}, "none, ppmi-svd"),
    ({"pooling": "mean"}, "last, last\\+max, last\\+max\\+mean"),
    ({"ngram_buckets": "-1"}, "ngram_buckets=-1: must be >= 0"),
    ({"ngram_order": "5"}, "ngram_order=5: must be 1 to 4"),
    ({"ngram_order": "0"}, "ngram_order=0: must be 1 to 4"),
    ({"augment_sentences": "-5"}, "augment_sentences=-5: must be >= 0"),
])
def test_bad_hyperparameters_are_refused_with_the_key(values, message):
    with pytest.raises(HyperparameterError, match=message):
        Hyperparameters.from_strings(values)


def test_resolve_reads_values_over_their_preset_as_train_does():
    assert resolve({"preset": "quick", "epochs": "3"}) == replace(preset("quick"), epochs=3)
    assert resolve({}) == preset("full")
    # train --preset wins over the job's "preset", which is not passed on as a hyperparameter
    assert resolve({"preset": "quick", "workers": "1"}, preset_name="tiny") == replace(preset("tiny"), workers=1)
    with pytest.raises(HyperparameterError, match="unknown preset 'huge'; choose one of full, quick"):
        resolve({"preset": "huge"})


@pytest.mark.parametrize("raw, value", [(True, True), ("TRUE", True), (" yes", True), ("1", True),
                                        (False, False), ("False", False), ("no", False), ("0", False)])
def test_one_reading_of_true_and_false(raw, value):
    assert parse_bool(raw) is value


@pytest.mark.parametrize("raw", ["maybe", "", "2", None, "truee"])
def test_anything_else_is_not_a_bool(raw):
    with pytest.raises(ValueError):
        parse_bool(raw)


def test_key_value_assignments():
    assert parse_assignments([" epochs = 3", "preset=quick", "pooling=last+max"]) == {
        "epochs": "3", "preset": "quick", "pooling": "last+max"}
    for bad in ("epochs", "=3"):
        with pytest.raises(HyperparameterError, match=f"--set expects KEY=VALUE, got {bad!r}"):
            parse_assignments([bad])


def test_presets_are_valid_and_unknown_preset_refused():
    assert preset("original").hidden_dim == 100
    assert preset("tiny").epochs < preset("full").epochs
    with pytest.raises(HyperparameterError, match="unknown preset"):
        preset("huge")


# ----------------------------------------------------------------------------- network

@pytest.mark.parametrize("pooling", ["last", "last+max", "last+max+mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_is_read_at_the_last_real_token_not_padding(bidirectional, pooling):
    torch.manual_seed(0)
    model = LSTMClassifier(50, 8, 6, num_layers=2, bidirectional=bidirectional, pooling=pooling).eval()
    ids, lengths = pad_batch([[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]])
    padded_more = torch.cat([ids, torch.zeros(3, 7, dtype=torch.long)], dim=1)
    alone = torch.stack([model(torch.tensor([s]), torch.tensor([len(s)]))[0]
                         for s in ([3, 4, 5, 6, 7], [8, 9], [10, 11, 12])])
    assert model(ids, lengths).shape == (3,)
    torch.testing.assert_close(model(ids, lengths), model(padded_more, lengths))
    torch.testing.assert_close(model(ids, lengths), alone)


def test_ngram_bag_beside_the_lstm_reads_only_real_tokens():
    torch.manual_seed(0)
    model = LSTMClassifier(50, 8, 6, bidirectional=True, pooling="last+max+mean", ngram_buckets=997,
                           ngram_order=3).eval()
    torch.nn.init.normal_(model.ngrams.weight.weight)
    seqs = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [13]]
    ids, lengths = pad_batch(seqs)
    padded_more = torch.cat([ids, torch.zeros(4, 7, dtype=torch.long)], dim=1)
    alone = torch.stack([model(torch.tensor([s]), torch.tensor([len(s)]))[0] for s in seqs])
    torch.testing.assert_close(model(ids, lengths), model(padded_more, lengths))
    torch.testing.assert_close(model(ids, lengths), alone)
    # the bag's score is added to the LSTM's logit
    bag = model.ngrams(ids, lengths)
    model.ngrams = None
    torch.testing.assert_close(model(ids, lengths) + bag, alone)


def test_ngram_bag_scores_each_ngram_over_the_root_of_their_count():
    bag = NgramBag(buckets=10_007, order=2)
    ids, lengths = torch.tensor([[5, 6, 7]]), torch.tensor([3])
    keys, mask = bag.bucket_ids(ids, lengths)
    assert mask.tolist() == [[True, True, True, True, True]]  # 3 unigrams, 2 bigrams
    assert len(set(keys[0].tolist())) == 5
    with torch.no_grad():
        bag.weight.weight.zero_()
        bag.weight.weight[keys[0, 3]] = 2.0  # the bigram (5, 6)
    assert bag(ids, lengths).item() == pytest.approx(2.0 / 5 ** 0.5)
    # order matters: (6, 5) is another bigram; the unigrams are the same
    assert bag(torch.tensor([[6, 5, 7]]), lengths).item() == 0.0
    assert bag.bucket_ids(torch.tensor([[6, 5, 7]]), lengths)[0][0, :3].sort().values.tolist() == \
        keys[0, :3].sort().values.tolist()
    with pytest.raises(ValueError, match="order must be 1 to 4"):
        NgramBag(10, 5)


def test_word_dropout_spares_the_rows_it_is_told_to():
    ids = torch.full((3, 50), 7)
    ids[1, 40:] = PAD
    out = drop_words(ids, 0.5, torch.Generator().manual_seed(0), rows=torch.tensor([True, True, False]))
    assert (out[0] == UNK).any() and (out[1, :40] == UNK).any()
    assert (out[1, 40:] == PAD).all() and (out[2] == 7).all()


def test_bidirectional_matches_a_packed_bidirectional_lstm():
    torch.manual_seed(1)
    model = LSTMClassifier(50, 8, 6, bidirectional=True).eval()
    ref = torch.nn.LSTM(8, 6, batch_first=True, bidirectional=True)
    with torch.no_grad():
        fwd, bwd = model.forward_layers[0], model.backward_layers[0]
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(fwd, name))
            getattr(ref, name + "_reverse").copy_(getattr(bwd, name))
        ids, lengths = pad_batch([[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]])
        x = model.embedding(ids)
        _, (h_n, _) = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        expected = model.dense(torch.cat([h_n[0], h_n[1]], dim=-1)).squeeze(-1)
        torch.testing.assert_close(model(ids, lengths), expected)


def test_reverse_padded_keeps_padding_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_padded(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_empty_review_becomes_one_padding_token():
    ids, lengths = pad_batch([[], [5, 6]])
    assert ids.tolist() == [[PAD, PAD], [5, 6]] and lengths.tolist() == [1, 2]
    probs = LSTMClassifier(10, 4, 4).predict_proba(ids, lengths)
    assert probs.shape == (2,) and bool(((probs > 0) & (probs < 1)).all())


# ----------------------------------------------------------------------------- data

def test_reads_archive_folder_and_channel_alike(tmp_path):
    files = {"aclImdb/train/pos/1_9.txt": "good", "aclImdb/train/neg/2_1.txt": "bad",
             "aclImdb/test/pos/3_8.txt": "fine", "aclImdb/test/neg/4_2.txt": "poor",
             "aclImdb/train/unsup/5_0.txt": "ignored", "aclImdb/README": "readme"}
    channel = tmp_path / "channel"
    channel.mkdir()
    archive = write_tar_gz(channel / "imdb.tar.gz", files)
    folder = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    for source in (archive, channel, folder, folder / "aclImdb"):
        ds = load(source)
        assert [(r.text, r.label, r.rating) for r in ds.train] == [("bad", 0, 1), ("good", 1, 9)]
        assert len(ds.test) == 2


def test_data_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="make data"):
        load(tmp_path / "missing.tar.gz")
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar file at all")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        load(tmp_path / "broken.tar.gz")
    write_tar_gz(tmp_path / "empty.tar.gz", {"aclImdb/train/pos/1_9.txt": "good"})
    with pytest.raises(DataError, match="no reviews under aclImdb/test"):
        load(tmp_path / "empty.tar.gz")


def test_validation_split_is_seeded_and_stratified(tmp_path):
    from model.data import Review
    reviews = [Review(f"r{i}", i % 2, 1, str(i)) for i in range(100)]
    a = split_validation(reviews, 0.2, seed=3)
    b = split_validation(reviews, 0.2, seed=3)
    c = split_validation(reviews, 0.2, seed=4)
    assert a == b and a != c
    train, val = a
    assert len(val) == 20 and sum(r.label for r in val) == 10
    assert not {r.id for r in train} & {r.id for r in val}
