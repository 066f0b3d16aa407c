"""Levenberg-Marquardt: the native Gauss-Newton system, and training with it."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import Dense


def _system(net, X, y):
    n = net.n_params
    jtj = np.zeros((n, n), net.dtype)
    jte = np.zeros(n, net.dtype)
    x, t = net._data(X, y)
    half_sse = net._engine.gauss_newton(net.params, x, t, jtj, jte)
    return half_sse, jtj, jte


def _numeric_jacobian(net, X, eps=1e-6):
    """d y_hat / d params by central differences: rows (sample, output), one column a param."""
    params = net.params
    columns = []
    for index in range(net.n_params):
        keep = params[index]
        params[index] = keep + eps
        upper = net.forward(X).ravel()
        params[index] = keep - eps
        lower = net.forward(X).ravel()
        params[index] = keep
        columns.append((upper - lower) / (2 * eps))
    return np.stack(columns, axis=1)


NETWORKS = {
    "sigmoid-out": lambda: bp.Network([3, 4, 2], activation="tanh", output="sigmoid", loss="mse",
                                      dtype="float64", seed=1),
    "identity-out": lambda: bp.Network([3, 5, 4, 2], activation="relu", output="identity",
                                       loss="mse", dtype="float64", seed=2),
    "softmax-out": lambda: bp.Network([3, 4, 3], activation="sigmoid", output="softmax",
                                      loss="mse", dtype="float64", seed=3),
    "shortcuts": lambda: bp.Network([Dense(3, 2, "tanh"), Dense(5, 2, inputs=[0, 1])],
                                    output="sigmoid", loss="mse", dtype="float64", seed=4),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_gauss_newton_system_matches_finite_differences(name):
    net = NETWORKS[name]()
    rng = np.random.default_rng(5)
    X = rng.standard_normal((7, 3))
    y = rng.uniform(0, 1, (7, net.n_outputs))
    half_sse, jtj, jte = _system(net, X, y)
    J = _numeric_jacobian(net, X)
    e = (net.forward(X) - y).ravel()
    assert half_sse == pytest.approx(0.5 * float(e @ e), rel=1e-12)
    np.testing.assert_allclose(jtj, J.T @ J, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jte, J.T @ e, rtol=1e-6, atol=1e-8)


def test_j_transpose_e_is_the_gradient_of_the_summed_squared_error():
    net = bp.Network([4, 6, 3], activation="tanh", output="sigmoid", loss="mse", reduction="sum",
                     dtype="float64", seed=6)
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((20, 4)), rng.uniform(0, 1, (20, 3))
    _, _, jte = _system(net, X, y)
    _, grads = net.loss_and_grad(X, y)
    np.testing.assert_allclose(jte, grads, rtol=1e-12, atol=1e-14)


def _symmetry_net(seed):
    return bp.Network([6, 2, 1], activation="sigmoid", output="sigmoid", loss="mse",
                      init="uniform", init_scale=0.3, dtype="float64", seed=seed)


def _epochs_to_solve(net, optimizer, X, y, limit):
    x, t = net._data(X, y)
    for epoch in range(1, limit + 1):
        if isinstance(optimizer, bp.optim.LevenbergMarquardt):
            optimizer.run_epoch(net, x, t)
        else:
            net.fit(X, y, optimizer=optimizer, epochs=1, batch_size=None, verbose=0)
        if np.array_equal((net.forward(X) > 0.5).astype(int), y.astype(int)):
            return epoch
    return limit + 1


def test_levenberg_marquardt_solves_mirror_symmetry_in_far_fewer_epochs_than_sgd():
    X, y = bp.datasets.symmetry(6)
    seed = 0  # a start from which 6-2-1 reaches the global solution (some starts do not)
    lm_epochs = _epochs_to_solve(_symmetry_net(seed), bp.optim.LevenbergMarquardt(), X, y, 200)
    sgd_epochs = _epochs_to_solve(_symmetry_net(seed), bp.optim.SGD(lr=0.5, momentum=0.9), X, y,
                                  5000)
    assert lm_epochs <= 50
    assert sgd_epochs >= 10 * lm_epochs


def test_levenberg_marquardt_never_raises_the_error():
    X, y = bp.datasets.parity(4)
    net = bp.Network([4, 4, 1], activation="tanh", output="sigmoid", loss="mse", seed=1,
                     dtype="float64")
    lm = bp.optim.LevenbergMarquardt()
    x, t = net._data(X, y)
    losses = [lm.run_epoch(net, x, t)["loss"] for _ in range(40)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < losses[0]


def test_levenberg_marquardt_refuses_what_it_cannot_do():
    X, y = bp.datasets.xor()
    lm = bp.optim.LevenbergMarquardt(max_params=5)
    net = bp.Network([2, 2, 1], activation="tanh", output="sigmoid", loss="mse")
    x, t = net._data(X, y)
    with pytest.raises(ValueError, match="more than max_params=5"):
        lm.run_epoch(net, x, t)
    ce = bp.Network([2, 2, 2], loss="cross_entropy")
    xc, tc = ce._data(X, y.ravel().astype(int))
    with pytest.raises(ValueError, match="needs loss='mse'"):
        bp.optim.LevenbergMarquardt().run_epoch(ce, xc, tc)
    with pytest.raises(ValueError, match="mu"):
        bp.optim.LevenbergMarquardt(mu=0)
