"""Turning labels or target values into the dense (samples, outputs) array the core trains on."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._arrays import as_real_array, require_finite


def one_hot(y: np.ndarray, n_classes: int, dtype: np.dtype, name: str) -> np.ndarray:
    """(len(y), n_classes) one-hot rows of the 1-D class ids in y, each in 0..n_classes-1
    (integral floats accepted)."""
    if y.dtype.kind == "f":
        require_finite(y, name)
        if not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name} must hold integer class ids; got non-integer values")
    ids = np.ascontiguousarray(y, dtype=np.int64)
    dense = np.empty((ids.shape[0], n_classes), dtype=dtype)
    lowest, highest = _core.one_hot(ids, dense)  # writes dense only when every id is a class
    if ids.size and (lowest < 0 or highest >= n_classes):
        raise ValueError(
            f"{name} holds class ids from {lowest} to {highest}; "
            f"the network has {n_classes} outputs, so ids must be in 0..{n_classes - 1}"
        )
    return dense


def as_targets(
    value: Any, loss: str, n_outputs: int, n_rows: int, dtype: np.dtype, name: str = "y"
) -> np.ndarray:
    """A C-contiguous (n_rows, n_outputs) target array in `dtype`.

    cross_entropy takes 1-D class ids (made one-hot) or 2-D one-hot/probability rows;
    binary_cross_entropy takes 0/1 (or probabilities); mse any finite values. With one output a
    1-D y is read as a column.
    """
    y = as_real_array(value, name)
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise ValueError(f"{name} has {y.shape[0]} rows but the inputs have {n_rows}")
    if loss == "cross_entropy" and y.ndim == 1:
        return one_hot(y, n_outputs, dtype, name)
    if y.ndim == 1:
        if n_outputs != 1:
            raise ValueError(
                f"{name} is 1-D but the network has {n_outputs} outputs; "
                f"give it the shape ({n_rows}, {n_outputs})"
            )
        y = y.reshape(n_rows, 1)
    if y.shape[1] != n_outputs:
        raise ValueError(f"{name} must have {n_outputs} columns (the network's outputs); got shape {y.shape}")
    dense = np.ascontiguousarray(y, dtype=dtype)
    require_finite(dense, name)
    if loss in ("cross_entropy", "binary_cross_entropy") and (dense.min() < 0 or dense.max() > 1):
        raise ValueError(f"{name} must hold targets between 0 and 1 for loss {loss!r}")
    return dense
