"""Argument checks shared by the dataset functions; each error names the argument it is about."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float_dtype(dtype: Any) -> np.dtype:
    """Return ``dtype`` as a NumPy float32 or float64 dtype, or raise naming ``dtype``."""
    expected = "dtype must be 'float32' or 'float64'"
    if dtype is None:
        # np.dtype(None) silently means float64; ask for it explicitly instead.
        raise TypeError(f"{expected}; got None")
    try:
        resolved: np.dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{expected}; got {dtype!r}, which is not a NumPy dtype") from None
    if resolved not in _FLOAT_DTYPES:
        raise ValueError(f"{expected}; got {resolved}")
    return resolved


def check_int(value: object, name: str, low: int, high: Optional[int] = None) -> int:
    """Return ``value`` as a Python int in ``low..high`` (``high`` None: no upper bound)."""
    limits = f"in {low}..{high}" if high is not None else f">= {low}"
    expected = f"{name} must be an int {limits}"
    # bool is an int subclass, but parity(True) is almost surely a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected}; got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{expected}; got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (Python or NumPy), else raise naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}")
    return bool(value)


def check_seed(seed: object, name: str = "seed") -> Optional[int]:
    """Return ``seed`` if it is None or an int >= 0 (seeds numpy.random.default_rng accepts)."""
    if seed is None:
        return None
    return check_int(seed, name, 0)


def check_nonnegative_real(value: object, name: str) -> float:
    """Return ``value`` as a finite float >= 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0; got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return value
