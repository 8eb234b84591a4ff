"""Classification metrics and the plots stored beside a model."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

# What training prints as ``name=value`` (``metric_line``), line by line, and nothing else under these
# names: SageMaker's metric definitions (the CDK training job, scripts/sagemaker_job.py) are made from
# the same tuples, so a metric cannot be printed without being scraped, or scraped without being printed.
EPOCH_METRICS = ("train:loss", "validation:loss", "validation:accuracy")  # after every epoch
# Then once for the epoch kept: SageMaker keeps a metric's last value as its final one.
BEST_EPOCH_METRICS = ("validation:accuracy", "validation:f1", "validation:loss")
TEST_METRICS = ("test:accuracy", "test:precision", "test:recall", "test:f1")  # unless --no-test
LOGGED_METRICS = tuple(dict.fromkeys(EPOCH_METRICS + BEST_EPOCH_METRICS + TEST_METRICS))
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": rf"\b{re.escape(name)}={_NUMBER}"} for name in LOGGED_METRICS]


def metric_attribute(name: str) -> str:
    """The training-job custom resource's attribute for a metric: ``validation:accuracy`` ->
    ``Metric_validation_accuracy`` (a plain name for Fn::GetAtt).

    lambda/training_job/handler.py, which ships alone, has a copy that a test holds to this one.
    """
    return "Metric_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def binary_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> dict:
    tp = fp = tn = fn = 0
    for y, p in zip(labels, probs):
        pred = 1 if p >= threshold else 0
        if pred and y:
            tp += 1
        elif pred:
            fp += 1
        elif y:
            fn += 1
        else:
            tn += 1
    n = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        # rows: true label (negative, positive); columns: predicted label
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def metric_line(names: Sequence[str], **splits: dict) -> str:
    """``validation:accuracy=0.8912 validation:f1=0.8899`` for ``names`` (``split:key``), each value read
    from ``splits[split][key]``: the form SageMaker metric definitions scrape."""
    out = []
    for name in names:
        split, key = name.split(":")
        out.append(f"{name}={float(splits[split][key]):.4f}")
    return " ".join(out)


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax_loss.plot(epochs, [h["validation_loss"] for h in history], marker="o", label="validation")
    ax_loss.set(title="Loss (binary cross-entropy)", xlabel="epoch")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["validation_accuracy"] for h in history], marker="o", color="tab:green")
    ax_acc.set(title="Validation accuracy", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    names = ["negative", "positive"]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    peak = max(max(row) for row in matrix) or 1
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                    color="white" if matrix[i][j] > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
