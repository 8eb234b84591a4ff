"""Test accuracy of the original implementation on the original configuration, on our split and tokens.

    NLTK_DATA=../shared/nltk_data LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python benchmarks/bench_original_accuracy.py [--epochs 10]

The accuracy side of the training row: does training ours (length-bucketed batches) instead of the
original (every review padded to 500, batches in one fixed shuffled order) cost accuracy on the
original configuration? This trains bench_training.py's faithful copy of the original model (sequence-
first LSTM over all 500 steps, BCELoss on the sigmoid, Adam 1e-3, batch 512, no clipping) on exactly
what ``python -m model.train --preset original`` trains on (the same 22,500 reviews, original tokens,
5,000-token vocabulary, seed 42), reports validation accuracy after every epoch and test accuracy after
the last one and at the best validation epoch. Compare with ``python -m model.train --preset original``
(benchmarks/results/original-preset-ours-10-epochs.txt). The allocator (tcmalloc via LD_PRELOAD) only
makes it faster; it does not change the arithmetic.
"""
from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(_common.DATA))
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    _common.set_nltk_data()
    header("original implementation, original configuration: accuracy on our split")
    print(f"# LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}")
    import torch
    from torch import nn

    from bench_training import original_classes, original_rows
    from model.data import load, split_validation
    from model.hyperparameters import preset
    from model.preprocess import Preprocessor
    from model.training_loop import configure_threads, seed_everything
    from model.vocab import Vocabulary

    hp = preset("original")
    threads = configure_threads(hp.workers)
    seed_everything(hp.seed)
    dataset = load(args.data)
    train, val = split_validation(dataset.train, hp.validation_fraction, hp.seed)
    pre = Preprocessor.create("original")
    everything = train + val + dataset.test
    tokens = pre.tokens_many([r.text for r in everything])
    n_tr, n_val = len(train), len(val)
    vocab = Vocabulary.build(tokens[:n_tr], hp.vocab_size)

    def tensors(reviews, toks):
        ids = [vocab.encode(t, hp.max_len) for t in toks]
        return (torch.tensor(original_rows(ids, hp.max_len), dtype=torch.long),
                torch.tensor([float(r.label) for r in reviews]))

    order = list(range(n_tr))
    random.Random(hp.seed).shuffle(order)  # the original shuffled its training CSV once
    x_tr, y_tr = tensors([train[i] for i in order], [tokens[i] for i in order])
    x_val, y_val = tensors(val, tokens[n_tr:n_tr + n_val])
    x_te, y_te = tensors(dataset.test, tokens[n_tr + n_val:])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_tr, y_tr), batch_size=hp.batch_size)

    _, Original = original_classes()
    model = Original(hp.embedding_dim, hp.hidden_dim, hp.vocab_size)
    optimizer = torch.optim.Adam(model.parameters())
    loss_fn = nn.BCELoss()

    @torch.inference_mode()
    def accuracy(x, y):
        model.eval()
        correct = 0
        for start in range(0, len(x), 1024):
            p = model(x[start:start + 1024])
            correct += int(((p >= 0.5).float() == y[start:start + 1024]).sum())
        return correct / len(x)

    print(f"threads {threads}; {n_tr} training, {n_val} validation, {len(dataset.test)} test reviews", flush=True)
    best, best_acc, best_epoch = None, -1.0, 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for batch_x, batch_y in loader:
            optimizer.zero_grad()
            out = model(batch_x)
            loss = loss_fn(out, batch_y)
            loss.backward()
            optimizer.step()
            total += loss.data.item() * len(batch_x)
        train_s = time.perf_counter() - t0
        val_acc = accuracy(x_val, y_val)
        print(f"epoch={epoch} train:loss={total / n_tr:.4f} validation:accuracy={val_acc:.4f} "
              f"train_seconds={train_s:.1f}", flush=True)
        if val_acc > best_acc:
            best_acc, best_epoch, best = val_acc, epoch, copy.deepcopy(model.state_dict())
    last_test = accuracy(x_te, y_te)
    model.load_state_dict(best)
    best_test = accuracy(x_te, y_te)
    print(f"test accuracy after epoch {args.epochs}: {last_test:.4f}; at the best validation epoch "
          f"({best_epoch}, validation {best_acc:.4f}): {best_test:.4f}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
