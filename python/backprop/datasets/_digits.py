"""The built-in handwritten digits, read from the gzip CSV shipped inside the package."""

import functools
import gzip
import io
from importlib import resources
from typing import Any

import numpy as np

from ._checks import check_bool, check_float_dtype

_N_SAMPLES = 1797
_N_PIXELS = 64
_MAX_PIXEL = 16


@functools.lru_cache(maxsize=1)
def _read_digits_table() -> np.ndarray:
    """Parse the CSV once; the result is read-only so the cache cannot be altered by a caller."""
    # importlib.resources works from a source tree, an installed wheel or a zip alike; one
    # joinpath argument at a time, as Python < 3.11 allows no more.
    data_file = resources.files(__package__).joinpath("data").joinpath("digits.csv.gz")
    text = gzip.decompress(data_file.read_bytes()).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (_N_SAMPLES, _N_PIXELS + 1):
        raise RuntimeError(
            f"digits.csv.gz is damaged: expected {_N_SAMPLES} rows of {_N_PIXELS + 1} columns, "
            f"got shape {table.shape}")
    pixels, labels = table[:, :_N_PIXELS], table[:, _N_PIXELS]
    if pixels.min() < 0 or pixels.max() > _MAX_PIXEL or labels.min() < 0 or labels.max() > 9:
        raise RuntimeError("digits.csv.gz is damaged: pixel or label values out of range")
    table.setflags(write=False)
    return table


def load_digits(*, scale: bool = True, dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Load the 1,797 handwritten digits as 8x8 images flattened to 64 features.

    Optical recognition of handwritten digits (E. Alpaydin, C. Kaynak, 1998), the test part of
    the UCI Machine Learning Repository set 'Optical Recognition of Handwritten Digits',
    licence CC BY 4.0.

    Parameters
    ----------
    scale : bool
        True (default): pixel counts are divided by 16, so X lies in [0, 1].
        False: X holds the raw integer counts 0..16 (as floats).
    dtype : "float32" or "float64"
        The dtype of X.

    Returns
    -------
    X : ndarray of shape (1797, 64), the images row by row.
    y : int64 ndarray of shape (1797,), the digits 0..9.
    """
    scale = check_bool(scale, "scale")
    dtype = check_float_dtype(dtype)
    table = _read_digits_table()
    X = table[:, :_N_PIXELS].astype(dtype, order="C")
    if scale:
        X /= _MAX_PIXEL  # exact in both float types: 16 is a power of two
    y = table[:, _N_PIXELS].copy()  # a fresh, writable, contiguous int64 array
    return X, y
