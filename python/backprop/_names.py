"""Names of activations, outputs, losses and reductions, checked against the native tables."""

from __future__ import annotations

from . import _core

ACTIVATIONS: tuple[str, ...] = tuple(sorted(_core.ACTIVATIONS, key=_core.ACTIVATIONS.__getitem__))
OUTPUTS: tuple[str, ...] = ("softmax",) + ACTIVATIONS
LOSSES: tuple[str, ...] = tuple(sorted(_core.LOSSES, key=_core.LOSSES.__getitem__))
REDUCTIONS: tuple[str, ...] = ("mean", "sum")
INITS: tuple[str, ...] = ("glorot", "he", "lecun", "uniform")

# The output each loss is defined with when the caller names none.
DEFAULT_OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}


def _choose(value: object, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def activation_code(name: object, what: str = "activation") -> int:
    """The native code of an activation name; ValueError naming `what` for an unknown one."""
    return int(_core.ACTIVATIONS[_choose(name, ACTIVATIONS, what)])


def activation_alpha(name: str, alpha: float | None, what: str = "alpha") -> float:
    """alpha as given, or the activation's default (leaky_relu 0.01, elu 1.0, others unused)."""
    if alpha is None:
        return float(_core.ACTIVATION_DEFAULT_ALPHA[name])
    value = float(alpha)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be a finite number; got {alpha!r}")
    return value


def check_output(name: object, what: str = "output") -> str:
    return _choose(name, OUTPUTS, what)


def loss_code(name: object) -> int:
    return int(_core.LOSSES[_choose(name, LOSSES, "loss")])


def reduction_code(name: object) -> int:
    return int(_core.REDUCTIONS[_choose(name, REDUCTIONS, "reduction")])


def check_init(name: object) -> str:
    return _choose(name, INITS, "init")


def check_loss_output(loss: str, output: str) -> None:
    """The cross-entropies are defined only with their own output transform."""
    needed = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss)
    if needed is not None and output != needed:
        raise ValueError(f"loss {loss!r} needs output {needed!r}; got output {output!r}")
