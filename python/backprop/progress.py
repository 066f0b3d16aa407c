"""Training progress on the terminal: tqdm's bar when installed, a plain one-line bar otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

# The plain bar redraws at most this often, so a fast epoch does not flood the terminal.
_REDRAW_SECONDS = 0.1


def format_logs(logs: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4g}" if key == "lr" else f"{key} {value:.4f}"
                     for key, value in logs.items())


class EpochProgress:
    """A bar over all batches of all epochs, and one summary line per finished epoch."""

    def __init__(self, epochs: int, batches_per_epoch: int, stream: Optional[TextIO] = None) -> None:
        self.epochs = epochs
        self.total = epochs * batches_per_epoch
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        self._drawn_at = -1.0
        # The plain bar redraws with carriage returns: only on a terminal, never into a log.
        isatty = getattr(self.stream, "isatty", None)
        self._draw_bar = bool(isatty and isatty())
        self._bar: Any = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            # disable=None: tqdm draws only on a terminal; epoch lines are written regardless.
            self._bar = tqdm(total=self.total, unit="batch", file=self.stream, leave=False,
                             dynamic_ncols=True, disable=None)

    def advance(self, batches: int) -> None:
        self.done += batches
        if self._bar is not None:
            self._bar.update(batches)
        elif time.perf_counter() - self._drawn_at >= _REDRAW_SECONDS or self.done == self.total:
            self._draw()

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        line = f"epoch {epoch + 1}/{self.epochs}  {format_logs(logs)}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        elif self._draw_bar:
            self.stream.write("\r" + line.ljust(78) + "\n")
            self._draw()
        else:
            self.stream.write(line + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._draw_bar:
            self.stream.write("\r" + " " * 78 + "\r")
        self.stream.flush()

    def _draw(self) -> None:
        self._drawn_at = time.perf_counter()
        if not self._draw_bar:
            return
        width = 30
        share = self.done / self.total if self.total else 1.0
        filled = int(width * share)
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} batches  {elapsed:.1f}s")
        self.stream.flush()
