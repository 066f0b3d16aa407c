"""Classification targets: which kind (binary, multiclass, multilabel), the sorted classes, and
the mapping between the labels users give (any sortable values, strings too) and class ids."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import as_array, check_rows, column_to_1d, reject_complex, require_finite, require_y

BINARY, MULTICLASS, MULTILABEL = "binary", "multiclass", "multilabel"


def label_values(y: Any, rows: int, estimator_name: str) -> np.ndarray:
    """y as a 1-D array of labels or a 2-D 0/1 indicator matrix (multilabel), checked."""
    require_y(y, estimator_name)
    array = as_array(y)
    reject_complex(array, "y")
    if array.ndim == 0 or array.ndim > 2:
        raise ValueError(f"y must be 1-D labels or a 2-D label indicator matrix; got shape {array.shape}")
    check_rows(rows, array.shape[0])
    array = column_to_1d(array)
    if array.ndim == 2:
        _check_indicator(array)
        return array
    if array.dtype.kind == "f":
        require_finite(array, "y")
        if not np.array_equal(array, np.floor(array)):
            raise _continuous()
    elif array.dtype.kind == "O":
        for value in array:
            if isinstance(value, (float, np.floating)) and not (math.isfinite(value) and float(value).is_integer()):
                raise _continuous()
    return array


def _continuous() -> ValueError:
    return ValueError("Unknown label type: continuous. A classifier needs discrete class labels; "
                      "for continuous targets use MLPRegressor.")


def _check_indicator(array: np.ndarray) -> None:
    if array.dtype.kind in "biuf":
        values = array.astype(np.float64, copy=False)
        if np.isfinite(values).all() and np.isin(values, (0.0, 1.0)).all():
            return
    raise ValueError(f"Unknown label type: a 2-D y must be a 0/1 label indicator matrix "
                     f"(multilabel classification); got dtype {array.dtype} with other values. "
                     "Multi-output multiclass targets are not supported.")


def kind_of(labels: np.ndarray, n_classes: int) -> str:
    if labels.ndim == 2:
        return MULTILABEL
    return BINARY if n_classes == 2 else MULTICLASS


def unique_labels(labels: np.ndarray) -> np.ndarray:
    """The sorted distinct labels (the column numbers of an indicator matrix)."""
    if labels.ndim == 2:
        return np.arange(labels.shape[1])
    try:
        return np.unique(labels)
    except TypeError:
        kinds = sorted({type(value).__name__ for value in labels})
        raise ValueError(f"Unknown label type: y mixes labels of types {kinds}, which cannot be "
                         "sorted; use labels of one type") from None


def require_two_classes(classes: np.ndarray, estimator_name: str) -> None:
    if len(classes) < 2:
        raise ValueError(f"{estimator_name} needs samples of at least 2 classes in the data, but "
                         f"the data contains only 1 class: {classes[0]!r}")


def class_ids(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each label's position in the sorted classes; ValueError for a label not among them."""
    try:
        ids = np.searchsorted(classes, labels)
    except TypeError:  # labels of another type than the classes: none of them is known
        raise ValueError(f"y contains labels not in classes_ {classes.tolist()}: "
                         f"{labels[:10].tolist()}") from None
    inside = ids < len(classes)
    known = np.zeros(len(labels), dtype=bool)
    known[inside] = classes[ids[inside]] == labels[inside]
    if not known.all():
        unseen = np.unique(labels[~known])
        raise ValueError(f"y contains labels not in classes_ {classes.tolist()}: {unseen.tolist()[:10]}")
    return ids.astype(np.int64)
