"""Pictures of training: the loss and metric curves of a History, drawn with matplotlib.

matplotlib is optional (pip install "backprop[plot]") and imported only when a picture is
drawn. Figures are made with matplotlib's object API on the Agg canvas, so drawing never
touches pyplot's global state or the backend a notebook or GUI has chosen.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from .fit import History

INSTALL_HINT = 'pip install "backprop[plot]"'

_TITLES = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "mse": "Mean squared error",
    "mae": "Mean absolute error",
    "lr": "Learning rate",
}
_TRAINING_COLOR = "#1f77b4"
_VALIDATION_COLOR = "#d62728"
# Up to this many epochs each one is marked, so a short run (even one epoch) is visible.
_MARKED_EPOCHS = 40
# Up to this many epochs each gets a tick on the x axis.
_TICK_EVERY_EPOCH = 12
# A curve whose positive values span more than this factor is drawn on a log scale.
_LOG_SCALE_SPAN = 100.0


def require_matplotlib() -> tuple[Any, Any]:
    """(Figure, FigureCanvasAgg) from matplotlib; ImportError naming the install command."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}") \
            from error
    return Figure, FigureCanvasAgg


def panel_names(history: "History", metrics: Optional[Sequence[str]] = None) -> list[str]:
    """The metrics to draw, one panel each: by default the loss, then every other logged metric
    that has a training or validation curve (not the learning rate)."""
    logged = list(history.history)
    base = list(dict.fromkeys(key[4:] if key.startswith("val_") else key for key in logged))
    if metrics is None:
        names = [name for name in base if name != "lr"]
        names.sort(key=lambda name: name != "loss")  # the loss first; the rest as logged
        return names
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names; got {type(metrics).__name__}")
    if not metrics:
        raise ValueError("metrics must name at least one metric to plot")
    names = []
    for name in metrics:
        if not isinstance(name, str):
            raise TypeError(f"metrics must be a list of names; got {name!r}")
        plain = name[4:] if name.startswith("val_") else name
        if plain not in base:
            raise ValueError(f"the history has no metric {name!r}; it logged "
                             f"{', '.join(map(repr, base))}")
        names.append(plain)
    return list(dict.fromkeys(names))


def plot_history(history: "History", path: Any = None, *,
                 metrics: Optional[Sequence[str]] = None) -> Any:
    """Draw the training and validation curves of `history`, one panel per metric, and return
    the matplotlib Figure; with path, also write it there (PNG unless the name ends in another
    format matplotlib writes, such as .svg or .pdf), atomically."""
    if len(history) == 0:
        raise ValueError("the history holds no epochs: there is nothing to plot")
    names = panel_names(history, metrics)
    if not names:
        raise ValueError("the history logged no metrics: there is nothing to plot")
    target, file_format = (None, None) if path is None else picture_path(path)
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    epochs = np.asarray(history.epoch, dtype=np.int64) + 1
    figure = Figure(figsize=(4.6 * len(names), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    marker = "o" if len(epochs) <= _MARKED_EPOCHS else None
    for ax, name in zip(axes, names):
        curves = [(name, "learning rate" if name == "lr" else "training", _TRAINING_COLOR, "-"),
                  ("val_" + name, "validation", _VALIDATION_COLOR, "--")]
        drawn = []
        for key, label, color, style in curves:
            if key not in history:
                continue
            values = np.asarray(history[key], dtype=np.float64)
            ax.plot(epochs[:len(values)], values, color=color, linestyle=style, marker=marker,
                    markersize=3.5, linewidth=1.6, label=label)
            drawn.append(values)
        ax.set_title(_TITLES.get(name, name))
        ax.set_xlabel("epoch")
        if len(epochs) <= _TICK_EVERY_EPOCH:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if _wants_log_scale(name, drawn):
            ax.set_yscale("log")
            ax.set_title(f"{_TITLES.get(name, name)} (log scale)")
        if name == "accuracy":
            ax.yaxis.set_major_formatter(_percent_formatter())
        if len(epochs) == 1:
            ax.set_xlim(0.5, 1.5)
        ax.legend(loc="best", frameon=False)
    if target is not None:
        from .data_files import write_file_atomically

        write_file_atomically(target, lambda handle: figure.savefig(handle, format=file_format,
                                                                    dpi=120))
    return figure


def picture_path(path: Any) -> tuple[str, str]:
    """The file to write and its format, from the name's extension (PNG when it has none);
    ValueError for a format matplotlib cannot write."""
    try:
        target = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}") from None
    extension = os.path.splitext(target)[1].lower().lstrip(".")
    file_format = extension or "png"
    Figure, _ = require_matplotlib()
    supported = Figure().canvas.get_supported_filetypes()
    if file_format not in supported:
        raise ValueError(f"cannot write a picture as .{file_format}; use one of "
                         f"{', '.join('.' + name for name in sorted(supported))}")
    return target, file_format


def _wants_log_scale(name: str, curves: list[np.ndarray]) -> bool:
    if name in ("accuracy", "lr") or not curves:
        return False
    values = np.concatenate(curves)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() > _LOG_SCALE_SPAN)


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=None)


__all__ = ["INSTALL_HINT", "panel_names", "picture_path", "plot_history", "require_matplotlib"]
