"""Faults and long runs: concurrent training from Python threads, memory over 100,000 steps,
and float32 against float64 on real data."""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

import backprop as bp


def _digits():
    X, y = bp.datasets.load_digits(dtype="float32")
    return bp.datasets.train_test_split(X, y, test_size=0.25, seed=0)


def _train(seed, X, y, out, key):
    net = bp.Network([64, 128, 10], seed=seed)
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=4, batch_size=32,
            verbose=0, seed=seed)
    out[key] = net.params.copy()


def test_two_python_threads_training_two_networks_match_one_after_another():
    X, _, y, _ = _digits()
    alone: dict = {}
    _train(1, X, y, alone, "a")
    _train(2, X, y, alone, "b")
    together: dict = {}
    workers = [threading.Thread(target=_train, args=(seed, X, y, together, key))
               for seed, key in ((1, "a"), (2, "b"))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers)
    assert together["a"].tobytes() == alone["a"].tobytes()
    assert together["b"].tobytes() == alone["b"].tobytes()


def test_two_threads_sharing_one_network_are_serialised_not_corrupted():
    X, _, y, _ = _digits()
    net = bp.Network([64, 32, 10], seed=0)
    errors = []

    def evaluate():
        try:
            for _ in range(50):
                assert np.isfinite(net.forward(X)).all()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=evaluate) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors
    assert net.forward(X[:5]).tobytes() == net.forward(X[:5]).tobytes()


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's quarantine keeps freed memory resident by design")
def test_memory_stays_flat_over_100000_training_steps():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 16)).astype(np.float32)
    y = rng.integers(0, 4, 4000)
    net = bp.Network([16, 32, 4], seed=0)
    optimizer = bp.optim.Adam(lr=1e-3)
    # Warm-up: every workspace and buffer is sized by the first epochs.
    net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=8, verbose=0)
    for start in range(0, 400, 8):
        net.train_step(X[start:start + 8], y[start:start + 8], optimizer)
    # Garbage left by earlier tests is collected first, so that freeing it cannot move either
    # reading; the check is for growth (a fall is not a leak).
    gc.collect()
    before = _resident_bytes()
    steps = optimizer.steps
    net.fit(X, y, optimizer=optimizer, epochs=190, batch_size=8, verbose=0)  # 95,000 steps
    for start in range(0, 40_000, 8):  # and 5,000 steps called from Python one at a time
        rows = slice(start % 4000, start % 4000 + 8)
        net.train_step(X[rows], y[rows], optimizer)
    gc.collect()
    after = _resident_bytes()
    assert optimizer.steps - steps == 100_000
    assert after - before <= 0.01 * before, (before, after)


def test_float32_and_float64_training_on_digits_end_within_one_percent():
    X_train, X_test, y_train, y_test = _digits()
    accuracy = {}
    for dtype in ("float32", "float64"):
        net = bp.Network([64, 64, 10], dtype=dtype, seed=0)
        net.fit(X_train, y_train, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=20,
                batch_size=32, verbose=0, seed=0)
        accuracy[dtype] = net.evaluate(X_test, y_test)["accuracy"]
    assert accuracy["float32"] >= 0.95
    assert abs(accuracy["float32"] - accuracy["float64"]) <= 0.01


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss, output", [("cross_entropy", "softmax"),
                                          ("binary_cross_entropy", "sigmoid"), ("mse", "identity")])
def test_logits_of_1e4_give_finite_losses_and_gradients(dtype, loss, output):
    net = bp.Network([2, 3], output=output, loss=loss, dtype=dtype, seed=0)
    net.params[...] = 0
    net.layers[0].W[...] = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    y = np.array([1, 0, 2]) if loss == "cross_entropy" else np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0.0]])
    value, grads = net.loss_and_grad(X, y)
    assert np.isfinite(value) and np.isfinite(grads).all()
    assert value > 1.0  # the confident wrong answers cost a lot, without overflowing
