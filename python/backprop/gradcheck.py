"""Finite-difference check of a network's backpropagated gradient, in float64."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    from .network import Network


@dataclass
class GradcheckResult:
    """The comparison of backprop's gradient with central differences; true when it passed."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    n_checked: int
    worst: str  # where the largest error is, e.g. "layer 2 W[3, 1]"

    def __bool__(self) -> bool:
        return self.ok


def _locate(net: "Network", index: int) -> str:
    offset = 0
    for number, layer in enumerate(net.layers, start=1):
        size = layer.fan_in * layer.fan_out
        if index < offset + size:
            row, col = divmod(index - offset, layer.fan_out)
            return f"layer {number} W[{row}, {col}]"
        if index < offset + size + layer.fan_out:
            return f"layer {number} b[{index - offset - size}]"
        offset += size + layer.fan_out
    return f"params[{index}]"


def gradcheck(net: "Network", X: Any, y: Any, *, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8, max_params: Optional[int] = None, seed: int = 0,
              dropout_step: Optional[int] = None) -> GradcheckResult:
    """Compare loss_and_grad with central differences (L(p + eps) - L(p - eps)) / 2 eps.

    Runs on a float64 copy of net, so a float32 network is checked at float64 precision. Each
    entry passes when |numeric - backprop| <= atol + rtol * |numeric|. max_params checks a
    seeded random subset of the parameters (for large networks). dropout_step checks the
    training-mode gradient under the dropout masks of that step.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    if max_params is not None:
        if isinstance(max_params, bool) or not isinstance(max_params, (int, np.integer)):
            raise TypeError(f"max_params must be an int or None; got {type(max_params).__name__}")
        if max_params < 1:
            raise ValueError(f"max_params must be at least 1 (a check of nothing proves nothing); got {max_params}")
    twin = net.astype("float64")
    x, t = twin._data(X, y)
    _, analytic = twin.loss_and_grad(x, t, dropout_step=dropout_step)
    indices = np.arange(twin.n_params)
    if max_params is not None and max_params < twin.n_params:
        indices = np.sort(np.random.default_rng(seed).choice(twin.n_params, max_params, replace=False))
    params = twin.params
    numeric = np.empty(indices.size)
    for slot, index in enumerate(indices):
        original = params[index]
        params[index] = original + eps
        upper = twin.loss(x, t, dropout_step=dropout_step)
        params[index] = original - eps
        lower = twin.loss(x, t, dropout_step=dropout_step)
        params[index] = original
        numeric[slot] = (upper - lower) / (2 * eps)
    chosen = analytic[indices]
    abs_error = np.abs(numeric - chosen)
    rel_error = abs_error / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    ok = bool(np.all(abs_error <= atol + rtol * np.abs(numeric)))
    worst = int(np.argmax(abs_error - rtol * np.abs(numeric))) if indices.size else 0
    return GradcheckResult(
        ok=ok,
        max_abs_error=float(abs_error.max(initial=0.0)),
        max_rel_error=float(rel_error.max(initial=0.0)),
        n_checked=int(indices.size),
        worst=_locate(twin, int(indices[worst])) if indices.size else "",
    )
