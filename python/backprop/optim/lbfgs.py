"""L-BFGS: limited-memory quasi-Newton steps on the full batch, with a strong Wolfe line search.

Each epoch runs up to max_iter iterations (Nocedal & Wright, Numerical Optimization, 2nd ed.):
the direction comes from the two-loop recursion (Alg. 7.4) over the last history_size
curvature pairs, the initial Hessian scaled by gamma = s^T y / y^T y (eq. 7.20), and the step
length from a bracketing-and-zoom line search that meets the strong Wolfe conditions (Alg. 3.5
and 3.6, cubic or quadratic interpolation). The directions and the search run in float64
whatever the network's dtype; the curvature pairs are kept from one epoch to the next.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .first_order import Optimizer, _number

if TYPE_CHECKING:
    from ..network import Network

# A curvature pair with y^T s at or below this is dropped: it would make the inverse Hessian
# approximation indefinite or badly scaled (Nocedal & Wright, Sec. 7.2).
_MIN_CURVATURE = 1e-10
# Function evaluations one line search may spend before it settles for less (as torch.optim.LBFGS).
_MAX_LINE_SEARCH_EVALUATIONS = 25
# Interpolated trial steps stay this share of the bracket away from its ends, so each zoom
# iteration shrinks the bracket by at least that share.
_ZOOM_MARGIN = 0.1
# While bracketing, the next trial step grows the last increment at least 1x, at most 10x.
_EXTRAPOLATE_MIN, _EXTRAPOLATE_MAX = 1.0, 10.0

# phi(step) -> (f, slope, payload): the objective and its directional derivative at a step,
# with whatever the caller wants back for the accepted step. A non-finite f means "too far".
LineFunction = Callable[[float], tuple[float, float, Any]]


def _cubic_minimizer(a: float, fa: float, ga: float, b: float, fb: float, gb: float) -> float:
    """The minimizer of the cubic matching f and f' at a and b (N&W eq. 3.59); NaN if none."""
    d1 = ga + gb - 3.0 * (fa - fb) / (a - b)
    radicand = d1 * d1 - ga * gb
    if not math.isfinite(radicand) or radicand < 0.0:
        return math.nan
    d2 = math.copysign(math.sqrt(radicand), b - a)
    denominator = gb - ga + 2.0 * d2
    if denominator == 0.0:
        return math.nan
    return b - (b - a) * (gb + d2 - d1) / denominator


def _quadratic_minimizer(a: float, fa: float, ga: float, b: float, fb: float) -> float:
    """The minimizer of the parabola matching f(a), f'(a) and f(b); NaN if it opens downward."""
    width = b - a
    curvature = (fb - fa - ga * width) / (width * width)
    if not math.isfinite(curvature) or curvature <= 0.0:
        return math.nan
    return a - ga / (2.0 * curvature)


def _zoom_trial(lo: float, f_lo: float, g_lo: float, hi: float, f_hi: float, g_hi: float) -> float:
    """A trial step inside the bracket (lo, hi): cubic interpolation when both ends are known,
    quadratic when only f is known at hi, kept away from the ends, bisection otherwise."""
    trial = math.nan
    if math.isfinite(f_hi):
        if math.isfinite(g_hi):
            trial = _cubic_minimizer(lo, f_lo, g_lo, hi, f_hi, g_hi)
        if not math.isfinite(trial):
            trial = _quadratic_minimizer(lo, f_lo, g_lo, hi, f_hi)
    left, right = min(lo, hi), max(lo, hi)
    margin = _ZOOM_MARGIN * (right - left)
    if not math.isfinite(trial):
        return 0.5 * (lo + hi)
    return min(max(trial, left + margin), right - margin)


def strong_wolfe_line_search(phi: LineFunction, f0: float, slope0: float, step: float, *,
                             c1: float = 1e-4, c2: float = 0.9, min_bracket: float = 0.0,
                             max_evaluations: int = _MAX_LINE_SEARCH_EVALUATIONS,
                             ) -> Optional[tuple[float, float, float, Any, bool]]:
    """A step length along a descent direction meeting the strong Wolfe conditions,
    f(step) <= f0 + c1 step slope0 and |slope(step)| <= c2 |slope0| (N&W Alg. 3.5 and 3.6).

    phi(step) returns (f, slope, payload); slope0 < 0 is the slope at 0; step is the first
    trial. A non-finite f counts as a failed sufficient decrease, so the search backs off.
    The search stops shrinking its bracket when it is narrower than min_bracket.

    Returns (step, f, slope, payload, wolfe): the accepted step, with wolfe False when the
    evaluations ran out and the best step with sufficient decrease was taken instead; or
    None when no evaluated step lowered f enough.
    """
    if not slope0 < 0.0:
        raise ValueError(f"the direction must point downhill (slope0 < 0); got slope0={slope0}")
    armijo = c1 * slope0
    curvature = c2 * abs(slope0)
    # The best step so far with sufficient decrease (0: none yet).
    best: tuple[float, float, float, Any] = (0.0, f0, slope0, None)
    evaluations = 0

    def sufficient(alpha: float, f: float) -> bool:
        return math.isfinite(f) and f <= f0 + alpha * armijo

    # Bracketing (Alg. 3.5): grow the step until it overshoots or meets the conditions.
    prev, f_prev, g_prev = 0.0, f0, slope0
    alpha = step
    bracket = None
    while evaluations < max_evaluations:
        f, g, payload = phi(alpha)
        evaluations += 1
        if not sufficient(alpha, f) or (evaluations > 1 and f >= f_prev):
            bracket = (prev, f_prev, g_prev, alpha, f, g)  # lo = prev, hi = alpha
            break
        best = (alpha, f, g, payload)
        if abs(g) <= curvature:
            return alpha, f, g, payload, True
        if g >= 0.0:
            bracket = (alpha, f, g, prev, f_prev, g_prev)  # lo = alpha, hi = prev
            break
        increment = alpha - prev
        low, high = alpha + _EXTRAPOLATE_MIN * increment, alpha + _EXTRAPOLATE_MAX * increment
        trial = _cubic_minimizer(prev, f_prev, g_prev, alpha, f, g)
        trial = min(max(trial, low), high) if math.isfinite(trial) else high
        prev, f_prev, g_prev = alpha, f, g
        alpha = trial
        if not math.isfinite(alpha):
            break

    if bracket is not None:
        # Zoom (Alg. 3.6): lo always has sufficient decrease and the lowest f seen so far; the
        # slope at lo points towards hi, so a minimizer lies between them.
        lo, f_lo, g_lo, hi, f_hi, g_hi = bracket
        while evaluations < max_evaluations and abs(hi - lo) > min_bracket:
            alpha = _zoom_trial(lo, f_lo, g_lo, hi, f_hi, g_hi)
            f, g, payload = phi(alpha)
            evaluations += 1
            if not sufficient(alpha, f) or f >= f_lo:
                hi, f_hi, g_hi = alpha, f, g
                continue
            best = (alpha, f, g, payload)
            if abs(g) <= curvature:
                return alpha, f, g, payload, True
            if g * (hi - lo) >= 0.0:
                hi, f_hi, g_hi = lo, f_lo, g_lo
            lo, f_lo, g_lo = alpha, f, g

    if best[0] > 0.0:
        return best[0], best[1], best[2], best[3], False
    return None


def _count(value: Any, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int; got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be >= 1; got {number}")
    return number


class LBFGS(Optimizer):
    """Limited-memory BFGS on the whole training set, as torch.optim.LBFGS with
    line_search_fn='strong_wolfe'.

    lr: the first trial step of each line search (1 is the quasi-Newton step; the very first
        iteration, with no curvature pairs yet, tries lr * min(1, 1 / ||g||_1)); 0 takes no step.
    history_size: curvature pairs (s, y) kept. max_iter: iterations per epoch.
    tolerance_grad: converged when max |gradient| is at or below it.
    tolerance_change: converged when an iteration changes the loss, or every parameter, by
        less than it.
    line_search: 'strong_wolfe', or None for a fixed step of lr (a step whose loss is not
        finite is not taken). c1, c2: the sufficient-decrease and curvature constants,
        0 < c1 < c2 < 1.

    A line search that runs out of evaluations (25) takes its best step with sufficient
    decrease; one that finds no lower loss restores the weights from before it and the
    optimizer has converged: further epochs leave the weights alone until reset(). Each epoch
    of fit is max_iter iterations on the whole training set (batch_size is ignored). The
    objective is the network's loss without dropout, so that it is the same at every call.
    """

    full_batch = True

    def __init__(self, lr: float = 1.0, history_size: int = 10, max_iter: int = 20,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 line_search: Optional[str] = "strong_wolfe", c1: float = 1e-4,
                 c2: float = 0.9) -> None:
        super().__init__(lr)
        self.history_size = _count(history_size, "history_size")
        self.max_iter = _count(max_iter, "max_iter")
        self.tolerance_grad = _number(tolerance_grad, "tolerance_grad")
        self.tolerance_change = _number(tolerance_change, "tolerance_change")
        if line_search not in ("strong_wolfe", None):
            raise ValueError(f"line_search must be 'strong_wolfe' or None; got {line_search!r}")
        self.line_search = line_search
        self.c1 = _number(c1, "c1", low_open=True, high=1.0)
        self.c2 = _number(c2, "c2", low=self.c1, low_open=True, high=1.0)
        self.converged = False
        self.evaluations = 0  # loss-and-gradient evaluations, line searches included
        self._s: deque[np.ndarray] = deque(maxlen=self.history_size)
        self._y: deque[np.ndarray] = deque(maxlen=self.history_size)

    def native_spec(self) -> Any:
        raise TypeError("LBFGS trains whole epochs (fit); it has no per-step update")

    def state_for(self, params: np.ndarray, spec: Any = None) -> list[np.ndarray]:
        self._bind(params)
        return []

    def step(self, params: np.ndarray, grads: Any) -> None:
        raise TypeError("LBFGS needs the network and data: use net.fit(...)")

    def _bind(self, params: np.ndarray) -> None:
        if self._params is None:
            self._params = params
        elif self._params is not params:
            raise ValueError("this optimizer already holds curvature pairs for another network's "
                             "parameters; create one optimizer per network")

    @property
    def history(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The curvature pairs (s, y) kept, oldest first (float64 copies)."""
        return [(s.copy(), y.copy()) for s, y in zip(self._s, self._y)]

    def _direction(self, g: np.ndarray) -> np.ndarray:
        """-H g by the two-loop recursion (N&W Alg. 7.4), H0 = gamma I."""
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(self._s), reversed(self._y)):
            rho = 1.0 / float(y @ s)
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append((rho, alpha))
        if self._s:
            s, y = self._s[-1], self._y[-1]
            q *= float(s @ y) / float(y @ y)
        for (s, y), (rho, alpha) in zip(zip(self._s, self._y), reversed(alphas)):
            beta = rho * float(y @ q)
            q += (alpha - beta) * s
        return -q

    def run_epoch(self, net: "Network", x: np.ndarray, t: np.ndarray,
                  sample_weight: Optional[np.ndarray] = None) -> dict[str, float]:
        """Up to max_iter L-BFGS iterations on all of (x, t); returns the loss before them."""
        params = net.params
        self._bind(params)
        dtype = params.dtype

        def evaluate() -> tuple[float, np.ndarray]:
            self.evaluations += 1
            value, grads = net.loss_and_grad(x, t, sample_weight=sample_weight)
            return float(value), grads.astype(np.float64)

        point = params.astype(np.float64)
        f, g = evaluate()
        loss_before = f
        if not (math.isfinite(f) and np.isfinite(g).all()):
            raise FloatingPointError(f"the loss or its gradient is not finite (loss {f}); "
                                     "no step was made and the weights are unchanged")
        if float(np.max(np.abs(g), initial=0.0)) <= self.tolerance_grad:
            self.converged = True

        for _ in range(self.max_iter):
            if self.converged or self.lr == 0.0:  # lr 0 (a schedule's end): no step at all
                break
            d = self._direction(g)
            slope = float(g @ d)
            if not (math.isfinite(slope) and slope < 0.0):
                # Rounding made the quasi-Newton direction useless: restart from steepest descent.
                self._s.clear()
                self._y.clear()
                d = -g
                slope = float(g @ d)
                if not slope < 0.0:  # a zero gradient with tolerance_grad 0: nowhere to go
                    self.converged = True
                    break
            step = self.lr if self._s else self.lr * min(1.0, 1.0 / float(np.abs(g).sum()))

            def phi(alpha: float) -> tuple[float, float, Any]:
                with np.errstate(over="ignore", invalid="ignore"):
                    trial = (point + alpha * d).astype(dtype)
                if not np.isfinite(trial).all():
                    return math.inf, math.nan, None
                params[...] = trial
                value, grads = evaluate()
                if not (math.isfinite(value) and np.isfinite(grads).all()):
                    return math.inf, math.nan, None
                return value, float(grads @ d), (trial, grads)

            if self.line_search == "strong_wolfe":
                bracket = self.tolerance_change / max(float(np.max(np.abs(d))), 1e-300)
                found = strong_wolfe_line_search(phi, f, slope, step, c1=self.c1, c2=self.c2,
                                                 min_bracket=bracket)
                accepted = None if found is None else (found[1], found[3])
            else:
                value, _, payload = phi(step)
                accepted = (value, payload) if payload is not None else None
            if accepted is None:
                # No step lowers the loss (or every one overflows): keep the weights from
                # before the search and stop.
                params[...] = point.astype(dtype)
                self.converged = True
                break
            f_new, (trial, g_new) = accepted
            params[...] = trial
            new_point = trial.astype(np.float64)
            s = new_point - point
            y = g_new - g
            if float(y @ s) > _MIN_CURVATURE:
                self._s.append(s)
                self._y.append(y)
            self.steps += 1
            change = abs(f_new - f)
            point, f, g = new_point, f_new, g_new
            if (float(np.max(np.abs(g), initial=0.0)) <= self.tolerance_grad
                    or float(np.max(np.abs(s), initial=0.0)) <= self.tolerance_change
                    or change < self.tolerance_change):
                self.converged = True
        return {"loss": loss_before}

    def reset(self) -> None:
        super().reset()
        self._s.clear()
        self._y.clear()
        self.converged = False
        self.evaluations = 0

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "history_size": self.history_size, "max_iter": self.max_iter,
                "tolerance_grad": self.tolerance_grad, "tolerance_change": self.tolerance_change,
                "line_search": self.line_search, "c1": self.c1, "c2": self.c2}
