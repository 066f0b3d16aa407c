"""The training loop: shuffled mini-batch epochs, each run natively, with history and progress."""

from __future__ import annotations

import math
import operator
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Optional

import numpy as np

from .callbacks import as_callback
from .optim import SGD, Optimizer
from .progress import EpochProgress, format_logs

if TYPE_CHECKING:
    from .network import Network

# With a progress bar, an epoch is split into about this many native calls so the bar moves;
# the calls split at batch boundaries, so the result is the same as one call.
_PROGRESS_STEPS_PER_EPOCH = 20


class History:
    """Per-epoch metrics: history['loss'], ['accuracy'], ['val_loss'], ['val_accuracy']."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {key: values[-1] for key, values in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _batch_size(batch_size: Optional[int], n_rows: int) -> int:
    if batch_size is None:
        return n_rows
    try:
        size = operator.index(batch_size)
    except TypeError:
        raise TypeError(f"batch_size must be an int or None; got {type(batch_size).__name__}") from None
    if size < 1:
        raise ValueError(f"batch_size must be at least 1 (or None for the full batch); got {size}")
    if size > n_rows:
        warnings.warn(f"batch_size {size} is larger than the {n_rows} samples; using {n_rows}",
                      UserWarning, stacklevel=3)
        return n_rows
    return size


def fit(net: "Network", X: Any, y: Any, *, optimizer: Optional[Optimizer] = None,
        epochs: int = 10, batch_size: Optional[int] = 32, shuffle: bool = True,
        seed: Optional[int] = None, validation_data: Optional[tuple[Any, Any]] = None,
        callbacks: Optional[Iterable[Any]] = None, verbose: int = 1) -> History:
    """Train net on (X, y) for `epochs` passes of mini-batches.

    optimizer: default SGD(lr=0.01, momentum=0.9). batch_size: 1 is single-sample training,
    None the full batch. shuffle: a new order each epoch, drawn from `seed` (default: the
    network's own seeded stream, so the same seeds give the same run). validation_data:
    (X_val, y_val) evaluated after each epoch. callbacks: Callback objects or functions
    f(epoch, logs); True from one stops training. verbose: 0 silent, 1 progress bar and a line
    per epoch, 2 a line per epoch.

    A NaN or Inf loss raises FloatingPointError, leaving the weights of the last good step.
    """
    x, t = net._data(X, y)
    if optimizer is None:
        optimizer = SGD(lr=0.01, momentum=0.9)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a backprop.optim.Optimizer; got {type(optimizer).__name__}")
    try:
        n_epochs = operator.index(epochs)
    except TypeError:
        raise TypeError(f"epochs must be an int; got {type(epochs).__name__}") from None
    if n_epochs < 0:
        raise ValueError(f"epochs must be >= 0; got {n_epochs}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    n_rows = x.shape[0]
    size = _batch_size(batch_size, n_rows)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (X_val, y_val)")
        validation = net._data(*validation_data)
    rng = net.shuffle_rng if seed is None else np.random.default_rng(seed)
    hooks = [as_callback(item) for item in (callbacks or [])]

    batches = math.ceil(n_rows / size)
    chunk = size * (max(1, batches // _PROGRESS_STEPS_PER_EPOCH) if verbose == 1 else batches)
    progress = EpochProgress(n_epochs, batches) if verbose == 1 else None
    history = History()
    state = optimizer.state_for(net.params)
    for hook in hooks:
        hook.on_train_begin(net)
    try:
        for epoch in range(n_epochs):
            order = rng.permutation(n_rows) if shuffle else np.arange(n_rows)
            order = order.astype(np.int64, copy=False)
            loss_sum, correct = 0.0, 0
            for start in range(0, n_rows, chunk):
                result = net._engine.train_epoch(net.params, net._grads, state,
                                                 optimizer.native_spec(), x, t,
                                                 order[start:start + chunk], size)
                optimizer.steps += result["batches"]
                if result["failed_batch"] >= 0:
                    failed = start // size + result["failed_batch"]
                    raise FloatingPointError(
                        f"the loss became NaN or Inf in epoch {epoch + 1}, batch {failed + 1}; "
                        "training stopped with the weights of the last good step "
                        "(try a smaller learning rate)"
                    )
                loss_sum += result["loss_sum"]
                correct += result["correct"]
                if progress is not None:
                    progress.advance(result["batches"])
            logs = {"loss": loss_sum / n_rows if net.reduction == "mean" else loss_sum}
            if net.is_classifier:
                logs["accuracy"] = correct / n_rows
            if validation is not None:
                for key, value in net.evaluate(*validation).items():
                    logs["val_" + key] = value
            history.append(epoch, logs)
            if progress is not None:
                progress.epoch_end(epoch, logs)
            elif verbose == 2:
                print(f"epoch {epoch + 1}/{n_epochs}  {format_logs(logs)}", flush=True)
            stop = [hook.on_epoch_end(epoch, logs, net) for hook in hooks]
            if any(stop):
                break
    finally:
        if progress is not None:
            progress.close()
    for hook in hooks:
        hook.on_train_end(net)
    return history
