"""What the default configuration adds to the original recipe: a validation split by movie, the
unlabelled reviews, word vectors learnt from them, word dropout, mean pooling, and training under
tcmalloc."""
from __future__ import annotations

import tarfile

import pytest
import torch

from model.data import Review, load, split_validation
from model.embeddings import cooccurrence, ppmi, pretrained_vectors
from model.network import LSTMClassifier, drop_words, pad_batch
from model.train import tcmalloc_command
from model.vocab import PAD, UNK

from fixtures_model import write_tar_gz


LABELLED = {
    "aclImdb/train/pos/0_9.txt": "good", "aclImdb/train/pos/1_8.txt": "fine",
    "aclImdb/train/neg/0_1.txt": "bad",
    "aclImdb/train/urls_pos.txt": "http://www.imdb.com/title/tt0000001/usercomments\n"
                                  "http://www.imdb.com/title/tt0000002/usercomments\n",
    "aclImdb/train/urls_neg.txt": "http://www.imdb.com/title/tt0000001/usercomments\n",
    "aclImdb/test/pos/0_7.txt": "nice", "aclImdb/test/neg/0_2.txt": "poor",
}


# ----------------------------------------------------------------------------- data

def test_reviews_know_their_movie_from_the_urls_listing(tmp_path):
    ds = load(write_tar_gz(tmp_path / "a.tar.gz", LABELLED))
    assert {(r.text, r.movie) for r in ds.train} == {("good", "tt0000001"), ("fine", "tt0000002"),
                                                     ("bad", "tt0000001")}
    assert all(r.movie is None for r in ds.test)  # test has no listing in this archive
    folder = tmp_path / "x"
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    assert {r.movie for r in load(folder).train} == {"tt0000001", "tt0000002"}


def test_validation_split_by_movie_keeps_each_movie_on_one_side():
    reviews = [Review(f"r{i}", i % 2, 1, str(i), movie=f"tt{i % 37}") for i in range(740)]
    train, val = split_validation(reviews, 0.1, seed=5)
    assert not {r.movie for r in train} & {r.movie for r in val}
    assert 74 <= len(val) <= 74 + 20 and len(train) + len(val) == 740
    assert split_validation(reviews, 0.1, seed=5) == (train, val)
    assert split_validation(reviews, 0.1, seed=6)[1] != val


def test_validation_split_falls_back_to_random_without_movies():
    reviews = [Review(f"r{i}", i % 2, 1, str(i), movie=None if i == 3 else "tt1") for i in range(100)]
    train, val = split_validation(reviews, 0.2, seed=3)
    assert len(val) == 20 and sum(r.label for r in val) == 10  # stratified random split
    one_movie = [Review(f"r{i}", i % 2, 1, str(i), movie="tt1") for i in range(100)]
    train, val = split_validation(one_movie, 0.2, seed=3)  # one movie cannot be split by movie
    assert train and val


def test_unlabelled_reviews_come_from_the_archive_or_a_sibling(tmp_path):
    unsup = {"aclImdb/train/unsup/10_0.txt": "ten", "aclImdb/train/unsup/2_0.txt": "two"}
    both = load(write_tar_gz(tmp_path / "orig.tar.gz", {**LABELLED, **unsup}), unlabelled=True)
    assert both.unlabelled == ["two", "ten"]  # in id order
    assert load(tmp_path / "orig.tar.gz").unlabelled == []  # only when asked for
    split = tmp_path / "split"
    split.mkdir()
    write_tar_gz(split / "aclImdb_v1_labeled.tar.gz", LABELLED)
    write_tar_gz(split / "aclImdb_v1_unsup.tar.gz", unsup)
    assert load(split / "aclImdb_v1_labeled.tar.gz", unlabelled=True).unlabelled == ["two", "ten"]
    assert load(split, unlabelled=True).unlabelled == ["two", "ten"]  # a channel holding both
    alone = tmp_path / "alone"
    alone.mkdir()
    assert load(write_tar_gz(alone / "a.tar.gz", LABELLED), unlabelled=True).unlabelled == []


# ----------------------------------------------------------------------------- word vectors

def test_cooccurrence_counts_pairs_within_the_window_by_distance():
    counts = cooccurrence([[2, 3, 4], [4, 2]], vocab_size=5, window=2).to_dense()
    assert counts[2, 3] == counts[3, 2] == 1.0
    assert counts[2, 4] == counts[4, 2] == pytest.approx(0.5 + 1.0)  # 2..4 at distance 2, then 4,2 adjacent
    assert counts[3, 4] == 1.0
    assert counts[:2].sum() == 0 and counts[:, :2].sum() == 0  # PAD and UNK take no part
    assert cooccurrence([[2, UNK, 3]], 5, 1).to_dense().sum() == 0


def test_ppmi_keeps_only_positive_associations():
    counts = torch.tensor([[0, 8, 1, 1], [8, 0, 1, 1], [1, 1, 0, 8], [1, 1, 8, 0]], dtype=torch.float32)
    m = ppmi(counts.to_sparse_csr(), smoothing=1.0).to_dense()
    assert m[0, 1] > 0 and m[2, 3] > 0
    assert m[0, 2] == 0 and m[1, 3] == 0


def test_pretrained_vectors_put_words_used_alike_together():
    # two families of words that never share a review: 2-5 and 6-9
    gen = torch.Generator().manual_seed(0)
    texts = []
    for i in range(400):
        family = [2, 3, 4, 5] if i % 2 else [6, 7, 8, 9]
        texts.append([family[int(j)] for j in torch.randint(0, 4, (12,), generator=gen)])
    v = pretrained_vectors(texts, vocab_size=12, dim=4, window=3, seed=0)
    assert v.shape == (12, 4) and torch.all(v[PAD] == 0)
    unit = torch.nn.functional.normalize(v, dim=1)
    same = unit[2] @ unit[3]
    other = unit[2] @ unit[7]
    assert same > 0.5 and same > other + 0.5
    assert torch.equal(v, pretrained_vectors(texts, vocab_size=12, dim=4, window=3, seed=0))


def test_pretrained_vectors_show_their_progress(capsys):
    texts = [[2, 3, 4, 5, 6, 7] for _ in range(20)]
    quiet = pretrained_vectors(texts, vocab_size=12, dim=4, window=3, seed=0)
    assert capsys.readouterr().err == ""
    shown = pretrained_vectors(texts, vocab_size=12, dim=4, window=3, seed=0, progress=True)
    assert torch.equal(quiet, shown)
    err = capsys.readouterr().err
    # 3 distances and merging the counts, PPMI, the first product, 3 subspace iterations, the SVD
    assert "word vectors" in err and "10/10" in err, err


# ----------------------------------------------------------------------------- network

def test_word_dropout_hides_real_tokens_only():
    ids, _ = pad_batch([[5, 6, 7, 8] * 50, [9]])
    out = drop_words(ids, 0.5, torch.Generator().manual_seed(0))
    assert torch.all(out[ids == PAD] == PAD)
    changed = out != ids
    assert torch.all(out[changed] == UNK)
    assert 60 <= int(changed[0].sum()) <= 140
    assert torch.equal(drop_words(ids, 0.0), ids)


def test_mean_pooling_reads_real_tokens_only():
    torch.manual_seed(0)
    net = LSTMClassifier(20, 8, 6, bidirectional=True, pooling="last+max+mean").eval()
    assert net.dense.in_features == 6 * 2 * 3
    ids, lengths = pad_batch([[3, 4, 5], [3, 4, 5, 6, 7]])
    with torch.no_grad():
        padded = net(ids, lengths)
        alone = net(*pad_batch([[3, 4, 5]]))
    assert torch.allclose(padded[0], alone[0], atol=1e-6)


# ----------------------------------------------------------------------------- allocator

def test_train_reruns_itself_under_tcmalloc_when_installed(tmp_path):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    argv = ["python3", "-m", "model.train", "--quiet"]
    cmd, env = tcmalloc_command({"PATH": "/bin"}, argv, "/venv/bin/python", candidates=(str(tmp_path / "no"), str(lib)))
    assert cmd == ["/venv/bin/python", "-m", "model.train", "--quiet"]
    assert env == {"PATH": "/bin", "LD_PRELOAD": str(lib)}
    _, env = tcmalloc_command({"LD_PRELOAD": "/x.so"}, argv, "py", candidates=(str(lib),))
    assert env["LD_PRELOAD"] == f"{lib}:/x.so"
    # already under it, opted out, or not installed: stay
    assert tcmalloc_command({"LD_PRELOAD": str(lib)}, argv, "py", candidates=(str(lib),)) is None
    assert tcmalloc_command({"TRAIN_ALLOCATOR": "system"}, argv, "py", candidates=(str(lib),)) is None
    assert tcmalloc_command({}, argv, "py", candidates=(str(tmp_path / "no"),)) is None
