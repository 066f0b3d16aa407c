"""A child made by fork() after the parent used the thread pool must train, not hang."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import backprop as bp

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _train_once(net: bp.Network, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=64,
            seed=3, verbose=0)
    return net.params.copy()


def _wait(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {seconds} s (OpenMP pool after fork?)")


def test_child_of_fork_trains_to_the_same_bytes(tmp_path, threads):
    threads(2)
    X, y = bp.datasets.load_digits(dtype="float32")
    X, y = X[:600], y[:600]
    # Use the thread pool in the parent first: the situation that hangs GNU OpenMP.
    expected = _train_once(bp.Network([64, 256, 10], seed=1), X, y)
    out = tmp_path / "child.npy"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            if bp.get_num_threads() == 1:
                np.save(out, _train_once(bp.Network([64, 256, 10], seed=1), X, y))
                code = 0
        finally:
            os._exit(code)
    assert _wait(pid, 60) == 0, "the child did not run on one thread"
    # Threads split outputs, never sums: one thread in the child gives the parent's bytes.
    assert np.load(out).tobytes() == expected.tobytes()


def test_set_num_threads_in_a_forked_child_warns_and_stays_at_one():
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                bp.set_num_threads(2)
            if bp.get_num_threads() == 1 and any(issubclass(w.category, RuntimeWarning) for w in caught):
                code = 0
        finally:
            os._exit(code)
    assert _wait(pid, 30) == 0
