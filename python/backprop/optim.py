"""Optimizers: each owns its hyper-parameters and state buffers, laid out like the parameters.

An optimizer keeps state for one network's parameter buffer (the first it steps); use a new
optimizer for another network.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _core
from .kernels import sgd_update


def _non_negative(value: Any, name: str, upper: Optional[float] = None) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (upper is not None and number >= upper):
        bound = f" and below {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be a finite number >= 0{bound}; got {value!r}")
    return number


class Optimizer:
    """Base class: the learning rate, the state buffers and `step`; subclasses add their rule."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self._state: list[np.ndarray] = []
        self._params: Optional[np.ndarray] = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        number = _non_negative(value, "lr")
        if number == 0:
            raise ValueError(f"lr must be > 0; got {value!r}")
        self._lr = number

    def native_spec(self) -> Any:
        """The hyper-parameters as the native engine reads them."""
        raise NotImplementedError

    def state_for(self, params: np.ndarray) -> list[np.ndarray]:
        """The state buffers for params, created as zeros on first use."""
        if self._params is None:
            self._params = params
        elif self._params is not params:
            raise ValueError(
                "this optimizer already holds state for another network's parameters; "
                "create one optimizer per network"
            )
        needed = _core.optimizer_state_count(self.native_spec())
        while len(self._state) < needed:
            self._state.append(np.zeros_like(params))
        return self._state[:needed]

    def step(self, params: np.ndarray, grads: Any) -> None:
        """Update params in place from grads (both flat, as Network.params and loss_and_grad)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the state (momentum and the like); the next step starts afresh."""
        self._state = []
        self._params = None

    @property
    def state(self) -> list[np.ndarray]:
        return list(self._state)


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0).

    g = grad + weight_decay * p; with momentum, v = momentum * v + g and the step is v, or
    g + momentum * v with Nesterov; p -= lr * step.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _non_negative(momentum, "momentum", upper=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")

    def native_spec(self) -> Any:
        spec = _core.OptimizerSpec()
        spec.kind = _core.OptimizerKind.sgd
        spec.lr = self.lr
        spec.momentum = self.momentum
        spec.nesterov = self.nesterov
        spec.weight_decay = self.weight_decay
        return spec

    def step(self, params: np.ndarray, grads: Any) -> None:
        state = self.state_for(params)
        sgd_update(params, grads, state[0] if state else None, lr=self.lr,
                   momentum=self.momentum, nesterov=self.nesterov,
                   weight_decay=self.weight_decay)

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")
