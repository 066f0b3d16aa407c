"""NumPy-compatible entry points to the native kernels.

Inputs may be any real arrays (they are converted, with a copy when needed); the result dtype is
`out`'s when given, else float32 when every float input is float32 and float64 otherwise. An
`out` must be a C-contiguous, writable array of that exact dtype and shape that shares no memory
with the inputs: anything else raises instead of silently writing into a copy.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core
from ._arrays import (as_input, as_real_array, empty_on_cache_lines, float_dtype, require_finite,
                      result_float_dtype)
from ._names import (
    DEFAULT_OUTPUT,
    activation_alpha,
    activation_code,
    check_loss_output,
    check_output,
    loss_code,
    reduction_code,
)

__all__ = [
    "gemm",
    "gemm_ref",
    "activation_forward",
    "activation_backward",
    "dense_forward",
    "hidden_delta",
    "softmax",
    "softmax_backward",
    "loss",
    "loss_grad",
    "bias_grad",
    "sgd_update",
    "gemm_isa",
    "available_isas",
    "set_gemm_isa",
]


def _resolve(out: Optional[np.ndarray], named: dict[str, Any]) -> tuple[np.dtype, list[np.ndarray]]:
    """The call's dtype and its inputs converted to it."""
    arrays = [as_real_array(value, name) for name, value in named.items()]
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray; got {type(out).__name__}")
        dtype = float_dtype(out.dtype, "out's dtype")
    else:
        dtype = result_float_dtype(*arrays)
    # asarray keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    return dtype, [np.asarray(a, dtype=dtype, order="C") for a in arrays]


def _matrices(named: dict[str, np.ndarray]) -> None:
    """ValueError naming the first array that is not 2-D."""
    for name, value in named.items():
        if value.ndim != 2:
            raise ValueError(f"{name} must be 2-D; got shape {value.shape}")


def _gemm(reference: bool, A: Any, B: Any, trans_a: bool, trans_b: bool, alpha: float,
          beta: float, out: Optional[np.ndarray]) -> np.ndarray:
    dtype, (a, b) = _resolve(out, {"A": A, "B": B})
    _matrices({"A": a, "B": b})
    if out is None:
        if beta != 0:
            raise ValueError("beta != 0 adds to out's contents, so out must be given")
        rows = a.shape[1] if trans_a else a.shape[0]
        cols = b.shape[0] if trans_b else b.shape[1]
        out = empty_on_cache_lines((rows, cols), dtype)
    kernel = _core.gemm_ref if reference else _core.gemm
    kernel(a, b, out, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    return out


def gemm(A: Any, B: Any, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
         beta: float = 0.0, out: Optional[np.ndarray] = None) -> np.ndarray:
    """out = alpha * op(A) @ op(B) + beta * out, op transposing when asked (BLAS semantics).

    With beta == 0 the previous contents of out are never read.
    """
    ready = _core.gemm_ready(A, B, out, trans_a, trans_b, alpha, beta)
    if ready is not None:
        return ready
    return _gemm(False, A, B, trans_a, trans_b, alpha, beta, out)


def gemm_ref(A: Any, B: Any, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
             beta: float = 0.0, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The plain triple-loop twin of gemm (the reference in tests and benchmarks)."""
    return _gemm(True, A, B, trans_a, trans_b, alpha, beta, out)


def _new_like(out: Optional[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return empty_on_cache_lines(shape, dtype) if out is None else out


def activation_forward(u: Any, activation: str, *, alpha: Optional[float] = None,
                       out: Optional[np.ndarray] = None) -> np.ndarray:
    """f(u) elementwise. alpha: leaky_relu's negative slope (0.01), elu's alpha (1.0)."""
    code = activation_code(activation)
    dtype, (x,) = _resolve(out, {"u": u})
    out = _new_like(out, x.shape, dtype)
    _core.activation_forward(x, out, code, activation_alpha(activation, alpha))
    return out


def activation_backward(grad: Any, u: Any, activation: str, *, alpha: Optional[float] = None,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """grad * f'(u) elementwise: the gradient with respect to u given the one of f(u)."""
    code = activation_code(activation)
    dtype, (g, x) = _resolve(out, {"grad": grad, "u": u})
    out = _new_like(out, x.shape, dtype)
    _core.activation_backward(g, x, out, code, activation_alpha(activation, alpha))
    return out


DENSE_SPLITS = ("slabs", "k_blocks")


def dense_forward(X: Any, W: Any, b: Any = None, activation: str = "identity", *,
                  alpha: Optional[float] = None,
                  split: str = "slabs") -> tuple[np.ndarray, np.ndarray]:
    """A dense layer in one pass: returns (U, Y) with U = X @ W + b and Y = f(U).

    The bias add and the activation run in the GEMM's write-back, on each tile of U while it is
    in cache: the same bits as gemm, a bias add and activation_forward one after the other.
    b may be None (no bias); alpha as for activation_forward.

    split: how several threads share the product. "slabs": each computes rows or columns of U.
    "k_blocks": each multiplies its own rows of W, from one of the GEMM's k blocks (256 deep at
    most) to another, and the blocks' products are added into U in order. It is taken only
    with as many blocks as threads and when the other threads' block products (one X.shape[0]
    x W.shape[1] buffer each, kept by the calling thread for later calls) hold at most a
    third of W's values; else the product splits by slabs. The bytes are the same either way,
    NaN included.
    """
    if split not in DENSE_SPLITS:
        raise ValueError(f"split must be one of {DENSE_SPLITS}; got {split!r}")
    code = activation_code(activation)
    named = {"X": X, "W": W} if b is None else {"X": X, "W": W, "b": b}
    dtype, arrays = _resolve(None, named)
    _matrices({"X": arrays[0], "W": arrays[1]})
    bias = None if b is None else arrays[2]
    if bias is not None and bias.ndim != 1:
        raise ValueError(f"b must be 1-D; got shape {bias.shape}")
    shape = (arrays[0].shape[0], arrays[1].shape[1])
    u, y = empty_on_cache_lines(shape, dtype), empty_on_cache_lines(shape, dtype)
    _core.dense_forward(arrays[0], arrays[1], bias, u, y, code,
                        activation_alpha(activation, alpha), split == "k_blocks")
    return u, y


def hidden_delta(delta: Any, W: Any, u: Any, activation: str, *,
                 alpha: Optional[float] = None) -> np.ndarray:
    """(delta @ W.T) * f'(u): the error of a hidden layer from the one of the layer after it.

    delta (m x fan_out) is dLoss/dU of the next layer, W (fan_in x fan_out) its weights and u
    (m x fan_in) this layer's pre-activation. The derivative runs in the GEMM's write-back: the
    same bits as gemm(delta, W, trans_b=True) followed by activation_backward.
    """
    code = activation_code(activation)
    dtype, (d, w, pre) = _resolve(None, {"delta": delta, "W": W, "u": u})
    _matrices({"delta": d, "W": w, "u": pre})
    out = empty_on_cache_lines((d.shape[0], w.shape[0]), dtype)
    _core.hidden_delta(d, w, pre, out, code, activation_alpha(activation, alpha))
    return out


def softmax(u: Any, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Row-wise softmax of a 2-D array."""
    dtype, (x,) = _resolve(out, {"u": u})
    out = _new_like(out, x.shape, dtype)
    _core.softmax_forward(x, out)
    return out


def softmax_backward(grad: Any, p: Any, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """p * (grad - rowsum(grad * p)): the gradient with respect to the softmax input."""
    dtype, (g, probs) = _resolve(out, {"grad": grad, "p": p})
    out = _new_like(out, probs.shape, dtype)
    _core.softmax_backward(g, probs, out)
    return out


def _loss_args(u: np.ndarray, y: np.ndarray, loss: str, output: Optional[str],
               reduction: str, alpha: Optional[float]) -> tuple[int, int, bool, int, float]:
    loss_id = loss_code(loss)
    output = DEFAULT_OUTPUT[loss] if output is None else check_output(output)
    check_loss_output(loss, output)
    softmax_output = output == "softmax"
    kind = 0 if softmax_output else activation_code(output, "output")
    out_alpha = 0.0 if softmax_output else activation_alpha(output, alpha)
    require_finite(u, "u")
    require_finite(y, "y")
    if u.ndim == 2 and u.shape[0] == 0:
        raise ValueError("u must have at least one row")
    return loss_id, reduction_code(reduction), softmax_output, kind, out_alpha


def loss(u: Any, y: Any, loss: str, *, output: Optional[str] = None, reduction: str = "mean",
         alpha: Optional[float] = None) -> float:
    """The batch loss of output pre-activations u (m x n) against dense targets y (m x n).

    output defaults to the loss's own (softmax for cross_entropy, sigmoid for
    binary_cross_entropy, identity for mse).
    """
    _, (x, t) = _resolve(None, {"u": u, "y": y})
    args = _loss_args(x, t, loss, output, reduction, alpha)
    return float(_core.loss_forward(*args, x, t))


def loss_grad(u: Any, y: Any, loss: str, *, output: Optional[str] = None,
              reduction: str = "mean", alpha: Optional[float] = None,
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """dLoss/du for output pre-activations u (m x n) and dense targets y (m x n)."""
    dtype, (x, t) = _resolve(out, {"u": u, "y": y})
    args = _loss_args(x, t, loss, output, reduction, alpha)
    out = _new_like(out, x.shape, dtype)
    _core.loss_backward(*args, x, t, out)
    return out


def bias_grad(grad: Any, *, out: Optional[np.ndarray] = None, accumulate: bool = False) -> np.ndarray:
    """Column sums of a 2-D grad (the bias gradient); added into out when accumulate is True."""
    fresh = out is None
    dtype, (g,) = _resolve(out, {"grad": grad})
    if g.ndim != 2:
        raise ValueError(f"grad must be 2-D; got shape {g.shape}")
    out = _new_like(out, (g.shape[1],), dtype)
    _core.bias_grad(g, out, bool(accumulate) and not fresh)
    return out


def sgd_update(params: np.ndarray, grads: Any, velocity: Optional[np.ndarray] = None, *,
               lr: float, momentum: float = 0.0, nesterov: bool = False,
               weight_decay: float = 0.0) -> np.ndarray:
    """One SGD step in place on params (and velocity), as torch.optim.SGD with dampening 0.

    All or nothing: an update that would make a value NaN or Inf raises FloatingPointError
    and changes nothing.
    """
    if not isinstance(params, np.ndarray):
        raise TypeError(f"params must be a numpy.ndarray; got {type(params).__name__}")
    if velocity is not None and not isinstance(velocity, np.ndarray):
        raise TypeError(f"velocity must be a numpy.ndarray (it is updated in place); got {type(velocity).__name__}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov needs momentum > 0")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    dtype = float_dtype(params.dtype, "params' dtype")
    g = as_input(grads, "grads", dtype)
    _core.sgd_update(params, g, velocity, float(lr), float(momentum), bool(nesterov),
                     float(weight_decay))
    return params


def gemm_isa() -> str:
    """The instruction-set path the GEMM micro-kernel runs: 'avx512', 'avx2' or 'generic'."""
    return str(_core.gemm_isa())


def available_isas() -> list[str]:
    """The GEMM paths this CPU can run."""
    return list(_core.available_isas())


def set_gemm_isa(name: str) -> None:
    """Pin the GEMM to one path ('generic', 'avx2', 'avx512'), or 'auto' for the best this CPU runs."""
    _core.set_gemm_isa(name)
