"""Lang & Witbrock's two interleaved spirals, a classic hard case for a small network."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._checks import check_float_dtype, check_int, check_nonnegative_real, check_seed

# The classic set (Lang & Witbrock, 1988) has 97 points per spiral, indices i = 0..96 with
# angle i*pi/16 (three turns) and radius 6.5*(104 - i)/104 (from 6.5 down to 0.5).
_CLASSIC_LAST_INDEX = 96
_CLASSIC_RADIUS = 6.5
_CLASSIC_RADIUS_DENOMINATOR = 104


def two_spirals(n_per_spiral: int = 97, *, noise: float = 0.0, seed: Optional[int] = 0,
                dtype: Any = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: X (2n, 2), y (2n, 1) with 0 for the first spiral, 1 for the second.

    The first n rows are the first spiral, point i at (r sin(a), r cos(a)); the next n rows are
    the second spiral, the first one rotated by 180 degrees (negated). With n=97 (default) these
    are exactly Lang & Witbrock's points: a = i*pi/16, r = 6.5*(104 - i)/104. Other n spread
    their points over the same three turns, radius from 6.5 down to 0.5.

    noise >= 0 is the standard deviation of Gaussian noise added to X, drawn from
    ``numpy.random.default_rng(seed)``.
    """
    n = check_int(n_per_spiral, "n_per_spiral", 1)
    noise = check_nonnegative_real(noise, "noise")
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)

    # u is the position along the classic index range 0..96; for n=97 the step is exactly 1.0,
    # so the default reproduces the classic coordinates bit for bit.
    step = _CLASSIC_LAST_INDEX / (n - 1) if n > 1 else 0.0
    u = np.arange(n, dtype=np.float64) * step
    angle = u * (np.pi / 16)
    radius = _CLASSIC_RADIUS * (_CLASSIC_RADIUS_DENOMINATOR - u) / _CLASSIC_RADIUS_DENOMINATOR
    first = np.column_stack((radius * np.sin(angle), radius * np.cos(angle)))
    X = np.concatenate((first, -first))
    if noise > 0:
        X += np.random.default_rng(seed).normal(0.0, noise, size=X.shape)
    y = np.concatenate((np.zeros(n), np.ones(n))).reshape(-1, 1)
    return np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(y, dtype=dtype)
