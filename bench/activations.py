"""Time backprop's activation and softmax kernels against NumPy's, with their worst error.

For each activation, float32 and float64: the best of --repeats calls of
kernels.activation_forward and kernels.activation_backward (which recomputes f(u)) on --size
elements of 3 N(0, 1), the same written in NumPy (libm, one vectorized ufunc per step), and the
largest error of both forwards in units in the last place against the same formula in long
double (80-bit on x86-64; for gelu, math.erfc in double, which rates float32 results only).
NumPy has no erf: its gelu is math.erfc through np.vectorize, a Python call per element, so
that row says little about NumPy. softmax runs on rows of 10.

    python bench/activations.py                 # 65536 elements, 1 thread
    python bench/activations.py --threads 2 --size 1000000
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any, Callable

import numpy as np

import backprop as bp

K = bp.kernels
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(u: Any) -> Any:
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


def _gelu(u: Any) -> Any:
    return u * (0.5 * _erfc(-np.asarray(u, np.float64) / math.sqrt(2))).astype(u.dtype)


# name -> f(u) in NumPy, written for any float dtype (long double included, except gelu).
FORWARD: dict[str, Callable[[Any], Any]] = {
    "relu": lambda u: np.maximum(u, 0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": lambda u: np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u))),
    "elu": lambda u: np.where(u > 0, u, np.expm1(np.minimum(u, 0))),
    "gelu": _gelu,
}


# name -> grad * f'(u) in NumPy, from y = f(u) where that is the cheap form.
def _numpy_backward(name: str, grad: Any, u: Any) -> Any:
    y = FORWARD[name](u)
    if name == "relu":
        return grad * (u > 0)
    if name == "tanh":
        return grad * (1 - y * y)
    if name == "sigmoid":
        return grad * (y * (1 - y))
    if name == "softplus":
        return grad * _sigmoid(u)
    if name == "elu":
        return grad * np.where(u > 0, 1, y + 1)
    pdf = np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi).astype(u.dtype)
    return grad * (y / np.where(u == 0, 1, u) + u * pdf)


def best_time(call: Callable[[], Any], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def worst_ulps(got: Any, exact: Any, dtype: Any) -> float:
    rounded = exact.astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(np.longdouble)
    return float(np.max(np.abs(got.astype(np.longdouble) - exact) / spacing))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=65536, help="elements per call (default 65536)")
    parser.add_argument("--threads", type=int, default=1, help="backprop threads (default 1)")
    parser.add_argument("--repeats", type=int, default=30, help="calls timed, best kept (default 30)")
    args = parser.parse_args()
    bp.set_num_threads(args.threads)
    print(f"backprop {bp.__version__}, numpy {np.__version__}, {args.size} elements, "
          f"{args.threads} thread(s) for backprop, best of {args.repeats} calls; times in us")
    print(f"{'dtype':8s} {'kernel':9s} {'ours fwd':>9s} {'numpy fwd':>10s} {'ratio':>6s}  "
          f"{'ours bwd':>9s} {'numpy bwd':>10s} {'ratio':>6s}  {'ulps ours':>9s} {'ulps numpy':>10s}")
    with np.errstate(over="ignore", invalid="ignore"):
        for dtype in (np.float32, np.float64):
            u = (np.random.default_rng(0).standard_normal(args.size) * 3).astype(dtype)
            grad = np.random.default_rng(1).standard_normal(args.size).astype(dtype)
            for name, forward in FORWARD.items():
                ours_f = best_time(lambda: K.activation_forward(u, name), args.repeats)
                numpy_f = best_time(lambda: forward(u), args.repeats)
                ours_b = best_time(lambda: K.activation_backward(grad, u, name), args.repeats)
                numpy_b = best_time(lambda: _numpy_backward(name, grad, u), args.repeats)
                exact_dtype = np.float64 if name == "gelu" else np.longdouble
                if name == "gelu" and dtype == np.float64:
                    ulps = "-", "-"  # no reference beyond double for erfc here
                else:
                    exact = forward(u.astype(exact_dtype)).astype(np.longdouble)
                    ulps = (f"{worst_ulps(K.activation_forward(u, name), exact, dtype):.2f}",
                            f"{worst_ulps(forward(u), exact, dtype):.2f}")
                print(f"{np.dtype(dtype).name:8s} {name:9s} {ours_f * 1e6:9.0f} {numpy_f * 1e6:10.0f} "
                      f"{numpy_f / ours_f:5.1f}x  {ours_b * 1e6:9.0f} {numpy_b * 1e6:10.0f} "
                      f"{numpy_b / ours_b:5.1f}x  {ulps[0]:>9s} {ulps[1]:>10s}")
            rows = u[: args.size // 10 * 10].reshape(-1, 10)

            def numpy_softmax() -> Any:
                e = np.exp(rows - rows.max(axis=1, keepdims=True))
                return e / e.sum(axis=1, keepdims=True)

            ours_s = best_time(lambda: K.softmax(rows), args.repeats)
            numpy_s = best_time(numpy_softmax, args.repeats)
            print(f"{np.dtype(dtype).name:8s} {'softmax':9s} {ours_s * 1e6:9.0f} {numpy_s * 1e6:10.0f} "
                  f"{numpy_s / ours_s:5.1f}x  (rows of 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
