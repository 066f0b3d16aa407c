"""Metrics logged by fit and evaluate: accuracy for classifiers, mse and mae."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def accuracy(y_hat: np.ndarray, targets: np.ndarray, elementwise: bool) -> float:
    """Share of rows whose largest output matches the target's, or with elementwise (binary
    and multi-label outputs) the share of entries on the same side of 0.5 as the target."""
    if elementwise or y_hat.shape[1] == 1:
        return float(np.mean((y_hat > 0.5) == (targets > 0.5)))
    return float(np.mean(y_hat.argmax(axis=1) == targets.argmax(axis=1)))


METRICS = ("accuracy", "mse", "mae")


def metric_values(names: Sequence[str], y_hat: np.ndarray, targets: np.ndarray,
                  elementwise: bool) -> dict[str, float]:
    """The named metrics of predictions y_hat against dense targets: accuracy (classifiers),
    mse (mean over all entries of the squared error), mae (mean absolute error)."""
    values = {}
    for name in names:
        if name == "accuracy":
            values[name] = accuracy(y_hat, targets, elementwise)
        elif name == "mse":
            values[name] = float(np.mean((y_hat.astype(np.float64) - targets) ** 2))
        else:
            values[name] = float(np.mean(np.abs(y_hat.astype(np.float64) - targets)))
    return values


def check_metrics(metrics: Any, classifier: bool) -> list[str]:
    """The metric names to report: by default accuracy for classifiers, none otherwise."""
    if metrics is None:
        return ["accuracy"] if classifier else []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names; got {type(metrics).__name__}")
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"metrics must name some of {', '.join(map(repr, METRICS))}; got {name!r}")
        if name == "accuracy" and not classifier:
            raise ValueError("metric 'accuracy' needs a classifier (loss cross_entropy or "
                             "binary_cross_entropy)")
    return list(dict.fromkeys(metrics))
