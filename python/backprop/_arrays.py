"""Conversion and checks of user arrays before they reach the native core."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype: Any, what: str = "dtype") -> np.dtype:
    """float32 or float64 from a name or dtype; TypeError naming `what` otherwise."""
    try:
        resolved: np.dtype = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{what} must be 'float32' or 'float64'; got {dtype!r}") from error
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{what} must be 'float32' or 'float64'; got {resolved}")
    return resolved


def as_real_array(value: Any, name: str) -> np.ndarray:
    """value as an ndarray of booleans, integers or floats; TypeError for anything else."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
    return array


def result_float_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 when every float input is float32 and nothing needs more, else float64."""
    dtype = np.result_type(*arrays)
    return np.dtype(np.float32) if dtype in (np.float16, np.float32) else np.dtype(np.float64)


def empty_on_cache_lines(shape: Any, dtype: Any) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary.

    NumPy's own large blocks start 16 bytes past one, and a GEMM writing into such a buffer
    splits every other vector store over two cache lines. The array is a view into a slightly
    larger block that it keeps alive.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    block = np.empty(count + 64 // dtype.itemsize, dtype)
    skip = (-block.ctypes.data % 64) // dtype.itemsize
    return block[skip:skip + count].reshape(shape)


def zeros_on_cache_lines(shape: Any, dtype: Any) -> np.ndarray:
    """empty_on_cache_lines, filled with zeros."""
    array = empty_on_cache_lines(shape, dtype)
    array.fill(0)
    return array


def as_input(value: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of `dtype` to read from (a copy when needed)."""
    return np.asarray(as_real_array(value, name), dtype=dtype, order="C")


def require_finite(array: np.ndarray, name: str) -> None:
    """ValueError naming `name` when the array holds NaN or Inf (integers always pass)."""
    if array.dtype.kind != "f":
        return
    if array.dtype in FLOAT_DTYPES and array.flags.c_contiguous:
        finite = bool(_core.all_finite(array))  # one vectorized pass, no temporary
    else:
        finite = bool(np.isfinite(array).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or Inf")


def as_samples(value: Any, name: str, n_features: int, dtype: np.dtype) -> np.ndarray:
    """A 2-D (samples, n_features) finite float array with at least one row."""
    array = as_real_array(value, name)
    if array.ndim != 2:
        hint = "; use reshape(1, -1) for one sample" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples, features); got shape {array.shape}{hint}")
    if array.shape[1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} columns (the network's inputs); got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row; got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=dtype)
    require_finite(array, name)
    return array


def as_sample_weight(value: Any, rows: int, dtype: np.dtype) -> np.ndarray:
    """A fresh (rows,) array of finite, non-negative weights in `dtype`."""
    weights = as_real_array(value, "sample_weight")
    if weights.shape != (rows,):
        raise ValueError(f"sample_weight must have shape ({rows},), one weight per sample; got {weights.shape}")
    weights = np.array(weights, dtype=dtype, order="C", copy=True)
    require_finite(weights, "sample_weight")
    if (weights < 0).any():
        raise ValueError("sample_weight must be >= 0")
    return weights
