"""Classification metrics shared by ``evaluate``, the training report and the benchmarks."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

__all__ = ["confusion_matrix", "classification_metrics"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[num_classes, num_classes]`` int64; rows are the truth, columns the prediction."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> Dict:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix.

    Args:
      y_true, y_pred: int class indices ``[n]``.
      labels: class names, index = class id.

    Returns:
      a JSON-ready dict: ``accuracy``, ``macro_f1``, ``num_examples``, ``labels``,
      ``per_class`` (list of dicts) and ``confusion_matrix`` (list of lists).
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_pos = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros_like(true_pos), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    total = int(matrix.sum())
    per_class: List[Dict] = [
        {
            "label": label,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    ]
    present = support > 0
    return {
        "accuracy": float(true_pos.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_examples": total,
        "labels": list(labels),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }
