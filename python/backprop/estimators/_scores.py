"""The scores of the estimators' score methods and of early stopping: accuracy (whole rows for
multilabel targets) and the coefficient of determination R^2, both with sample weights."""

from __future__ import annotations

from typing import Optional

import numpy as np


def accuracy(correct: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """The (weighted) share of rows predicted right; `correct` holds one bool per row. NaN
    when the weights add up to 0 (an early-stopping split may draw only zero weights)."""
    if sample_weight is not None and not np.sum(sample_weight) > 0:
        return float("nan")
    return float(np.average(correct, weights=sample_weight))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray,
             sample_weight: Optional[np.ndarray] = None) -> float:
    """R^2 = 1 - SS_res / SS_tot per output, averaged uniformly over the outputs. An output whose
    targets are constant scores 1.0 when predicted exactly and 0.0 otherwise (as scikit-learn's
    r2_score with force_finite=True). NaN when the weights add up to 0."""
    truth = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    weights = np.ones((len(truth), 1)) if sample_weight is None else \
        np.asarray(sample_weight, dtype=np.float64).reshape(-1, 1)
    if not weights.sum() > 0:
        return float("nan")
    residual = (weights * (truth - pred) ** 2).sum(axis=0)
    mean = (weights * truth).sum(axis=0) / weights.sum()
    total = (weights * (truth - mean) ** 2).sum(axis=0)
    scores = np.where(residual == 0, 1.0, 0.0)
    varying = total != 0
    scores[varying] = 1.0 - residual[varying] / total[varying]
    return float(scores.mean())
