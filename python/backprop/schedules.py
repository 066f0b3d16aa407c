"""Learning-rate schedules: the lr of an epoch as a pure function of the epoch and a base lr.

    sched = bp.schedules.CosineAnnealing(T_max=50)
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1), epochs=50, schedule=sched)
    sched.lr_at(10, base_lr=0.1)      # the lr epoch 10 trains with; sched(10, 0.1) is the same

Epochs count from 0, and `lr_at(e)` is the lr used while training epoch e, so `lr_at(0)` is the
base lr: the same values torch.optim.lr_scheduler gives after e calls of `scheduler.step()`
(its closed forms). A schedule keeps no state, so one object can serve any number of runs.
The base lr is the `base_lr` given to `lr_at`, else the schedule's own `base_lr`, else (in fit)
the optimizer's lr when fit starts.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Optional

from .optim import _number


def _integer(value: Any, name: str, low: int) -> int:
    """An int (or NumPy integer) of at least `low`; bools are refused as a likely mistake."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int; got {type(value).__name__}") from None
    if number < low:
        raise ValueError(f"{name} must be >= {low}; got {number}")
    return number


def _epoch(value: Any) -> float:
    """An epoch: a whole number normally, a fraction for per-batch use (as torch allows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"epoch must be a number; got {type(value).__name__}")
    try:
        # A probe: a Real need not have __index__, and the TypeError is the answer (mypy < 2
        # does not narrow value to Real, so the ignore is unused there).
        whole = operator.index(value)  # type: ignore[arg-type, unused-ignore]
    except TypeError:
        return _number(value, "epoch")
    if whole < 0:
        raise ValueError(f"epoch must be >= 0; got {whole}")
    return whole


class Schedule:
    """Base class: a subclass gives `_lr(epoch, base_lr)`; `lr_at` validates and calls it."""

    def __init__(self, base_lr: Optional[float] = None) -> None:
        self.base_lr = None if base_lr is None else _number(base_lr, "base_lr", low_open=True)

    def lr_at(self, epoch: Any, base_lr: Optional[float] = None) -> float:
        """The learning rate of epoch `epoch` (0 is the first) for the base lr."""
        return float(self._lr(_epoch(epoch), self._base(base_lr)))

    def __call__(self, epoch: Any, base_lr: Optional[float] = None) -> float:
        return self.lr_at(epoch, base_lr)

    def values(self, epochs: int, base_lr: Optional[float] = None) -> list[float]:
        """The learning rates of epochs 0 .. epochs - 1 (for plotting or inspection)."""
        return [self.lr_at(epoch, base_lr) for epoch in range(_integer(epochs, "epochs", 0))]

    def _base(self, base_lr: Optional[float]) -> float:
        if base_lr is not None:
            return _number(base_lr, "base_lr", low_open=True)
        if self.base_lr is None:
            raise ValueError(
                f"{type(self).__name__} has no base_lr: pass base_lr to lr_at or to the schedule, "
                "or give the schedule to fit, which starts from the optimizer's lr"
            )
        return self.base_lr

    def _lr(self, epoch: float, base_lr: float) -> float:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        settings = dict(self._settings())
        if self.base_lr is not None:
            settings["base_lr"] = self.base_lr
        text = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"{type(self).__name__}({text})"


class StepLR(Schedule):
    """base_lr * gamma ** floor(epoch / step_size): decay by gamma every step_size epochs."""

    def __init__(self, step_size: int, gamma: float = 0.1, base_lr: Optional[float] = None) -> None:
        super().__init__(base_lr)
        self.step_size = _integer(step_size, "step_size", 1)
        self.gamma = _number(gamma, "gamma", low_open=True)

    def _lr(self, epoch: float, base_lr: float) -> float:
        # float ** float is typed Any (a negative base gives a complex); gamma > 0 here.
        return float(base_lr * self.gamma ** (epoch // self.step_size))

    def _settings(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(Schedule):
    """base_lr * gamma ** epoch."""

    def __init__(self, gamma: float, base_lr: Optional[float] = None) -> None:
        super().__init__(base_lr)
        self.gamma = _number(gamma, "gamma", low_open=True)

    def _lr(self, epoch: float, base_lr: float) -> float:
        return float(base_lr * self.gamma ** epoch)

    def _settings(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


def _cosine(progress: float, base_lr: float, eta_min: float) -> float:
    """From base_lr at progress 0 down to eta_min at progress 1, along half a cosine."""
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0


class CosineAnnealing(Schedule):
    """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, torch's
    CosineAnnealingLR: it reaches eta_min at epoch T_max and, like torch's, climbs back over
    the next T_max epochs if training goes on (set T_max to the number of epochs to avoid that).
    """

    def __init__(self, T_max: int, eta_min: float = 0.0, base_lr: Optional[float] = None) -> None:
        super().__init__(base_lr)
        self.T_max = _integer(T_max, "T_max", 1)
        self.eta_min = _number(eta_min, "eta_min")

    def _lr(self, epoch: float, base_lr: float) -> float:
        return _cosine(epoch / self.T_max, base_lr, self.eta_min)

    def _settings(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class CosineAnnealingWarmRestarts(Schedule):
    """SGDR, torch's CosineAnnealingWarmRestarts: a cosine from base_lr towards eta_min over a
    cycle of T_i epochs, then a restart at base_lr; the first cycle has T_0 epochs and each
    next one T_mult times as many."""

    def __init__(self, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 base_lr: Optional[float] = None) -> None:
        super().__init__(base_lr)
        self.T_0 = _integer(T_0, "T_0", 1)
        self.T_mult = _integer(T_mult, "T_mult", 1)
        self.eta_min = _number(eta_min, "eta_min")

    def cycle_position(self, epoch: Any) -> tuple[float, int]:
        """(T_cur, T_i): epochs into the current cycle, and that cycle's length."""
        t_cur = _epoch(epoch)
        if self.T_mult == 1:
            return t_cur % self.T_0, self.T_0
        # Whole cycles are subtracted one by one (there are only log(epoch) of them), which is
        # exact for whole epochs where torch's closed form through a logarithm can round.
        length = self.T_0
        while t_cur >= length:
            t_cur -= length
            length *= self.T_mult
        return t_cur, length

    def _lr(self, epoch: float, base_lr: float) -> float:
        t_cur, length = self.cycle_position(epoch)
        return _cosine(t_cur / length, base_lr, self.eta_min)

    def _settings(self) -> dict[str, Any]:
        return {"T_0": self.T_0, "T_mult": self.T_mult, "eta_min": self.eta_min}


class LinearWarmup(Schedule):
    """A linear ramp from start_factor * base_lr up to base_lr over warmup_epochs epochs (torch's
    LinearLR), then `then` (another schedule, whose epoch 0 is the first after the warm-up, as
    torch's SequentialLR runs it) or the constant base_lr when `then` is None:

        epoch < warmup_epochs:  base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs)
        otherwise:              then.lr_at(epoch - warmup_epochs, base_lr), or base_lr
    """

    def __init__(self, warmup_epochs: int, start_factor: float = 1.0 / 3.0,
                 then: Optional[Schedule] = None, base_lr: Optional[float] = None) -> None:
        if then is not None and not isinstance(then, Schedule):
            raise TypeError(f"then must be a Schedule or None; got {type(then).__name__}")
        super().__init__(base_lr if base_lr is not None or then is None else then.base_lr)
        self.warmup_epochs = _integer(warmup_epochs, "warmup_epochs", 1)
        self.start_factor = _number(start_factor, "start_factor", low_open=True, high=1.0,
                                    high_open=False)
        self.then = then

    def _lr(self, epoch: float, base_lr: float) -> float:
        if epoch < self.warmup_epochs:
            share = epoch / self.warmup_epochs
            return base_lr * (self.start_factor + (1.0 - self.start_factor) * share)
        if self.then is None:
            return base_lr
        return self.then.lr_at(epoch - self.warmup_epochs, base_lr)

    def _settings(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "start_factor": self.start_factor,
                "then": self.then}


__all__ = ["CosineAnnealing", "CosineAnnealingWarmRestarts", "ExponentialLR", "LinearWarmup",
           "Schedule", "StepLR"]
