"""Dense: one fully connected layer, U = X @ W + b, X_next = f(U)."""

from __future__ import annotations

import operator
from typing import Optional

import numpy as np

from ._names import activation_alpha, check_output


class Dense:
    """A fully connected layer from fan_in to fan_out units.

    W (fan_in x fan_out) and b (fan_out) are views into the owning network's flat parameter
    buffer once the layer belongs to a Network; writing into them changes the network.
    """

    def __init__(self, fan_in: int, fan_out: int, activation: Optional[str] = None, *,
                 alpha: Optional[float] = None) -> None:
        self.fan_in = _positive_int(fan_in, "fan_in")
        self.fan_out = _positive_int(fan_out, "fan_out")
        self.activation = None if activation is None else check_output(activation)
        self.alpha = None if alpha is None else float(alpha)
        self.W: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None

    def resolved_alpha(self) -> float:
        if self.activation in (None, "softmax"):
            return 0.0
        return activation_alpha(self.activation, self.alpha)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.alpha is not None else ""
        return f"Dense({self.fan_in}, {self.fan_out}, activation={self.activation!r}{extra})"


def _positive_int(value: object, name: str) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int; got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1; got {number}")
    return number
