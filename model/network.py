"""The original system's classifier: embedding -> LSTM -> linear -> sigmoid.

The decision is read at the last real token of each review, never at padding. Batches are padded
only up to their own longest review (training groups reviews of similar length, so little is
wasted), and each direction reads its state at the review's own end:

* forward: the output at position ``length - 1``;
* backward (bidirectional): the review's real tokens are reversed in place (padding stays at the
  end) and run through a second LSTM, whose output at ``length - 1`` has read the whole review
  from its last token back to its first.

That is exactly what a packed bidirectional ``nn.LSTM`` computes, but runs on oneDNN's fused RNN
kernels: measured here, ``pack_padded_sequence`` batches fall back to a per-step loop that trains
6-10x slower on CPU (docs/performance.md).
"""
from __future__ import annotations

import torch
from torch import nn

from .hyperparameters import POOLINGS, Hyperparameters
from .vocab import PAD, UNK


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[i]`` steps of each row of ``x`` [batch, time, ...]; keep the rest."""
    steps = torch.arange(x.shape[1], device=x.device)
    lens = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)
    if x.dim() == 3:
        index = index.unsqueeze(-1).expand(-1, -1, x.shape[2])
    return x.gather(1, index)


class NgramBag(nn.Module):
    """A linear model over the hashed 1- to ``order``-grams of a review's ids, beside the LSTM.

    One learnt weight per hash bucket; the review's score is the sum of its n-grams' weights over the
    square root of their count (a sum would grow with the review's length, a mean would drown a
    short review's one telling bigram in a long one's many). Bag-of-n-gram models are what beats an
    LSTM on long IMDB reviews (NBSVM, Wang & Manning 2012): this lets the network have both, and
    read "not good" as one feature besides reading it in order.
    """

    # Multipliers for hashing n-grams of ids: odd, large, distinct per position.
    _MIX = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)

    def __init__(self, buckets: int, order: int):
        super().__init__()
        if not 1 <= order <= len(self._MIX):
            raise ValueError(f"n-gram order must be 1 to {len(self._MIX)}; got {order}")
        self.order = order
        self.buckets = buckets
        self.weight = nn.Embedding(buckets, 1)
        nn.init.zeros_(self.weight.weight)

    def bucket_ids(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[batch, k] bucket of every n-gram and whether it lies within the review's real tokens."""
        real = torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device).unsqueeze(1)
        keys, masks = [], []
        h = torch.zeros_like(ids)
        for n in range(1, self.order + 1):
            if ids.shape[1] < n:
                break
            # h[:, i] hashes ids[i .. i+n-1]; kept below 2**40 so the products stay in int64
            h = (h[:, : ids.shape[1] - n + 1] * 1_000_003 + ids[:, n - 1:] * self._MIX[n - 1]) % (1 << 40)
            keys.append((h + n) % self.buckets)
            masks.append(real[:, n - 1:])
        return torch.cat(keys, dim=1), torch.cat(masks, dim=1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keys, mask = self.bucket_ids(ids, lengths)
        weights = self.weight(keys).squeeze(-1) * mask
        return weights.sum(dim=1) / mask.sum(dim=1).clamp(min=1).to(weights.dtype).sqrt()


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, pooling: str = "last",
                 ngram_buckets: int = 0, ngram_order: int = 2):
        super().__init__()
        # None, or the bag of hashed n-grams whose score is added to the LSTM's logit
        self.ngrams = NgramBag(ngram_buckets, ngram_order) if ngram_buckets else None
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.directions = 2 if bidirectional else 1
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        width = embedding_dim
        for _ in range(num_layers):
            self.forward_layers.append(nn.LSTM(width, hidden_dim, batch_first=True))
            if bidirectional:
                self.backward_layers.append(nn.LSTM(width, hidden_dim, batch_first=True))
            width = hidden_dim * self.directions
        self.dropout = nn.Dropout(dropout)
        features = hidden_dim * self.directions * len(pooling.split("+"))
        self.dense = nn.Linear(features, 1)

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters, vocab_size: int) -> "LSTMClassifier":
        return cls(vocab_size, hp.embedding_dim, hp.hidden_dim, hp.num_layers, hp.bidirectional,
                   hp.dropout, hp.pooling, hp.ngram_buckets, hp.ngram_order)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch] for padded ``ids`` [batch, time] and ``lengths`` [batch] (>= 1)."""
        x = self.dropout(self.embedding(ids))
        last = (lengths - 1).to(ids.device)
        rows = torch.arange(ids.shape[0], device=ids.device)
        finals = []
        for depth, forward_lstm in enumerate(self.forward_layers):
            out_f, _ = forward_lstm(x)
            outs, finals = [out_f], [out_f[rows, last]]
            if self.backward_layers:
                out_b, _ = self.backward_layers[depth](reverse_padded(x, lengths))
                finals.append(out_b[rows, last])
                outs.append(reverse_padded(out_b, lengths))  # back to reading order for the next layer
            x = torch.cat(outs, dim=-1)
            if depth + 1 < len(self.forward_layers):
                x = self.dropout(x)
        if self.pooling != "last":
            # Also the strongest activation anywhere in the review (padding masked out) ...
            real = (torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device).unsqueeze(1)).unsqueeze(-1)
            finals.append(x.masked_fill(~real, float("-inf")).amax(dim=1))
            if self.pooling == "last+max+mean":
                # ... and the review's average.
                finals.append(x.masked_fill(~real, 0.0).sum(dim=1) / lengths.to(x.device, x.dtype).unsqueeze(1))
        logits = self.dense(self.dropout(torch.cat(finals, dim=-1))).squeeze(-1)
        return logits if self.ngrams is None else logits + self.ngrams(ids, lengths)

    @torch.inference_mode()
    def predict_proba(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(ids, lengths))


def drop_words(ids: torch.Tensor, p: float, generator: torch.Generator | None = None,
               rows: torch.Tensor | None = None) -> torch.Tensor:
    """``ids`` with each real token replaced by UNK with probability ``p`` (padding untouched);
    only in the rows where ``rows`` [batch] is true, when given."""
    if p <= 0:
        return ids
    hit = (torch.rand(ids.shape, generator=generator) < p) & (ids != PAD)
    if rows is not None:
        hit &= rows.unsqueeze(1)
    return torch.where(hit, torch.full_like(ids, UNK), ids)


def pad_batch(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into a [batch, max_len] tensor and their lengths; an empty list becomes [PAD]."""
    seqs = [s if s else [PAD] for s in sequences]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths


# Padded lengths are rounded up to a multiple of this many tokens. oneDNN compiles and caches one
# LSTM kernel, with its work buffers, per input shape: with every length its own shape, a worker's
# memory grew 14% over 10,000 requests and was still growing (benchmarks/serving_memory_growth.py).
# The network never reads padding, so the answer is the same.
LENGTH_BUCKET = 16


def pad_to_bucket(steps: torch.Tensor, dim: int = 1, value: float = PAD,
                  bucket: int = LENGTH_BUCKET) -> torch.Tensor:
    """``steps`` with ``value`` added along its time axis ``dim`` up to the next multiple of
    ``bucket``: ids [batch, time] with PAD (the default), or embedded rows [time, features] with 0."""
    extra = -steps.shape[dim] % bucket
    if not extra:
        return steps
    shape = list(steps.shape)
    shape[dim] = extra
    return torch.cat([steps, steps.new_full(shape, value)], dim=dim)
