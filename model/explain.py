"""Per-word explanations by occlusion: weight(word) = logit(review) - logit(review without that word).

Weights are changes of the log-odds (the network's output before the sigmoid), not of the
probability: on a confident review the probability is saturated near 0 or 1, where removing a
word moves it by 1e-5 or less and the ranking drowns in rounding; the log-odds keep the scale.

Exact, and batched. The plain way runs the review plus one copy per removed token as one packed batch:
n + 1 full passes. But removing token i leaves every forward-direction state before i, and every
backward-direction state after i, exactly as in the full review. So each occluded review only runs
from its removal point on, starting from the full review's state there, and all of them advance
together in one batched recurrence per direction: n(n-1)/2 row-steps per direction instead of
n(n+1), and the step's input projection is shared by every row. The full review's cell states, which
``nn.LSTM`` does not return, are recomputed from its hidden states with one matrix product. The two
directions are independent and run on two threads where two CPUs are free.

This holds for a one-layer LSTM (either direction count). Deeper LSTMs take the plain batched way,
with identical occluded sequences (a repeated token removed at either place) scored once. Both ways
agree with scoring each occluded review on its own to float rounding (tests/test_inference.py).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch import nn

from .network import LSTMClassifier, pad_batch, pad_to_bucket

# Occluded sequences scored per forward pass on the plain way (bounds memory for long reviews).
_CHUNK = 64


def word_tokens(artifact, review: str) -> tuple[list[str], list[int | None], list[int]]:
    """The review's surface words, each word's position among the model's ids (None when the word
    is dropped or beyond max_len), and the ids, identical to ``artifact.encode(review)``."""
    from .preprocess import review_words

    words = review_words(review)
    token = artifact.preprocessor.token
    limit = artifact.hyperparameters.max_len
    positions: list[int | None] = []
    kept: list[str] = []
    for w in words:
        t = token(w)
        if t is None or len(kept) >= limit:
            positions.append(None)
        else:
            positions.append(len(kept))
            kept.append(t)
    return words, positions, artifact.vocab.encode(kept, limit)


def explain(artifact, review: str, digits: int = 4) -> tuple[float, list[dict[str, Any]]]:
    """(score, [{"word": w, "weight": float | None}, ...]) for one review; weights in log-odds."""
    words, positions, ids = word_tokens(artifact, review)
    full, without = occlusion_logits(artifact.model, ids)
    entries = [{"word": w, "weight": None if p is None else round(full - without[p], digits)}
               for w, p in zip(words, positions)]
    return float(torch.sigmoid(torch.tensor(full))), entries


def occlusion_probabilities(model: LSTMClassifier, ids: list[int]) -> tuple[float, list[float]]:
    """P(positive) for ``ids`` and for ``ids`` without each token in turn."""
    full, without = occlusion_logits(model, ids)
    probs = torch.sigmoid(torch.tensor([full] + without)).tolist()
    return probs[0], probs[1:]


@torch.inference_mode()
def occlusion_logits(model: LSTMClassifier, ids: list[int]) -> tuple[float, list[float]]:
    """The log-odds of P(positive) for ``ids`` and for ``ids`` without each token in turn."""
    n = len(ids)
    if n < 2 or len(model.forward_layers) != 1:
        return _plain(model, ids)
    x = model.embedding(torch.tensor(ids, dtype=torch.long))
    pools = tuple(model.pooling.split("+")[1:])  # ("max",), ("max", "mean") or ()
    fwd = model.forward_layers[0]
    if not model.backward_layers:
        parts = _occluded_finals(fwd, x, pools)
    else:
        bwd = model.backward_layers[0]
        pending = _submit(_occluded_finals, bwd, x.flip(0), pools)
        forward_parts = _occluded_finals(fwd, x, pools)
        backward_parts = pending.result() if isinstance(pending, Future) else pending
        # backward row r removed token n-1-r: flip to the original order; per feature, the forward
        # direction's then the backward's (last states, then each pooling)
        parts = [part for f, (b_full, b_rows) in zip(forward_parts, backward_parts)
                 for part in (f, (b_full, b_rows.flip(0)))]
    # the dense layer's input, in the network's order: last state(s), then the pooled ones
    features = torch.cat([torch.cat([full for full, _ in parts])[None],
                          torch.cat([rows for _, rows in parts], dim=1)])
    logits = model.dense(features).squeeze(-1)
    if model.ngrams is not None:  # the n-gram bag's score of the review and of each occluded one
        full_ids = torch.tensor(ids, dtype=torch.long)
        keep = ~torch.eye(n, dtype=torch.bool)
        occluded = full_ids.expand(n, n)[keep].view(n, n - 1)
        logits = logits + torch.cat([model.ngrams(full_ids[None], torch.tensor([n])),
                                     model.ngrams(occluded, torch.full((n,), n - 1))])
    logits = logits.tolist()
    return logits[0], logits[1:]


def _plain(model: LSTMClassifier, ids: list[int]) -> tuple[float, list[float]]:
    n = len(ids)
    # removing ids[i] == ids[i-1] gives the same sequence as removing ids[i-1]
    source = [i if i == 0 or ids[i] != ids[i - 1] else -1 for i in range(n)]
    for i in range(n):
        if source[i] == -1:
            source[i] = source[i - 1]
    unique = sorted(set(source))
    seqs = [ids] + [ids[:i] + ids[i + 1:] for i in unique]
    logits: list[float] = []
    for start in range(0, len(seqs), _CHUNK):
        logits += model(*pad_batch(seqs[start:start + _CHUNK])).tolist()
    by_source = dict(zip(unique, logits[1:]))
    return logits[0], [by_source[source[i]] for i in range(n)]


def _occluded_finals(lstm: nn.LSTM, x: torch.Tensor, pools: tuple[str, ...] = ()):
    """For a one-layer, one-direction ``lstm`` over ``x`` [n, E] (in its reading order), one pair per
    feature the dense layer reads: the final hidden state, then each of ``pools`` ("max", "mean") of
    the states over the sequence. A pair is (the feature of the whole sequence [H], [n, H] the feature
    of the sequence without token r for every r). Row r's states are the full sequence's before r,
    then its own."""
    with torch.inference_mode():
        n = x.shape[0]
        hidden = lstm.hidden_size
        # tanh(z) = 2 sigmoid(2z) - 1: with the cell-input rows (g, the third quarter) of the
        # weights doubled, one sigmoid over all four gates does the work of three sigmoids and a tanh
        # (PyTorch's tanh costs ~3x its sigmoid on CPU).
        scale = torch.ones(4 * hidden, 1)
        scale[2 * hidden:3 * hidden] = 2.0
        w_ih = lstm.weight_ih_l0 * scale
        w_hh_t = (lstm.weight_hh_l0 * scale).t()
        bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0) * scale[:, 0] if lstm.bias else torch.zeros(4 * hidden)
        # zero rows up to a multiple of LENGTH_BUCKET: the recurrence is causal, so the first n states
        # are the same, and oneDNN compiles one kernel per bucket instead of one per review length
        out, _ = lstm(pad_to_bucket(x, dim=0, value=0.0)[None])
        h_seq = out[0, :n]                                      # state after token t
        proj = torch.addmm(bias, x, w_ih.t())                   # input part of every step's gates
        # hidden/cell state *before* token t (zero before the first)
        h = torch.cat([torch.zeros(1, hidden), h_seq[:-1]])
        gates = torch.addmm(proj, h, w_hh_t).sigmoid_()
        i, f, g, _ = gates.chunk(4, dim=1)
        ig = torch.addcmul(-i, i, g, value=2.0)                 # i * tanh(z_g)
        c = torch.zeros(n, hidden)
        for t in range(n - 1):
            torch.addcmul(ig[t], f[t], c[t], out=c[t + 1])
        # Row r: the sequence without token r; it starts as the full state before r and reads
        # tokens r+1.. . At step t all rows r < t read token t, so the active rows are h[:t].
        h = h.clone()
        running_max = running_sum = None
        if "max" in pools:  # max of the full sequence's states 0..r-1, then of the row's own
            prefix = torch.cummax(h_seq, dim=0).values
            running_max = torch.cat([torch.full((1, hidden), float("-inf")), prefix[:-1]])
        if "mean" in pools:  # likewise their sum, divided by the n-1 tokens at the end
            running_sum = torch.cat([torch.zeros(1, hidden), torch.cumsum(h_seq, dim=0)[:-1]])
        buf = torch.empty(n, 4 * hidden)
        tmp = torch.empty(n, hidden)
        for t in range(1, n):
            gates = torch.addmm(proj[t], h[:t], w_hh_t, out=buf[:t]).sigmoid_()
            i, f, g, o = gates.chunk(4, dim=1)
            cv = c[:t]
            cv.mul_(f).addcmul_(i, g, value=2.0).sub_(i)       # f*c + i*(2*g - 1)
            th = torch.add(cv, cv, out=tmp[:t]).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(c)
            torch.mul(o, th, out=h[:t])
            if running_max is not None:
                torch.maximum(running_max[:t], h[:t], out=running_max[:t])
            if running_sum is not None:
                running_sum[:t].add_(h[:t])
        parts = [(h_seq[-1], h)]
        for pool in pools:
            if pool == "max":
                parts.append((h_seq.amax(dim=0), running_max))
            else:
                parts.append((h_seq.mean(dim=0), running_sum / (n - 1)))
        return parts


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _submit(fn, *args):
    """Run ``fn`` on a helper thread when a second CPU is there to run it; else run it now."""
    global _pool, _pool_pid
    if _cpus() < 2:
        return fn(*args)
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():  # a forked worker gets its own thread
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
            _pool_pid = os.getpid()
    return _pool.submit(fn, *args)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
