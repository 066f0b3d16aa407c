"""The training loop: shuffled mini-batch epochs, each run natively, with history and progress."""

from __future__ import annotations

import math
import numbers
import operator
import signal
import threading
import warnings
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Protocol, Sequence, Union, cast

import numpy as np

from ._arrays import as_sample_weight
from .callbacks import TerminateOnNaN, as_callback
from .metrics import check_metrics, metric_values
from .optim import SGD, Optimizer
from .progress import EpochProgress, format_logs
from .schedules import Schedule

if TYPE_CHECKING:
    from .network import Network

# With a progress bar, an epoch is split into about this many native calls so the bar moves;
# the calls split at batch boundaries, so the result is the same as one call.
_PROGRESS_STEPS_PER_EPOCH = 20


class _FullBatchOptimizer(Protocol):
    """What fit uses of an optimizer whose full_batch is true (LBFGS, LevenbergMarquardt)."""

    def run_epoch(self, net: Network, x: np.ndarray, t: np.ndarray,
                  sample_weight: Optional[np.ndarray] = None) -> dict[str, float]: ...


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

    def plot(self, path: Any = None, *, metrics: Optional[Sequence[str]] = None) -> Any:
        """Draw the training and validation curves (one panel per metric, epochs on x) and
        return the matplotlib Figure; with path, also write the picture there (PNG unless the
        extension names another format). metrics: the names to draw (default: the loss and
        every logged metric). Needs matplotlib: pip install "backprop[plot]"."""
        from .plots import plot_history

        return plot_history(self, path, metrics=metrics)


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


def _validation_split(split: Any, n_rows: int) -> int:
    """The first validation row: the last `split` share of the rows, as Keras takes them
    (training keeps floor(n_rows * (1 - split)) rows)."""
    if isinstance(split, bool) or not isinstance(split, numbers.Real):
        raise TypeError(f"validation_split must be a float in (0, 1); got {type(split).__name__}")
    share = float(split)
    if not 0.0 < share < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {split!r}")
    # In the decimal the float was written as (its shortest repr), so that 0.9 of 40 rows is
    # 36, not the 37 that 1 - 0.9 = 0.09999999999999998 would give.
    first = math.floor(n_rows * (1 - Fraction(repr(share))))
    if first == 0:  # (a share > 0 always leaves at least one validation row)
        raise ValueError(f"validation_split={split!r} of {n_rows} samples leaves 0 for training "
                         f"and {n_rows} for validation; training needs at least one")
    return first


def _training_weights(net: "Network", t: np.ndarray, sample_weight: Any,
                      class_weight: Any) -> Optional[np.ndarray]:
    """Per-row weights from sample_weight and class_weight, or None when neither is given."""
    weights = None if sample_weight is None else as_sample_weight(sample_weight, t.shape[0], net.dtype)
    if class_weight is None:
        return weights
    if not net.is_classifier:
        raise ValueError("class_weight needs a classifier (loss cross_entropy or binary_cross_entropy)")
    if net.loss_name == "binary_cross_entropy" and net.n_outputs != 1:
        raise ValueError("class_weight needs one class per row: a single binary output or cross_entropy")
    classes = (t[:, 0] > 0.5).astype(np.int64) if t.shape[1] == 1 else t.argmax(axis=1)
    n_classes = max(2, t.shape[1])
    counts = np.bincount(classes, minlength=n_classes)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced'; got {class_weight!r}")
        present = counts > 0
        table = np.zeros(n_classes)
        table[present] = t.shape[0] / (present.sum() * counts[present])
    elif isinstance(class_weight, dict):
        table = np.ones(n_classes)
        for key, value in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_classes:
                raise ValueError(f"class_weight keys must be class ids 0..{n_classes - 1}; got {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not np.isfinite(value) or value < 0:
                raise ValueError(f"class_weight[{key}] must be a finite number >= 0; got {value!r}")
            table[int(key)] = float(value)
    else:
        raise TypeError(f"class_weight must be a dict or 'balanced'; got {type(class_weight).__name__}")
    per_row = table[classes].astype(net.dtype)
    # numpy types fancy indexing and array arithmetic as Any.
    return cast(np.ndarray, per_row if weights is None else weights * per_row)


def _set_lr(optimizer: Optimizer, lr: float) -> None:
    optimizer.lr = lr


def _scheduled_lr(schedule: Union[Schedule, Callable[[int], float]], epoch: int,
                  start_lr: float) -> float:
    if isinstance(schedule, Schedule):
        lr = schedule.lr_at(epoch, None if schedule.base_lr is not None else start_lr)
    else:
        lr = schedule(epoch)
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"schedule returned {lr!r} for epoch {epoch}; expected a number") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"schedule returned lr {lr!r} for epoch {epoch}; expected a finite lr >= 0")
    return value


class _DeferredInterrupt:
    """Holds Ctrl-C (SIGINT) back until fit reaches a point between native calls, where the
    parameters, optimizer state and step count agree, and raises KeyboardInterrupt there.

    Installed only from the main thread over Python's default handler (never over someone
    else's). A second Ctrl-C before the next such point interrupts at once.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None

    def __enter__(self) -> "_DeferredInterrupt":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if kind is None:
            self.check()


def fit(net: "Network", X: Any, y: Any, *, optimizer: Optional[Optimizer] = None,
        epochs: int = 10, batch_size: Optional[int] = 32, shuffle: bool = True,
        seed: Optional[int] = None, validation_data: Optional[tuple[Any, Any]] = None,
        validation_split: Optional[float] = None,
        schedule: Optional[Union[Schedule, Callable[[int], float]]] = None,
        callbacks: Optional[Iterable[Any]] = None, verbose: int = 1,
        sample_weight: Any = None, class_weight: Any = None,
        metrics: Optional[Sequence[str]] = None) -> History:
    """Train net on (X, y) for `epochs` passes of mini-batches; returns the History.

    Each epoch (shuffle and every mini-batch update) runs natively; schedules, validation,
    callbacks and progress output run between epochs.

    optimizer: an Optimizer from backprop.optim; default SGD(lr=0.01, momentum=0.9). A
        full-batch optimizer (LevenbergMarquardt) takes one step on all the training rows per
        epoch (batch_size and shuffle do not apply), and training ends once it reports
        `converged`.
    epochs: the number of passes over the training rows (0 trains nothing).
    batch_size: rows per update; 1 is single-sample training, None the full batch. A size
        larger than the training rows warns and uses them all.
    shuffle: a new row order each epoch (False: the rows in order).
    seed: the shuffling seed; default the network's own seeded stream, so the same seeds give
        the same run.
    validation_data: (X_val, y_val), evaluated after each epoch into 'val_loss' (and
        'val_accuracy' for classifiers).
    validation_split: a float in (0, 1): hold out that share of the rows, the LAST ones as
        given (taken before any shuffling, as Keras does), as validation data; the first
        floor(n * (1 - validation_split)) rows train. Cannot be combined with validation_data.
    schedule: the learning rate per epoch: a backprop.schedules.Schedule (its base lr is its
        own base_lr, else the optimizer's lr when fit starts) or a function f(epoch) -> lr,
        epoch counting from 0. fit sets optimizer.lr before each epoch and leaves it at the
        last epoch's value. Cannot be combined with a callback that changes the lr.
    callbacks: Callback objects (see backprop.callbacks: EarlyStopping, ModelCheckpoint,
        ReduceLROnPlateau, TerminateOnNaN) or functions f(epoch, logs); fit sets each
        Callback's `optimizer` attribute first. Returning True from on_epoch_end stops training
        after that epoch. The logs hold 'loss', 'accuracy' (classifiers), the 'val_' metrics,
        and 'lr' (the epoch's learning rate) when a schedule or an lr-changing callback is used.
    verbose: 0 silent, 1 a progress bar and a line per epoch (on stderr), 2 a line per epoch
        (on stdout).
    sample_weight: one weight >= 0 per training row, scaling its loss and gradient (the mean
        still divides by the number of rows, as Keras does).
    class_weight: for classifiers, {class id: weight} or 'balanced' (n_rows / (n_classes *
        rows of the class)); multiplies sample_weight.
    metrics: names among 'accuracy', 'mse', 'mae' to log for training and validation data;
        by default ['accuracy'] for classifiers and none otherwise. Training accuracy is counted
        during the epoch, before each update (as Keras does); 'mse' and 'mae' take a forward
        pass over the training rows after the epoch.

    A NaN or Inf loss raises FloatingPointError, leaving the weights of the last good step;
    with a TerminateOnNaN callback, fit instead warns and returns the history of the finished
    epochs. Ctrl-C (KeyboardInterrupt) takes effect between native calls, so the network keeps
    the consistent weights of the last finished step; the progress bar is closed and the
    exception re-raised. Any exception raised while training carries the history of the
    finished epochs as `error.history`.
    """
    x, t = net._data(X, y)
    names = check_metrics(metrics, net.is_classifier)
    weights = _training_weights(net, t, sample_weight, class_weight)
    if optimizer is None:
        optimizer = SGD(lr=0.01, momentum=0.9)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a backprop.optim.Optimizer; got {type(optimizer).__name__}")
    net.optimizer = optimizer  # partial_fit goes on with it
    try:
        n_epochs = operator.index(epochs)
    except TypeError:
        raise TypeError(f"epochs must be an int; got {type(epochs).__name__}") from None
    if n_epochs < 0:
        raise ValueError(f"epochs must be >= 0; got {n_epochs}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    validation = None
    if validation_data is not None and validation_split is not None:
        raise ValueError("validation_data and validation_split are mutually exclusive; pass one")
    if validation_data is not None:
        if not isinstance(validation_data, tuple) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (X_val, y_val)")
        validation = net._data(*validation_data, names=("validation_data X_val", "validation_data y_val"))
    elif validation_split is not None:
        first = _validation_split(validation_split, x.shape[0])
        validation = (x[first:], t[first:])
        x, t = x[:first], t[:first]
        weights = None if weights is None else weights[:first]
    n_rows = x.shape[0]
    # A full-batch optimizer (LevenbergMarquardt) trains each epoch itself, on all the rows.
    full_batch = bool(getattr(optimizer, "full_batch", False))
    size = n_rows if full_batch else _batch_size(batch_size, n_rows)
    rng = net.shuffle_rng if seed is None else np.random.default_rng(seed)
    if callbacks is not None and (callable(callbacks) or not isinstance(callbacks, (list, tuple))):
        raise TypeError(f"callbacks must be a list of Callback objects or functions; got "
                        f"{type(callbacks).__name__}")
    hooks = [as_callback(item) for item in (callbacks or [])]
    changing_lr = [hook for hook in hooks if getattr(hook, "changes_lr", False)]
    if schedule is not None:
        if not (isinstance(schedule, Schedule) or callable(schedule)):
            raise TypeError(f"schedule must be a backprop.schedules.Schedule or a function "
                            f"f(epoch) -> lr; got {type(schedule).__name__}")
        if changing_lr:
            raise ValueError(f"schedule and {type(changing_lr[0]).__name__} both set the learning "
                             "rate (the schedule would undo its changes every epoch); use one")
    log_lr = schedule is not None or bool(changing_lr)
    terminator = next((hook for hook in hooks if isinstance(hook, TerminateOnNaN)), None)
    start_lr = optimizer.lr

    batches = math.ceil(n_rows / size)
    chunk = size * (max(1, batches // _PROGRESS_STEPS_PER_EPOCH) if verbose == 1 else batches)
    progress = EpochProgress(n_epochs, batches) if verbose == 1 else None
    history = History()
    state = optimizer.state_for(net.params)
    try:
        with _DeferredInterrupt() as interrupt:
            for hook in hooks:
                hook.optimizer = optimizer
                hook.on_train_begin(net)
            for epoch in range(n_epochs):
                if schedule is not None:
                    _set_lr(optimizer, _scheduled_lr(schedule, epoch, start_lr))
                for hook in hooks:
                    hook.on_epoch_begin(epoch, net)
                epoch_lr = optimizer.lr
                failure = None
                if full_batch:
                    # full_batch was read from the optimizer above; such optimizers have run_epoch.
                    epoch_trainer = cast(_FullBatchOptimizer, optimizer)
                    logs = {key: float(value)
                            for key, value in epoch_trainer.run_epoch(net, x, t, weights).items()}
                    if progress is not None:
                        progress.advance(1)
                    if not math.isfinite(logs["loss"]):
                        failure = (f"the loss became NaN or Inf in epoch {epoch + 1}; training "
                                   "stopped with the weights of the last good step")
                else:
                    order = rng.permutation(n_rows) if shuffle else np.arange(n_rows)
                    order = order.astype(np.int64, copy=False)
                    loss_sum, correct = 0.0, 0
                    for start in range(0, n_rows, chunk):
                        result = net._engine.train_epoch(net.params, net._grads, state,
                                                         optimizer.native_spec(), x, t,
                                                         order[start:start + chunk], size,
                                                         weights)
                        optimizer.steps += result["batches"]
                        if progress is not None:
                            progress.advance(result["batches"])
                        if result["failed_batch"] >= 0:
                            failed = start // size + result["failed_batch"]
                            failure = (f"the loss or the update became NaN or Inf in epoch "
                                       f"{epoch + 1}, batch {failed + 1}; training stopped with "
                                       "the weights of the last good step (try a smaller "
                                       "learning rate)")
                            break
                        loss_sum += result["loss_sum"]
                        correct += result["correct"]
                        interrupt.check()
                    logs = {"loss": loss_sum / n_rows if net.reduction == "mean" else loss_sum}
                    if "accuracy" in names:
                        counted = n_rows * (net.n_outputs if net.multilabel_accuracy else 1)
                        logs["accuracy"] = correct / counted
                if failure is not None:
                    if terminator is None:
                        raise FloatingPointError(failure)
                    terminator.stop(epoch, failure)
                    break
                after = [name for name in names if name not in logs]
                if after:  # metrics not counted during the epoch: from the trained weights
                    logs.update(metric_values(after, net.forward(x), t, net.multilabel_accuracy))
                if validation is not None:
                    for key, value in net.evaluate(*validation, metrics=names).items():
                        logs["val_" + key] = value
                if log_lr:
                    logs["lr"] = float(epoch_lr)
                history.append(epoch, logs)
                if progress is not None:
                    progress.epoch_end(epoch, logs)
                elif verbose == 2:
                    print(f"epoch {epoch + 1}/{n_epochs}  {format_logs(logs)}", flush=True)
                # Each callback gets its own copy, so one cannot change what the next one sees.
                stop = [hook.on_epoch_end(epoch, dict(logs), net) for hook in hooks]
                interrupt.check()
                if any(stop) or getattr(optimizer, "converged", False):
                    break
            if progress is not None:
                progress.close()
                progress = None
            for hook in hooks:
                hook.on_train_end(net)
    except BaseException as error:
        try:
            error.history = history  # type: ignore[attr-defined]
        except AttributeError:  # an exception type with __slots__
            pass
        raise
    finally:
        if progress is not None:
            progress.close()
    return history
