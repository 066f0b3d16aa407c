"""A seeded, optionally stratified split of samples into a training and a test set."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from ._checks import check_bool, check_seed


def _test_count(test_size: object, n_samples: int) -> int:
    """Turn ``test_size`` (a fraction or a count) into the number of test samples."""
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            "test_size must be a float in (0, 1) or an int count; "
            f"got {type(test_size).__name__} {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
        if not 1 <= n_test <= n_samples - 1:
            raise ValueError(
                f"test_size as a count must be in 1..{n_samples - 1} for {n_samples} samples; "
                f"got {n_test}")
        return n_test
    fraction = float(test_size)
    if not 0.0 < fraction < 1.0:  # also rejects NaN
        raise ValueError(f"test_size as a fraction must be in (0, 1); got {fraction}")
    exact = fraction * n_samples
    # Round up, as scikit-learn does, but do not let 0.7 * 10 = 7.000000000000001 become 8.
    nearest = round(exact)
    n_test = nearest if abs(exact - nearest) <= 1e-9 * max(1.0, exact) else math.ceil(exact)
    if not 1 <= n_test <= n_samples - 1:
        raise ValueError(
            f"test_size={fraction} gives {n_test} test samples out of {n_samples}; "
            "both the training and the test set need at least one")
    return n_test


def _stratified_test_indices(labels: np.ndarray, n_test: int,
                             rng: np.random.Generator) -> np.ndarray:
    """Pick ``n_test`` indices so each class's test count is its expected share, rounded."""
    classes, class_of_sample = np.unique(labels, return_inverse=True)
    class_sizes = np.bincount(class_of_sample, minlength=classes.size)
    expected = class_sizes * n_test / labels.size
    per_class = np.floor(expected).astype(np.int64)
    # Largest remainders get the leftover samples, so every class count is within 1 of its
    # expectation and the total is exact; a random tie-break keeps low labels from being favoured.
    leftover = n_test - int(per_class.sum())
    tie_break = rng.permutation(classes.size)
    by_remainder = tie_break[np.argsort(-(expected - per_class)[tie_break], kind="stable")]
    per_class[by_remainder[:leftover]] += 1

    chosen = []
    for k in range(classes.size):
        members = np.flatnonzero(class_of_sample == k)
        chosen.append(rng.permutation(members)[:per_class[k]])
    return np.concatenate(chosen)


def train_test_split(
    X: Any, y: Any, *, test_size: float = 0.25, seed: Optional[int] = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split samples (rows of X and entries of y) into a shuffled training and test set.

    Parameters
    ----------
    X, y : array-like with the same length (first dimension).
    test_size : float in (0, 1) or int
        The fraction of samples to hold out (rounded up), or their number.
    seed : int >= 0 or None
        Seed for ``numpy.random.default_rng``; the same seed gives the same split.
    stratify : bool
        When y is 1-D integer labels, keep every class's share of the test set within one
        sample of its share of the whole. Other targets are split without stratification.

    Returns
    -------
    X_train, X_test, y_train, y_test : C-contiguous arrays (copies), rows in shuffled order.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0:
        raise ValueError("X must have at least one dimension (samples first); got a scalar")
    if y.ndim == 0:
        raise ValueError("y must have at least one dimension (samples first); got a scalar")
    if len(X) != len(y):
        raise ValueError(
            f"X and y must have the same length; got len(X)={len(X)} and len(y)={len(y)}")
    n_samples = len(X)
    if n_samples < 2:
        raise ValueError(f"X and y need at least 2 samples to split; got {n_samples}")
    n_test = _test_count(test_size, n_samples)
    seed = check_seed(seed)
    stratify = check_bool(stratify, "stratify")

    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        test_idx = rng.permutation(_stratified_test_indices(y, n_test, rng))
        in_test = np.zeros(n_samples, dtype=bool)
        in_test[test_idx] = True
        train_idx = rng.permutation(np.flatnonzero(~in_test))
    else:
        order = rng.permutation(n_samples)
        test_idx, train_idx = order[:n_test], order[n_test:]

    def take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[idx])

    return take(X, train_idx), take(X, test_idx), take(y, train_idx), take(y, test_idx)
