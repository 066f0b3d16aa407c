"""How many threads the native kernels use."""

from __future__ import annotations

import operator
import warnings

from . import _core


def set_num_threads(n: int) -> None:
    """Use n threads (n >= 1) in every native kernel, from any Python thread.

    The default is OpenMP's, which follows the OMP_NUM_THREADS environment variable. Results do
    not depend on the count: threads split outputs, never a sum. In a child process made by
    fork() (multiprocessing's default on Linux) the count is 1: OpenMP cannot run there.
    """
    try:
        count = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an int; got {type(n).__name__}") from None
    if count < 1:
        raise ValueError(f"n must be at least 1; got {count}")
    if count > 1 and _core.in_forked_child():
        warnings.warn("this process was made by fork(), where OpenMP's thread pool does not "
                      "work; backprop stays on one thread here", RuntimeWarning, stacklevel=2)
    _core.set_num_threads(count)


def get_num_threads() -> int:
    """The number of threads the native kernels use."""
    return int(_core.get_num_threads())
