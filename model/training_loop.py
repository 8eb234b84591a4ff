"""The training loop: reviews -> tokens -> vocabulary -> ids -> length-bucketed batches -> best-epoch model.

``fit`` is called by the ``train`` command (model/train.py, SageMaker's training contract), which reads
the job's paths and hyperparameters; this module reads no SageMaker path or variable.
"""
from __future__ import annotations

import copy
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import artifact, augment
from .data import Dataset, Review, split_validation
from .hyperparameters import Hyperparameters
from .embeddings import pretrained_vectors
from .metrics import (BEST_EPOCH_METRICS, EPOCH_METRICS, TEST_METRICS, binary_metrics, metric_line,
                      plot_confusion, plot_history)
from .network import LSTMClassifier, drop_words, pad_batch
from .preprocess import Preprocessor
from .vocab import Vocabulary

log = logging.getLogger("model.train")


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: list[int]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_threads(workers: int) -> int:
    threads = workers or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    # CPU kernels used here are deterministic already; torch.use_deterministic_algorithms would
    # import torch._dynamo, which cost 6.5 s of every run on this machine.
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random,
                     pool_batches: int = 50) -> list[list[int]]:
    """Batches of similar-length reviews (so padding wastes little), in shuffled order.

    Indices are shuffled, cut into pools of ``pool_batches`` batches, each pool sorted by length and
    cut into batches: batches differ from epoch to epoch while their members stay close in length.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def encode(reviews: list[Review], token_lists: list[list[str]], vocab: Vocabulary, max_len: int) -> Encoded:
    return Encoded(ids=[vocab.encode(t, max_len) for t in token_lists], labels=[r.label for r in reviews])


def training_examples(reviews: Encoded, sentences: list[augment.Sentence], sentence_tokens: list[list[str]],
                      vocab: Vocabulary, max_len: int) -> tuple[Encoded, torch.Tensor]:
    """The training reviews followed by the added sentences, and which examples are reviews.

    Word dropout applies to the reviews only: in a short sentence the dropped word is often the one
    that decides its label ("not" in "not good").
    """
    examples = Encoded(ids=reviews.ids + [vocab.encode(t, max_len) for t in sentence_tokens],
                       labels=reviews.labels + [s.label for s in sentences])
    return examples, torch.tensor([True] * len(reviews.ids) + [False] * len(sentences))


@torch.inference_mode()
def score(model: LSTMClassifier, data: Encoded, device: torch.device, batch_size: int = 256) -> tuple[list[float], float]:
    """Probabilities for every review (in order) and the mean loss."""
    model.eval()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
    probs = [0.0] * len(order)
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, lengths = pad_batch([data.ids[i] for i in idx])
        logits = model(ids.to(device), lengths)
        labels = torch.tensor([data.labels[i] for i in idx], dtype=torch.float32, device=device)
        total += float(loss_fn(logits, labels))
        for i, p in zip(idx, torch.sigmoid(logits).tolist()):
            probs[i] = p
    return probs, total / max(1, len(order))


def fit(dataset: Dataset, hp: Hyperparameters, model_dir: Path, progress: bool = True,
        evaluate_test: bool = True) -> dict:
    """Train, keep the best epoch by validation accuracy, write the artifact; returns metrics.json."""
    t_start = time.perf_counter()
    threads = configure_threads(hp.workers)
    seed_everything(hp.seed)
    device = pick_device()
    log.info("device=%s threads=%d hyperparameters=%s", device, threads, hp.to_dict())

    train_reviews, val_reviews = split_validation(dataset.train, hp.validation_fraction, hp.seed,
                                                  by_movie=hp.validation_split == "movie")
    test_reviews = dataset.test if evaluate_test else []
    preprocessor = Preprocessor.create(hp.preprocessing)
    everything = train_reviews + val_reviews + test_reviews
    unlabelled = dataset.unlabelled if hp.embedding_init != "none" else []
    if hp.embedding_init != "none" and not unlabelled:
        log.warning("no unlabelled reviews in the data (aclImdb/train/unsup): word vectors from the training split only")
    synthetic = augment.sentences(hp.augment_sentences, hp.seed)
    t0 = time.perf_counter()
    tokens = preprocessor.tokens_many([r.text for r in everything] + unlabelled + [s.text for s in synthetic],
                                      workers=threads, progress=progress)
    preprocess_s = time.perf_counter() - t0
    n_tr, n_val, n_all = len(train_reviews), len(val_reviews), len(everything)
    n_unl = len(unlabelled)
    train_tokens, val_tokens, test_tokens = tokens[:n_tr], tokens[n_tr:n_tr + n_val], tokens[n_tr + n_val:n_all]
    unlabelled_tokens, synthetic_tokens = tokens[n_all:n_all + n_unl], tokens[n_all + n_unl:]
    log.info("preprocessed %d reviews in %.1fs (%s mode)", len(tokens), preprocess_s, hp.preprocessing)

    # The vocabulary and the word vectors come from real reviews only; the sentences are training examples.
    vocab = Vocabulary.build(train_tokens, hp.vocab_size)
    train, is_review = training_examples(encode(train_reviews, train_tokens, vocab, hp.max_len),
                                         synthetic, synthetic_tokens, vocab, hp.max_len)
    if synthetic:
        log.info("added %d sentences (model/augment.py) to the %d training reviews", len(synthetic), n_tr)
    val = encode(val_reviews, val_tokens, vocab, hp.max_len)
    test = encode(test_reviews, test_tokens, vocab, hp.max_len)

    model = LSTMClassifier.from_hyperparameters(hp, len(vocab))
    if hp.embedding_init == "ppmi-svd":
        # Never the validation or test reviews: their text stays unseen until they are scored.
        corpus = [vocab.encode(t, len(t)) for t in train_tokens + unlabelled_tokens]
        with torch.no_grad():
            model.embedding.weight.copy_(pretrained_vectors(corpus, len(vocab), hp.embedding_dim, seed=hp.seed,
                                                               progress=progress))
        del corpus
    model = model.to(device)
    embedding = list(model.embedding.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    model.embedding.weight.requires_grad_(hp.embedding_lr_scale > 0)
    groups = [{"params": rest}]
    if hp.embedding_lr_scale > 0:
        groups.append({"params": embedding, "lr": hp.learning_rate * hp.embedding_lr_scale})
    optimiser = torch.optim.Adam(groups, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = random.Random(hp.seed)
    lengths = [max(1, len(x)) for x in train.ids]
    total_steps = hp.epochs * -(-len(lengths) // hp.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, (lambda step: 1.0 - step / total_steps) if hp.lr_schedule == "linear" else (lambda step: 1.0))

    history: list[dict] = []
    best_state, best_acc, best_epoch = None, -1.0, 0
    for epoch in range(1, hp.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        batches = bucketed_batches(lengths, hp.batch_size, rng, hp.bucket_pool)
        running, seen = 0.0, 0
        bar = _bar(batches, progress, f"epoch {epoch}/{hp.epochs}")
        for idx in bar:
            ids, lens = pad_batch([train.ids[i] for i in idx])
            ids = drop_words(ids, hp.word_dropout, rows=is_review[idx])
            labels = torch.tensor([train.labels[i] for i in idx], dtype=torch.float32, device=device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(ids.to(device), lens), labels)
            loss.backward()
            if hp.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimiser.step()
            scheduler.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            if progress and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
        val_probs, val_loss = score(model, val, device)
        val_acc = binary_metrics(val.labels, val_probs)["accuracy"]
        entry = {"epoch": epoch, "train_loss": running / max(1, seen), "validation_loss": val_loss,
                 "validation_accuracy": val_acc, "seconds": time.perf_counter() - t_epoch}
        history.append(entry)
        print(f"epoch={epoch} " + metric_line(EPOCH_METRICS, train={"loss": entry["train_loss"]},
                                              validation={"loss": val_loss, "accuracy": val_acc})
              + f" epoch_seconds={entry['seconds']:.1f}", flush=True)
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = copy.deepcopy(model.state_dict())

    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    train_seconds = time.perf_counter() - t_start
    val_probs, val_loss = score(model, val, device)
    metrics = {
        "best_epoch": best_epoch,
        "validation": {**binary_metrics(val.labels, val_probs), "loss": val_loss},
        "history": history,
        "preprocess_seconds": round(preprocess_s, 2),
        "train_seconds": round(train_seconds, 1),
        "device": str(device),
        "threads": threads,
    }
    print(metric_line(BEST_EPOCH_METRICS, validation=metrics["validation"]) + f" best_epoch={best_epoch}",
          flush=True)
    if test.ids:
        test_probs, test_loss = score(model, test, device)
        metrics["test"] = {**binary_metrics(test.labels, test_probs), "loss": test_loss}
        print(metric_line(TEST_METRICS, test=metrics["test"]), flush=True)

    model.cpu()
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    artifact.write_json(model_dir / artifact.METRICS, metrics)
    plot_history(history, model_dir / "training_curves.png")
    reported = metrics.get("test", metrics["validation"])
    plot_confusion(reported["confusion_matrix"], model_dir / "confusion_matrix.png",
                   "Test split" if "test" in metrics else "Validation split")
    artifact.save(model_dir, model, vocab, preprocessor, hp,
                  extra={"best_epoch": best_epoch, "validation_accuracy": metrics["validation"]["accuracy"]})
    return metrics


def _bar(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm
    # Not a terminal (a SageMaker job's log): update rarely instead of flooding the log.
    interactive = sys.stderr.isatty()
    return tqdm(items, desc=desc, unit="batch", mininterval=0.5 if interactive else 30.0)
