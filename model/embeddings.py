"""Word vectors from unlabelled text, to start the classifier's embedding from.

A classifier trained on 22.5k labelled reviews only sees most of its 25k words a handful of times;
it learns their vectors from those few labels and leans on film-specific ones. Vectors that already
put words used alike near each other, learnt from every review at hand (the training split plus,
when the archive has them, the 50,000 unlabelled reviews of ``aclImdb/train/unsup``, which is what
they are for), give it a head start; training then tunes them.

The method is count-based (Levy, Goldberg & Dagan 2015): co-occurrence counts within a window,
weighted by distance; positive pointwise mutual information with context-distribution smoothing;
a truncated SVD. It is deterministic for a seed and takes well under a minute here for ~9 M tokens,
against several minutes for skip-gram on two cores.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from .vocab import PAD, UNK

log = logging.getLogger("model.train")


def cooccurrence(id_lists: Sequence[Sequence[int]], vocab_size: int, window: int,
                 step: Callable[[], object] = lambda: None) -> torch.Tensor:
    """Symmetric counts (sparse CSR) of word pairs at most ``window`` apart, each weighted 1/distance.

    PAD and UNK take no part. Reviews are laid end to end with ``window`` PADs between them, so no
    pair spans two reviews. ``step`` is called after each of ``window`` + 1 steps.
    """
    gap = [PAD] * window
    flat: list[int] = []
    for ids in id_lists:
        flat.extend(ids)
        flat.extend(gap)
    seq = np.asarray(flat, dtype=np.int64)
    keys, weights = [], []
    for d in range(1, window + 1):
        a, b = seq[:-d], seq[d:]
        keep = (a > UNK) & (b > UNK)
        a, b = a[keep], b[keep]
        # Counting each distance on its own needs only a sort (np.unique with counts), 5x faster
        # here than one np.unique with return_inverse over all distances.
        unique, count = np.unique(np.concatenate([a * vocab_size + b, b * vocab_size + a]), return_counts=True)
        keys.append(unique)
        weights.append(count / d)
        step()
    key = np.concatenate(keys)
    weight = np.concatenate(weights)
    order = np.argsort(key, kind="stable")
    key, weight = key[order], weight[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    key, weight = key[starts], np.add.reduceat(weight, starts) if len(key) else weight
    counts = _csr(key // vocab_size, key % vocab_size, weight, vocab_size)
    step()
    return counts


@contextlib.contextmanager
def _csr_layout():
    """CSR products are what make this fast; torch calls the layout beta on every first use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> torch.Tensor:
    """A CSR matrix from entries sorted by (row, col)."""
    crow = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    with _csr_layout():
        return torch.sparse_csr_tensor(torch.from_numpy(crow.astype(np.int64)),
                                       torch.from_numpy(cols.astype(np.int64)),
                                       torch.from_numpy(np.asarray(values, dtype=np.float32)), (n, n),
                                       check_invariants=True)


def ppmi(counts: torch.Tensor, smoothing: float = 0.75) -> torch.Tensor:
    """Positive PMI (sparse CSR) of a symmetric CSR count matrix, the contexts' distribution
    raised to ``smoothing``."""
    crow, cols = counts.crow_indices().numpy(), counts.col_indices().numpy()
    values = counts.values().numpy().astype(np.float64)
    n = counts.shape[0]
    rows = np.repeat(np.arange(n), np.diff(crow))
    word = np.bincount(rows, weights=values, minlength=n)  # = the column sums: the matrix is symmetric
    context = word ** smoothing
    with np.errstate(divide="ignore"):
        # log P(w,c) / (P(w) P_a(c)): the grand total cancels out
        pmi = np.log(values * context.sum() / (word[rows] * context[cols]))
    keep = pmi > 0
    return _csr(rows[keep], cols[keep], pmi[keep], n)


def top_singular_vectors(matrix: torch.Tensor, k: int, niter: int, generator: torch.Generator,
                         step: Callable[[], object] = lambda: None):
    """The ``k`` leading left singular vectors and values of a sparse CSR ``matrix``: randomised
    subspace iteration (Halko et al. 2011) with a few extra columns, on CSR products only.
    ``step`` is called after each of ``niter`` + 2 steps."""
    with _csr_layout():
        transposed = matrix.t().to_sparse_csr()
    width = min(k + 10, matrix.shape[1])
    q = torch.linalg.qr(matrix @ torch.randn(matrix.shape[1], width, generator=generator)).Q
    step()
    for _ in range(niter):
        q = torch.linalg.qr(matrix @ torch.linalg.qr(transposed @ q).Q).Q
        step()
    u_small, s, _ = torch.linalg.svd((transposed @ q).t(), full_matrices=False)  # Q^T M = U S V^T
    step()
    return (q @ u_small)[:, :k], s[:k]


def pretrained_vectors(id_lists: Sequence[Sequence[int]], vocab_size: int, dim: int, window: int = 5,
                       seed: int = 0, progress: bool = False) -> torch.Tensor:
    """A [vocab_size, dim] matrix: row i the vector of word id i, scaled like ``nn.Embedding``'s init.

    Words never seen in ``id_lists`` (and UNK) keep a random vector; PAD is zero. ``progress``: a
    bar over the steps (counting, PPMI, SVD), which take 10-20 s on the full data on two cores.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    niter = 3
    # Steps of unequal cost (a counting step or a subspace iteration takes 1-3 s there), yet
    # steady enough for the bar's ETA to be of use.
    with tqdm(total=window + 1 + 1 + niter + 2, desc="word vectors", unit="step", disable=not progress,
              mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
        matrix = ppmi(cooccurrence(id_lists, vocab_size, window, step=bar.update))
        bar.update()
        u, s = top_singular_vectors(matrix, min(dim, vocab_size), niter=niter, generator=generator,
                                    step=bar.update)
    vectors = u * s.sqrt()  # eigenvalue weighting 0.5: the symmetric split of the factorisation
    # The overall scale of nn.Embedding's N(0, 1) init, so the LSTM starts in its usual range.
    seen = torch.from_numpy(np.diff(matrix.crow_indices().numpy()) > 0)
    if seen.any():
        vectors = vectors / vectors[seen].std().clamp_min(1e-8)
    out = torch.randn(vocab_size, dim, generator=generator)
    out[seen, : vectors.shape[1]] = vectors[seen]
    out[PAD] = 0.0
    log.info("pretrained %d-dimensional vectors for %d of %d words from %d texts (%d nonzero PPMI cells) in %.1fs",
             dim, int(seen.sum()), vocab_size, len(id_lists), matrix.values().numel(), time.perf_counter() - t0)
    return out
