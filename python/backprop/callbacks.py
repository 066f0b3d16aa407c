"""Callbacks run by fit between epochs: early stopping, checkpoints, learning-rate reduction on a
plateau, stopping on a non-finite loss, and plain functions."""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from .optim import _number
from .schedules import _integer

if TYPE_CHECKING:
    from .network import Network
    from .optim import Optimizer


class Callback:
    """Override on_train_begin / on_epoch_begin / on_epoch_end / on_train_end; return True from
    on_epoch_end to stop training after that epoch.

    fit sets `optimizer` (the Optimizer it trains with) before on_train_begin, so a callback can
    read or change `self.optimizer.lr`. A callback that changes the lr sets the class attribute
    `changes_lr = True`: fit then logs 'lr' every epoch, and refuses a `schedule` alongside it
    (the schedule would overwrite the change at the next epoch).
    """

    optimizer: Optional["Optimizer"] = None
    changes_lr: bool = False

    def on_train_begin(self, net: "Network") -> None:
        pass

    def on_epoch_begin(self, epoch: int, net: "Network") -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        return None

    def on_train_end(self, net: "Network") -> None:
        pass


class LambdaCallback(Callback):
    """Wraps a plain function f(epoch, logs); returning True stops training."""

    def __init__(self, function: Callable[[int, dict[str, float]], Any]) -> None:
        self.function = function

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        return bool(self.function(epoch, logs))


class _Monitored(Callback):
    """A callback that watches one logged metric and knows which direction is better.

    monitor: a key of the epoch logs ('val_loss', 'accuracy', ...). When a 'val_' metric is
    missing because fit has no validation data, the training metric of the same name is
    watched instead, with a warning. mode: 'min', 'max', or 'auto' (max for accuracies, min
    otherwise). An improvement beats the best so far by more than min_delta.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a logged metric such as 'val_loss'; got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = _number(min_delta, "min_delta")
        self.maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
        self._key: Optional[str] = None

    def _monitored(self, logs: dict[str, float]) -> float:
        if self._key is None:
            self._key = self._resolve(logs)
        return float(logs[self._key])

    def _resolve(self, logs: dict[str, float]) -> str:
        if self.monitor in logs:
            return self.monitor
        fallback = self.monitor[len("val_"):] if self.monitor.startswith("val_") else None
        if fallback is not None and fallback in logs:
            warnings.warn(f"{type(self).__name__}: {self.monitor!r} is not logged (fit has no "
                          f"validation data); monitoring {fallback!r} instead", UserWarning,
                          stacklevel=4)
            return fallback
        raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, which is not among "
                         f"the logged metrics: {', '.join(sorted(logs))}")

    def _improves(self, value: float, best: Optional[float]) -> bool:
        if math.isnan(value):
            return False
        if best is None:
            return True
        if self.maximize:
            return value - self.min_delta > best
        return value + self.min_delta < best

    def _start(self) -> None:
        self._key = None

    def _settings(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode}

    def __repr__(self) -> str:
        text = ", ".join(f"{key}={value!r}" for key, value in self._settings().items())
        return f"{type(self).__name__}({text})"


class EarlyStopping(_Monitored):
    """Stop when the monitored metric has not improved for `patience` epochs in a row.

    An epoch improves when it beats the best so far by more than min_delta. With
    restore_best_weights (the default), training ends with the parameters of the best epoch
    copied back into net.params, whether it stopped early or ran all its epochs.
    After fit: best, best_epoch, stopped_epoch (None if it ran to the end).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = _integer(patience, "patience", 0)
        self.restore_best_weights = bool(restore_best_weights)
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.best_weights: Optional[np.ndarray] = None
        self.stopped_epoch: Optional[int] = None
        self.wait = 0

    def on_train_begin(self, net: "Network") -> None:
        self._start()
        self.best = None
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        value = self._monitored(logs)
        if self._improves(value, self.best):
            self.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = net.params.copy()
            return None
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return None

    def on_train_end(self, net: "Network") -> None:
        if self.restore_best_weights and self.best_weights is not None:
            net.params = self.best_weights

    def _settings(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "min_delta": self.min_delta, "patience": self.patience,
                "mode": self.mode, "restore_best_weights": self.restore_best_weights}


class ModelCheckpoint(_Monitored):
    """Save the network with net.save after every epoch, or with save_best_only only after an
    epoch that improves the monitored metric.

    path: a file path; braces are filled from the epoch (counted from 1) and its logs with
    str.format, e.g. "model-{epoch:03d}-{val_loss:.4f}.npz" keeps one file per save.
    save_optimizer: also store the optimizer's state (see backprop.io). Each file is written
    atomically, so an interrupted run never leaves a half-written model.
    After fit: best, and saved, the list of (epoch, path) written.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto",
                 save_optimizer: bool = False) -> None:
        super().__init__(monitor, mode)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self.save_optimizer = bool(save_optimizer)
        self.best: Optional[float] = None
        self.saved: list[tuple[int, str]] = []

    def on_train_begin(self, net: "Network") -> None:
        self._start()
        self.best = None
        self.saved = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        if self.save_best_only:
            value = self._monitored(logs)
            if not self._improves(value, self.best):
                return None
            self.best = value
        target = self._target(epoch, logs)
        net.save(target, optimizer=self.optimizer if self.save_optimizer else None)
        self.saved.append((epoch, target))
        return None

    def _target(self, epoch: int, logs: dict[str, float]) -> str:
        if "{" not in self.path:
            return self.path
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError) as error:
            raise ValueError(f"ModelCheckpoint path {self.path!r} names {error}, which is not "
                             f"among epoch and the logged metrics: {', '.join(sorted(logs))}") from None

    def _settings(self) -> dict[str, Any]:
        return {"path": self.path, "monitor": self.monitor, "save_best_only": self.save_best_only,
                "mode": self.mode, "save_optimizer": self.save_optimizer}


class ReduceLROnPlateau(_Monitored):
    """Multiply the optimizer's lr by `factor` once the monitored metric has gone `patience`
    epochs without improving by more than min_delta, never going below min_lr (Keras's
    arguments and counting). The `cooldown` epochs after a reduction are not counted, as in
    torch (Keras already counts the last of them).
    After fit: reductions, the list of (epoch, new lr).
    """

    changes_lr = True

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_lr: float = 0.0, cooldown: int = 0, min_delta: float = 1e-4,
                 mode: str = "auto") -> None:
        super().__init__(monitor, mode, min_delta)
        self.factor = _number(factor, "factor", low_open=True, high=1.0)
        self.patience = _integer(patience, "patience", 0)
        self.min_lr = _number(min_lr, "min_lr")
        self.cooldown = _integer(cooldown, "cooldown", 0)
        self.best: Optional[float] = None
        self.wait = 0
        self.cooldown_left = 0
        self.reductions: list[tuple[int, float]] = []

    def on_train_begin(self, net: "Network") -> None:
        self._start()
        self.best = None
        self.wait = 0
        self.cooldown_left = 0
        self.reductions = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        if self.optimizer is None:
            raise RuntimeError("ReduceLROnPlateau has no optimizer: fit sets it; when calling the "
                               "callback yourself, set its optimizer attribute first")
        value = self._monitored(logs)
        cooling = self.cooldown_left > 0
        if cooling:
            self.cooldown_left -= 1
        if self._improves(value, self.best):
            self.best = value
            self.wait = 0
        elif not cooling:
            self.wait += 1
            if self.wait >= self.patience and self.optimizer.lr > self.min_lr:
                self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
                self.reductions.append((epoch, self.optimizer.lr))
                self.cooldown_left = self.cooldown
                self.wait = 0
        return None

    def _settings(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "factor": self.factor, "patience": self.patience,
                "min_lr": self.min_lr, "cooldown": self.cooldown, "min_delta": self.min_delta,
                "mode": self.mode}


class TerminateOnNaN(Callback):
    """Stop training cleanly on a NaN or Inf loss instead of raising.

    Without it, fit raises FloatingPointError when a batch's loss is not finite. With it among
    the callbacks, fit instead warns (RuntimeWarning), ends training as after an early stop and
    returns the history of the finished epochs; the parameters are those of the last good step
    (the failing step makes no update). It also stops after an epoch whose logs hold a
    non-finite value, such as an infinite val_loss.
    After fit: stopped_epoch and message (None if training was not stopped).
    """

    def __init__(self) -> None:
        self.stopped_epoch: Optional[int] = None
        self.message: Optional[str] = None

    def on_train_begin(self, net: "Network") -> None:
        self.stopped_epoch = None
        self.message = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: "Network") -> Optional[bool]:
        bad = [key for key, value in logs.items() if not math.isfinite(value)]
        if bad:
            self.stop(epoch, f"{', '.join(bad)} not finite after epoch {epoch + 1}; training stopped")
            return True
        return None

    def stop(self, epoch: int, message: str) -> None:
        """Record and warn why training stopped (fit calls this on a non-finite batch loss)."""
        self.stopped_epoch = epoch
        self.message = message
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def __repr__(self) -> str:
        return "TerminateOnNaN()"


def as_callback(item: Any) -> Callback:
    if isinstance(item, Callback):
        return item
    if callable(item):
        return LambdaCallback(item)
    raise TypeError(f"callbacks must be Callback objects or functions; got {type(item).__name__}")
