"""Dense: one fully connected layer, U = X @ W + b, X_next = f(U)."""

from __future__ import annotations

import operator
from typing import Optional, Sequence

import numpy as np

from ._names import activation_alpha, check_output


class Dense:
    """A fully connected layer from fan_in to fan_out units.

    W (fan_in x fan_out) and b (fan_out) are views into the owning network's flat parameter
    buffer once the layer belongs to a Network; writing into them changes the network.

    inputs: what the layer reads, concatenated in this order: 0 is the network's input and
    j >= 1 the output of layer j (1-based, an earlier layer), so a layer may skip layers
    (shortcut connections). By default, the previous layer. fan_in must equal the total width.
    dropout: for hidden layers, the chance each output is zeroed during training (inverted
    dropout: the rest are scaled by 1 / (1 - dropout)); never applied by forward or predict.
    """

    def __init__(self, fan_in: int, fan_out: int, activation: Optional[str] = None, *,
                 alpha: Optional[float] = None, inputs: Optional[Sequence[int]] = None,
                 dropout: float = 0.0) -> None:
        self.fan_in = _positive_int(fan_in, "fan_in")
        self.fan_out = _positive_int(fan_out, "fan_out")
        self.inputs = None if inputs is None else [_source(item) for item in inputs]
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs must name at least one source (0 is the network's input)")
        self.dropout = _dropout(dropout)
        self.activation = None if activation is None else check_output(activation, "activation")
        self.alpha = None if alpha is None else float(alpha)
        self.W: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None

    def resolved_alpha(self) -> float:
        if self.activation is None or self.activation == "softmax":
            return 0.0
        return activation_alpha(self.activation, self.alpha)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.alpha is not None else ""
        extra += f", inputs={self.inputs}" if self.inputs is not None else ""
        extra += f", dropout={self.dropout}" if self.dropout else ""
        return f"Dense({self.fan_in}, {self.fan_out}, activation={self.activation!r}{extra})"


def _positive_int(value: object, name: str) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int; got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1; got {number}")
    return number


def _source(value: object) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"inputs must hold int layer numbers; got {type(value).__name__}") from None
    if number < 0:
        raise ValueError(f"inputs must hold 0 (the network's input) or earlier layer numbers; got {number}")
    return number


def _dropout(value: object) -> float:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"dropout must be a number in [0, 1); got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {value!r}")
    return rate
