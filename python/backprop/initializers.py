"""Weight initialisation schemes: each draws a layer's W uniformly at the scheme's scale."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._names import check_init

RELU_FAMILY = frozenset({"relu", "leaky_relu", "elu", "gelu"})


def default_init(hidden_activations: list[str]) -> str:
    """He for networks of ReLU-like units, Glorot otherwise (what Keras and PyTorch users expect)."""
    if hidden_activations and all(a in RELU_FAMILY for a in hidden_activations):
        return "he"
    return "glorot"


def init_limit(init: str, fan_in: int, fan_out: int, init_scale: Optional[float]) -> float:
    """The r of U(-r, r): Glorot sqrt(6/(in+out)), He sqrt(6/in), LeCun sqrt(3/in), or init_scale."""
    check_init(init)
    if init == "uniform":
        if init_scale is None:
            raise ValueError("init 'uniform' needs init_scale=r, drawing weights from U(-r, r)")
        if isinstance(init_scale, (str, bytes, bool)) or not isinstance(init_scale, (int, float, np.floating, np.integer)):
            raise TypeError(f"init_scale must be a number; got {type(init_scale).__name__}")
        scale = float(init_scale)
        if not math.isfinite(scale) or scale < 0:
            raise ValueError(f"init_scale must be a finite number >= 0; got {init_scale!r}")
        return scale
    if init_scale is not None:
        raise ValueError(f"init_scale is only used with init 'uniform'; got init {init!r}")
    if init == "glorot":
        return math.sqrt(6.0 / (fan_in + fan_out))
    if init == "he":
        return math.sqrt(6.0 / fan_in)
    return math.sqrt(3.0 / fan_in)


def initialize(weights: np.ndarray, biases: np.ndarray, limit: float,
               rng: np.random.Generator) -> None:
    """W ~ U(-limit, limit) drawn in float64 (the same numbers for both dtypes), b = 0."""
    weights[...] = rng.uniform(-limit, limit, size=weights.shape)
    biases[...] = 0
