"""Levenberg-Marquardt: damped Gauss-Newton on the sum of squared errors, full batch.

Each epoch forms the Gauss-Newton system natively (J^T J and J^T e, the Jacobian built by one
backward pass per output unit), then tries steps (J^T J + mu I) delta = -J^T e, raising mu until
the error falls and lowering it after, as MATLAB's trainlm does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .first_order import Optimizer, _number

if TYPE_CHECKING:
    from ..network import Network


def _half_sse(net: "Network", x: np.ndarray, t: np.ndarray) -> float:
    """Half the sum of squared errors, summed alike for the weights before and after a step.

    The native Gauss-Newton pass returns this sum too, but in another order than NumPy's: at a
    plateau, a step that changed nothing could then look lower by rounding, be accepted, and
    keep training from ever converging.
    """
    return 0.5 * float(((net.forward(x).astype(np.float64) - t) ** 2).sum())


class LevenbergMarquardt(Optimizer):
    """Levenberg-Marquardt for networks with loss='mse' (up to max_params parameters).

    mu: the initial damping; mu_decrease / mu_increase scale it after a step that lowered /
    did not lower the error; training has converged when mu would pass mu_max. Each epoch of
    fit is one accepted step on the whole training set (batch_size is ignored).
    """

    full_batch = True

    def __init__(self, mu: float = 1e-3, mu_decrease: float = 0.1, mu_increase: float = 10.0,
                 mu_max: float = 1e10, max_params: int = 10_000) -> None:
        super().__init__(lr=1.0)  # no learning rate: the damping mu sets the step
        self.mu = _number(mu, "mu", low_open=True)
        self.mu_decrease = _number(mu_decrease, "mu_decrease", low_open=True, high=1.0)
        self.mu_increase = _number(mu_increase, "mu_increase", low=1.0, low_open=True)
        self.mu_max = _number(mu_max, "mu_max", low=self.mu, low_open=True)
        self.max_params = int(max_params)
        self.converged = False

    def native_spec(self) -> Any:
        raise TypeError("LevenbergMarquardt trains whole epochs (fit); it has no per-step update")

    def state_for(self, params: np.ndarray, spec: Any = None) -> list[np.ndarray]:
        return []

    def step(self, params: np.ndarray, grads: Any) -> None:
        raise TypeError("LevenbergMarquardt needs the network and data: use net.fit(...)")

    def run_epoch(self, net: "Network", x: np.ndarray, t: np.ndarray,
                  sample_weight: Optional[np.ndarray] = None) -> dict[str, float]:
        """One accepted Levenberg-Marquardt step on all of (x, t); returns the loss before it."""
        if net.loss_name != "mse":
            raise ValueError(f"LevenbergMarquardt minimises squared errors: it needs loss='mse', "
                             f"got {net.loss_name!r}")
        if sample_weight is not None:
            raise ValueError("LevenbergMarquardt does not take sample_weight")
        n = net.n_params
        if n > self.max_params:
            raise ValueError(f"LevenbergMarquardt forms an n_params x n_params system; this network "
                             f"has {n} parameters, more than max_params={self.max_params}")
        params = net.params
        jtj = np.zeros((n, n), dtype=params.dtype)
        jte = np.zeros(n, dtype=params.dtype)
        net._engine.gauss_newton(params, x, t, jtj, jte)
        half_sse = _half_sse(net, x, t)
        before = params.copy()
        system = jtj.astype(np.float64)
        gradient = jte.astype(np.float64)
        diagonal = np.arange(n)
        while not self.converged:
            damped = system.copy()
            damped[diagonal, diagonal] += self.mu
            try:
                delta = np.linalg.solve(damped, -gradient)
            except np.linalg.LinAlgError:
                delta = None
            if delta is not None and np.isfinite(delta).all():
                params[...] = before + delta
                trial = _half_sse(net, x, t)
                if np.isfinite(trial) and trial < half_sse:
                    self.mu = max(self.mu * self.mu_decrease, 1e-300)
                    break
            self.mu *= self.mu_increase
            if self.mu > self.mu_max:
                self.converged = True
        if self.converged:
            params[...] = before  # no step lowers the error any more: keep the best weights
        self.steps += 1
        loss = half_sse / x.shape[0] if net.reduction == "mean" else half_sse
        return {"loss": loss}

    def reset(self) -> None:
        super().reset()
        self.converged = False

    def _rule_settings(self) -> dict[str, Any]:
        return {"mu": self.mu, "mu_decrease": self.mu_decrease, "mu_increase": self.mu_increase,
                "mu_max": self.mu_max, "max_params": self.max_params}
