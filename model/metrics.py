"""Classification metrics and the plots stored beside a model."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

# The metrics the training log prints as ``name=value`` (see ``metric_line``); SageMaker metric
# definitions (the CDK training job, scripts/sagemaker_job.py) scrape exactly these.
LOGGED_METRICS = ("train:loss", "validation:loss", "validation:accuracy", "validation:f1",
                  "test:accuracy", "test:precision", "test:recall", "test:f1")
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": rf"\b{re.escape(name)}={_NUMBER}"} for name in LOGGED_METRICS]


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


def metric_line(prefix: str, values: dict) -> str:
    """``validation:accuracy=0.8912 validation:loss=0.2871`` - the form SageMaker metric definitions scrape."""
    return " ".join(f"{prefix}:{k}={v:.4f}" for k, v in values.items() if isinstance(v, (int, float)))


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
