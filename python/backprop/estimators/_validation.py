"""Checks of the arrays given to the estimators (shape, dtype, NaN and infinity, sparse input,
feature names, sample weights), with the messages scikit-learn users know."""

from __future__ import annotations

import sys
import warnings
from typing import Any, Optional

import numpy as np

from ._compat import DataConversionWarning


def is_sparse(value: Any) -> bool:
    """Whether value is a SciPy sparse matrix or array (without importing SciPy: if it is not
    imported, nothing can be one)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and bool(sparse.issparse(value))


def as_array(value: Any) -> np.ndarray:
    """An ndarray of value: sparse input is densified (the core computes on dense arrays)."""
    return np.asarray(value.toarray() if is_sparse(value) else value)


def reject_complex(array: np.ndarray, name: str) -> None:
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}")


def feature_names(X: Any) -> Optional[np.ndarray]:
    """The column names of a data frame when they are all strings; None for arrays and for
    frames with non-string names. Mixed string and non-string names are an error."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or is_sparse(X):
        return None
    names = np.asarray(list(columns), dtype=object)
    is_text = [isinstance(name, str) for name in names]
    if names.size and all(is_text):
        return names
    if any(is_text):
        kinds = sorted({type(name).__name__ for name in names})
        raise TypeError(f"Feature names are only supported if all input features have string "
                        f"names, but your input has {kinds} as feature name / column name "
                        f"types. Convert them all to strings (X.columns = X.columns.astype(str)) "
                        f"or all to non-strings.")
    return None


def check_feature_names(estimator: Any, X: Any) -> None:
    """Warn or raise when X's column names do not match those seen in fit."""
    fitted = getattr(estimator, "feature_names_in_", None)
    given = feature_names(X)
    name = type(estimator).__name__
    if fitted is None and given is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {name} was fitted without feature names",
                      UserWarning, stacklevel=4)
        return
    if given is None:
        warnings.warn(f"X does not have valid feature names, but {name} was fitted with "
                      f"feature names", UserWarning, stacklevel=4)
        return
    if len(fitted) == len(given) and np.array_equal(fitted, given):
        return
    unexpected = [str(n) for n in given if n not in set(fitted)]
    missing = [str(n) for n in fitted if n not in set(given)]
    details = []
    if unexpected:
        details.append(f"Feature names unseen at fit time: {unexpected[:10]}")
    if missing:
        details.append(f"Feature names seen at fit time, yet now missing: {missing[:10]}")
    if not details:
        details.append("Feature names must be in the same order as they were in fit.")
    raise ValueError("The feature names should match those that were passed during fit.\n"
                     + "\n".join(details))


def as_float_matrix(X: Any, dtype: np.dtype, estimator_name: str, name: str = "X") -> np.ndarray:
    """X as a C-contiguous finite (samples, features) array of `dtype` with at least one row
    and one column."""
    if X is None:
        raise ValueError(f"Expected 2D array, got None instead for {name}")
    array = as_array(X)
    reject_complex(array, name)
    if array.dtype.kind in "US":
        raise ValueError(f"{name} holds strings (dtype {array.dtype}); {estimator_name} needs "
                         f"numbers: encode the features numerically first")
    if array.dtype.kind in "mM":
        raise TypeError(f"{name} holds dates or times (dtype {array.dtype}); convert them to numbers")
    if array.dtype.kind == "O":
        array = array.astype(np.float64)  # a non-numeric entry raises here, naming its type
    if array.ndim < 2:
        what = "scalar" if array.ndim == 0 else "1D"
        raise ValueError(f"Expected 2D array, got {what} array instead:\narray={array!r}.\n"
                         "Reshape your data either using array.reshape(-1, 1) if your data has "
                         "a single feature or array.reshape(1, -1) if it contains a single sample.")
    if array.ndim > 2:
        raise ValueError(f"Found array with dim {array.ndim}. {estimator_name} expected <= 2.")
    rows, columns = array.shape
    if rows == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={array.shape}) while a minimum "
                         f"of 1 is required by {estimator_name}.")
    if columns == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={array.shape}) while a minimum "
                         f"of 1 is required by {estimator_name}.")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow in the cast is reported below
        matrix = np.ascontiguousarray(array, dtype=dtype)
    require_finite(matrix, name)
    return matrix


def require_finite(array: np.ndarray, name: str) -> None:
    if np.isfinite(array).all():
        return
    if np.isnan(array).any():
        raise ValueError(f"Input {name} contains NaN.")
    raise ValueError(f"Input {name} contains infinity or a value too large for "
                     f"dtype({str(array.dtype)!r}).")


def check_rows(n_x: int, n_y: int) -> None:
    if n_x != n_y:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n_x}, {n_y}]")


def require_y(y: Any, estimator_name: str) -> None:
    if y is None:
        raise ValueError(f"{estimator_name} requires y to be passed, but the target y is None.")


def column_to_1d(array: np.ndarray) -> np.ndarray:
    """A (n, 1) target as (n,), with scikit-learn's DataConversionWarning."""
    if array.ndim == 2 and array.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change "
                      "the shape of y to (n_samples,), for example using ravel().",
                      DataConversionWarning, stacklevel=5)
        return array.ravel()
    return array


def as_sample_weight(sample_weight: Any, rows: int) -> Optional[np.ndarray]:
    """A fresh float64 (rows,) array of finite weights >= 0, not all zero; None stays None."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight)
    reject_complex(weights, "sample_weight")
    if weights.dtype.kind not in "biuf":
        weights = weights.astype(np.float64)
    weights = np.array(weights, dtype=np.float64)  # a copy: the caller's array is never changed
    if weights.ndim == 0:
        weights = np.full(rows, float(weights))
    if weights.shape != (rows,):
        raise ValueError(f"sample_weight.shape == {weights.shape}, expected ({rows},)!")
    require_finite(weights, "sample_weight")
    if (weights < 0).any():
        raise ValueError("Negative values in data passed to sample_weight")
    if not weights.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weights
