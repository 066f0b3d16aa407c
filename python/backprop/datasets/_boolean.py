"""Binary-pattern tasks of Rumelhart, Hinton & Williams (1986): XOR, parity, symmetry, encoder."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_float_dtype, check_int

# 2**20 rows of 20 float64 columns is 160 MiB; beyond that a table of every pattern stops
# being useful.
_MAX_BITS = 20


def _all_binary_vectors(n: int, dtype: np.dtype) -> np.ndarray:
    """Every n-bit vector as a row, in counting order with the most significant bit first."""
    counts = np.arange(2 ** n, dtype=np.int64)
    X = np.empty((2 ** n, n), dtype=dtype)
    for column in range(n):
        X[:, column] = (counts >> (n - 1 - column)) & 1
    return X


def xor(dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: X (4, 2) of all 0/1 input pairs, y (4, 1) = x0 XOR x1."""
    dtype = check_float_dtype(dtype)
    X = _all_binary_vectors(2, dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return X, y


def parity(n: int, dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The n-bit parity problem: all 2**n binary rows, y (2**n, 1) = 1 for an odd count of ones.

    Rows are in counting order, most significant bit first. n is an int in 1..20.
    """
    n = check_int(n, "n", 1, _MAX_BITS)
    dtype = check_float_dtype(dtype)
    X = _all_binary_vectors(n, dtype)
    ones = np.arange(2 ** n, dtype=np.int64)
    odd = np.zeros(2 ** n, dtype=np.int64)
    while ones.any():  # fold the bits together with XOR; exact, unlike summing floats
        odd ^= ones & 1
        ones >>= 1
    y = odd.astype(dtype).reshape(-1, 1)
    return X, y


def symmetry(n: int, dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The mirror-symmetry problem: all 2**n binary rows, y (2**n, 1) = 1 for palindromic rows.

    A row is symmetric when it equals itself reversed about its centre; n=6 gives 64 patterns,
    8 of them symmetric. Rows are in counting order, most significant bit first. n is an int
    in 1..20.
    """
    n = check_int(n, "n", 1, _MAX_BITS)
    dtype = check_float_dtype(dtype)
    X = _all_binary_vectors(n, dtype)
    y = np.all(X == X[:, ::-1], axis=1).astype(dtype).reshape(-1, 1)
    return X, y


def encoder(n: int, dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The n-log2(n)-n encoder problem: X the n x n identity (one-hot patterns), Y a copy of X.

    n is an int >= 1.
    """
    n = check_int(n, "n", 1)
    dtype = check_float_dtype(dtype)
    X = np.eye(n, dtype=dtype)
    return X, X.copy()
