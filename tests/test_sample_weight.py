"""Sample weights scale each sample's loss and gradient, in every entry point that takes them."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _problem(loss, rows=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 5))
    if loss == "cross_entropy":
        y = rng.integers(0, 3, rows)
    else:
        y = rng.uniform(0, 1, (rows, 3))
    net = bp.Network([5, 6, 3], activation="tanh", loss=loss, reduction="sum", dtype="float64",
                     seed=seed)
    return net, X, y


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_integer_weights_equal_repeating_the_rows(loss):
    net, X, y = _problem(loss)
    weights = np.array([0, 1, 2, 3, 1, 0, 2, 1])
    repeated = np.repeat(np.arange(len(X)), weights)
    loss_w, grad_w = net.loss_and_grad(X, y, sample_weight=weights)
    loss_r, grad_r = net.loss_and_grad(X[repeated], y[repeated])
    assert loss_w == pytest.approx(loss_r, rel=1e-12)
    np.testing.assert_allclose(grad_w, grad_r, rtol=1e-10, atol=1e-13)
    assert net.loss(X, y, sample_weight=weights) == pytest.approx(loss_r, rel=1e-12)


def test_mean_reduction_divides_by_the_number_of_samples():
    net, X, y = _problem("mse")
    mean_net = bp.Network([5, 6, 3], activation="tanh", loss="mse", reduction="mean",
                          dtype="float64", seed=0)
    weights = np.linspace(0.5, 2.0, len(X))
    assert mean_net.loss(X, y, weights) == pytest.approx(net.loss(X, y, weights) / len(X), rel=1e-12)


def test_unit_weights_change_nothing():
    net, X, y = _problem("cross_entropy")
    plain = net.loss_and_grad(X, y)
    ones = net.loss_and_grad(X, y, sample_weight=np.ones(len(X)))
    assert plain[0] == ones[0]
    assert plain[1].tobytes() == ones[1].tobytes()


def test_weighted_gradient_matches_finite_differences():
    net, X, y = _problem("binary_cross_entropy", seed=3)
    weights = np.random.default_rng(4).uniform(0, 3, len(X))
    _, grads = net.loss_and_grad(X, y, sample_weight=weights)
    params = net.params
    eps = 1e-6
    for index in range(0, net.n_params, 7):
        keep = params[index]
        params[index] = keep + eps
        upper = net.loss(X, y, weights)
        params[index] = keep - eps
        lower = net.loss(X, y, weights)
        params[index] = keep
        assert grads[index] == pytest.approx((upper - lower) / (2 * eps), rel=1e-5, abs=1e-8)


def test_train_step_with_weights_equals_the_repeated_batch():
    net, X, y = _problem("cross_entropy", seed=5)
    twin = net.copy()
    weights = np.array([1, 2, 1, 1, 3, 1, 1, 2])
    repeated = np.repeat(np.arange(len(X)), weights)
    net.train_step(X, y, bp.optim.SGD(lr=0.1), sample_weight=weights)
    twin.train_step(X[repeated], y[repeated], bp.optim.SGD(lr=0.1))
    np.testing.assert_allclose(net.params, twin.params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weights, error, match", [
    (np.ones(3), ValueError, r"sample_weight must have shape \(8,\)"),
    (np.ones((8, 1)), ValueError, r"sample_weight must have shape \(8,\)"),
    (-np.ones(8), ValueError, "sample_weight must be >= 0"),
    (np.full(8, np.nan), ValueError, "sample_weight contains NaN or Inf"),
    (np.array(["a"] * 8), TypeError, "sample_weight must hold real numbers"),
])
def test_bad_weights_are_refused_and_change_nothing(weights, error, match):
    net, X, y = _problem("mse")
    before = net.params.copy()
    with pytest.raises(error, match=match):
        net.train_step(X, y, bp.optim.SGD(lr=0.1), sample_weight=weights)
    assert net.params.tobytes() == before.tobytes()
