"""The validation split of early stopping: a random share of the rows, stratified by class for
single-label classification so each class keeps its proportion."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def holdout_split(rows: int, fraction: float, rng: np.random.Generator,
                  strata: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows), each sorted: ceil(fraction * rows) rows validate, as
    scikit-learn's train_test_split takes them."""
    n_validation = math.ceil(fraction * rows)
    if n_validation < 2:
        raise ValueError(f"The validation set is too small ({n_validation} of n_samples={rows}). "
                         "Increase 'validation_fraction' or the size of your dataset.")
    if n_validation >= rows:
        raise ValueError(f"validation_fraction={fraction} of {rows} samples leaves none for training")
    if strata is None:
        order = rng.permutation(rows)
        return np.sort(order[n_validation:]), np.sort(order[:n_validation])
    groups = [np.flatnonzero(strata == value) for value in np.unique(strata)]
    quotas = _quotas(np.array([len(group) for group in groups]), n_validation, rng)
    validation = np.concatenate([rng.permutation(group)[:quota]
                                 for group, quota in zip(groups, quotas)])
    mask = np.zeros(rows, dtype=bool)
    mask[validation] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _quotas(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Validation rows per class: proportional shares rounded down, then the rows left over
    one each to the classes with the largest remainders (ties broken at random), preferring
    classes that keep a training row."""
    exact = counts * total / counts.sum()
    quotas: np.ndarray = np.floor(exact).astype(np.int64)
    remainder = exact - quotas
    room = quotas + 1 < counts
    order = np.lexsort((rng.random(len(counts)), -remainder, ~room))
    for index in order[:total - int(quotas.sum())]:
        quotas[index] += 1
    return quotas
