"""First-order optimizers, in order of increasing complexity: each owns its hyper-parameters
and state buffers (laid out like the parameters) and adds only its update rule, which runs
natively over the flat buffer.

An optimizer keeps state for one network's parameter buffer (the first it steps); use a new
optimizer for another network. The rules follow torch.optim's definitions.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import _core
from .._arrays import as_input, float_dtype, zeros_on_cache_lines


def _number(value: Any, name: str, *, low: float = 0.0, high: float = math.inf,
            low_open: bool = False, high_open: bool = True) -> float:
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}") from None
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (math.isfinite(number) and above and below):
        left = "(" if low_open else "["
        right = ")" if high_open or high == math.inf else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}; got {value!r}")
    return number


class Optimizer:
    """Base class: the learning rate, the step count, the state buffers and `step`.

    Every optimizer also takes, as keywords: clip_norm (scale the whole gradient down to this
    L2 norm, as torch's clip_grad_norm_), clip_value (clamp each gradient entry to +-value) and
    l1 (add l1 * sign(p) to the gradient: L1 regularisation), applied in that order.
    """

    kind: Any = None  # the native OptimizerKind of the subclass

    def __init__(self, lr: float, *, clip_norm: Optional[float] = None,
                 clip_value: Optional[float] = None, l1: float = 0.0) -> None:
        self.lr = lr
        self.clip_norm = None if clip_norm is None else _number(clip_norm, "clip_norm", low_open=True)
        self.clip_value = None if clip_value is None else _number(clip_value, "clip_value", low_open=True)
        self.l1 = _number(l1, "l1")
        self.steps = 0
        self._state: list[np.ndarray] = []
        self._params: Optional[np.ndarray] = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # 0 is allowed, as in torch: a schedule may anneal to exactly 0.
        self._lr = _number(value, "lr")

    def _fill(self, spec: Any) -> None:
        """Copy the subclass's hyper-parameters into the native record."""
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name != "steps" and not name.startswith("_"):  # a hyper-parameter: the record is stale
            super().__setattr__("_record_cache", None)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        self.__dict__.pop("_record_cache", None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_record_cache", None)  # a native object: rebuilt when next needed
        return state

    def _holds_state_for(self, params: np.ndarray) -> bool:
        """Whether this optimizer already keeps the state of the network whose buffer is params."""
        return self.__dict__.get("_params") is params

    def _step_record(self) -> Any:
        """native_spec() for the next step, reusing the last one while no hyper-parameter has been
        set since (only the step count changes between steps); for per-batch training, where
        building the record took 2% of a small network's step. Only the optimizers defined here
        reuse it: a subclass elsewhere may compute its record from anything (the step count, say)."""
        if type(self).__module__ != __name__:
            return self.native_spec()
        record = self.__dict__.get("_record_cache")
        if record is None:
            record = self.native_spec()
            super().__setattr__("_record_cache", record)
        else:
            record.step = self.steps
        return record

    def native_spec(self) -> Any:
        """The hyper-parameters and step count as the native engine reads them (a new record)."""
        spec = _core.OptimizerSpec()
        spec.kind = self.kind
        spec.lr = self.lr
        spec.step = self.steps
        spec.clip_norm = self.clip_norm or 0.0
        spec.clip_value = self.clip_value or 0.0
        spec.l1 = self.l1
        self._fill(spec)
        return spec

    def state_for(self, params: np.ndarray, spec: Any = None) -> list[np.ndarray]:
        """The state buffers for params, created as zeros on first use (spec: this optimizer's
        native_spec(), when the caller has already made it)."""
        if self._params is None:
            self._params = params
        elif self._params is not params:
            raise ValueError(
                "this optimizer already holds state for another network's parameters; "
                "create one optimizer per network"
            )
        needed = _core.optimizer_state_count(self.native_spec() if spec is None else spec)
        while len(self._state) < needed:
            self._state.append(zeros_on_cache_lines(params.shape, params.dtype))
        return self._state[:needed]

    def step(self, params: np.ndarray, grads: Any) -> None:
        """Update params in place from grads (both flat, as Network.params and loss_and_grad)."""
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a numpy.ndarray; got {type(params).__name__}")
        g = as_input(grads, "grads", float_dtype(params.dtype, "params' dtype"))
        spec = self.native_spec()
        _core.optimizer_step(params, g, self.state_for(params, spec), spec)
        self.steps += 1

    def reset(self) -> None:
        """Forget the state and step count; the next step starts afresh."""
        self._state = []
        self._params = None
        self.steps = 0

    @property
    def state(self) -> list[np.ndarray]:
        return list(self._state)

    def _settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this optimizer (saved in model files)."""
        settings = self._rule_settings()
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                settings[name] = getattr(self, name)
        if self.l1:
            settings["l1"] = self.l1
        return settings

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._settings().items())
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0).

    g = grad + weight_decay * p; with momentum, v = momentum * v + g and the step is v, or
    g + momentum * v with Nesterov; p -= lr * step.
    """

    kind = _core.OptimizerKind.sgd

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, **options: Any) -> None:
        super().__init__(lr, **options)
        self.momentum = _number(momentum, "momentum", high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        self.weight_decay = _number(weight_decay, "weight_decay")

    def _fill(self, spec: Any) -> None:
        spec.momentum = self.momentum
        spec.nesterov = self.nesterov
        spec.weight_decay = self.weight_decay

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad: s += g^2; p -= lr_t * g / (sqrt(s) + eps),
    lr_t = lr / (1 + (t - 1) * lr_decay), g = grad + weight_decay * p."""

    kind = _core.OptimizerKind.adagrad

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, **options: Any) -> None:
        super().__init__(lr, **options)
        self.lr_decay = _number(lr_decay, "lr_decay")
        self.weight_decay = _number(weight_decay, "weight_decay")
        self.eps = _number(eps, "eps", low_open=True)

    def _fill(self, spec: Any) -> None:
        spec.lr_decay = self.lr_decay
        spec.weight_decay = self.weight_decay
        spec.eps = self.eps

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2, the step g / (sqrt(v) + eps)
    (centered: v minus the squared running mean of g), through a momentum buffer if momentum."""

    kind = _core.OptimizerKind.rmsprop

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 **options: Any) -> None:
        super().__init__(lr, **options)
        self.alpha = _number(alpha, "alpha", high=1.0)
        self.eps = _number(eps, "eps", low_open=True)
        self.weight_decay = _number(weight_decay, "weight_decay")
        self.momentum = _number(momentum, "momentum", high=1.0)
        self.centered = bool(centered)

    def _fill(self, spec: Any) -> None:
        spec.alpha = self.alpha
        spec.eps = self.eps
        spec.weight_decay = self.weight_decay
        spec.momentum = self.momentum
        spec.centered = self.centered

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam, as torch.optim.Adam: bias-corrected first and second moments of g,
    g = grad + weight_decay * p (L2)."""

    kind = _core.OptimizerKind.adam

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, **options: Any) -> None:
        super().__init__(lr, **options)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        self.betas = (_number(betas[0], "betas[0]", high=1.0), _number(betas[1], "betas[1]", high=1.0))
        self.eps = _number(eps, "eps", low_open=True)
        self.weight_decay = _number(weight_decay, "weight_decay")

    def _fill(self, spec: Any) -> None:
        spec.beta1, spec.beta2 = self.betas
        spec.eps = self.eps
        spec.weight_decay = self.weight_decay

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """AdamW, as torch.optim.AdamW: Adam with decoupled weight decay, p *= 1 - lr * weight_decay
    before the Adam step (default weight_decay 0.01)."""

    kind = _core.OptimizerKind.adamw

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, **options: Any) -> None:
        super().__init__(lr, betas, eps, weight_decay, **options)


class Rprop(Optimizer):
    """iRPROP- (Igel and Huesken), as torch.optim.Rprop: each weight moves by its own step size
    in the direction opposite its gradient's sign; the step grows by etas[1] while the sign
    holds and shrinks by etas[0] when it flips (that update is then skipped), within
    step_sizes. lr is the initial step size. Meant for full-batch training."""

    kind = _core.OptimizerKind.rprop

    def __init__(self, lr: float = 0.01, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50.0), **options: Any) -> None:
        super().__init__(lr, **options)
        if not isinstance(etas, (tuple, list)) or len(etas) != 2:
            raise TypeError(f"etas must be a pair (eta_minus, eta_plus); got {etas!r}")
        if not isinstance(step_sizes, (tuple, list)) or len(step_sizes) != 2:
            raise TypeError(f"step_sizes must be a pair (min, max); got {step_sizes!r}")
        eta_minus = _number(etas[0], "etas[0]", low_open=True, high=1.0)
        eta_plus = _number(etas[1], "etas[1]", low=1.0, low_open=True)
        self.etas = (eta_minus, eta_plus)
        low = _number(step_sizes[0], "step_sizes[0]")
        high = _number(step_sizes[1], "step_sizes[1]", low=low, low_open=True)
        self.step_sizes = (low, high)

    def _fill(self, spec: Any) -> None:
        spec.eta_minus, spec.eta_plus = self.etas
        spec.step_min, spec.step_max = self.step_sizes

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "etas": self.etas, "step_sizes": self.step_sizes}


class Quickprop(Optimizer):
    """Quickprop (Fahlman 1988): each weight jumps to the minimum of the parabola through its
    last two slopes, at most max_growth times its last step, plus lr * gradient while the slope
    keeps its sign; the first step is plain gradient descent. Meant for full-batch training."""

    kind = _core.OptimizerKind.quickprop

    def __init__(self, lr: float = 0.01, max_growth: float = 1.75,
                 weight_decay: float = 0.0, **options: Any) -> None:
        super().__init__(lr, **options)
        self.max_growth = _number(max_growth, "max_growth", low_open=True)
        self.weight_decay = _number(weight_decay, "weight_decay")

    def _fill(self, spec: Any) -> None:
        spec.max_growth = self.max_growth
        spec.weight_decay = self.weight_decay

    def _rule_settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "max_growth": self.max_growth, "weight_decay": self.weight_decay}
