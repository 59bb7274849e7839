"""Classification metrics: accuracy, macro-F1, per-class precision/recall, confusion matrix."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Flat metrics ([mini-xception-fer] Table 3 layout: per-class precision and recall) plus the confusion matrix.

    ``macro_f1`` averages over the classes present in ``y_true`` (a class absent
    from the test split has no defined F1 and would pull the mean towards 0);
    ``absent_classes`` lists the others.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i in labels if s[i] > 0]
    out: dict[str, Any] = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        if present else float("nan"),
        "n": int(len(y_true)),
        "absent_classes": [classes[i] for i in labels if s[i] == 0],
    }
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> list[dict[str, str]]:
    """Rows for DVC's ``confusion`` template: one per test sample, with class names."""
    return [{"actual": classes[int(a)], "predicted": classes[int(b)]} for a, b in zip(y_true, y_pred)]
