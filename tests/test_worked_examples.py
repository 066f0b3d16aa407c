"""The worked examples from the notes, evaluated by hand in the test and checked exactly (float64)
through the public Network API: logistic regression on one sample, and the two-layer sigmoid
network with squared error on a batch."""

import numpy as np
import pytest

import backprop as bp

EXACT = {"rtol": 1e-12, "atol": 1e-14}


def sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


@pytest.mark.parametrize("n, seed", [(1, 0), (3, 1), (8, 2)])
def test_logistic_regression_on_one_sample(n, seed):
    rng = np.random.default_rng(seed)
    net = bp.Network([n, 1], output="sigmoid", loss="binary_cross_entropy", reduction="sum",
                     dtype="float64", seed=seed)
    net.layers[0].b[0] = rng.uniform(-1, 1)
    w = net.layers[0].W[:, 0].copy()
    b = float(net.layers[0].b[0])
    x = rng.standard_normal(n)
    for d in (0.0, 1.0, 0.3):  # the target: either class, or a soft target
        y = sigmoid(x @ w + b)
        loss, grads = net.loss_and_grad(x.reshape(1, n), np.array([[d]]))
        dW, db = net.unflatten(grads)[0]
        dv = y - d
        np.testing.assert_allclose(dW, (dv * x).reshape(n, 1), **EXACT)
        np.testing.assert_allclose(db, [dv], **EXACT)
        expected_loss = -(d * np.log(y) + (1 - d) * np.log(1 - y))
        assert loss == pytest.approx(expected_loss, rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(net.forward(x.reshape(1, n)), [[y]], **EXACT)


@pytest.mark.parametrize("n, h, k, m", [(2, 2, 1, 4), (4, 3, 2, 5), (6, 7, 3, 16)])
def test_two_layer_sigmoid_network_with_mse_on_a_batch(n, h, k, m):
    rng = np.random.default_rng(n * 100 + m)
    net = bp.Network([n, h, k], activation="sigmoid", output="sigmoid", loss="mse",
                     reduction="mean", dtype="float64", seed=m)
    for layer in net.layers:
        layer.b[...] = rng.uniform(-1, 1, layer.b.shape)
    (W1, b1), (W2, b2) = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    X = rng.standard_normal((m, n))
    Y = rng.uniform(0, 1, (m, k))

    # forward, by hand
    H = sigmoid(X @ W1 + b1)
    Y_hat = sigmoid(H @ W2 + b2)
    expected_loss = 0.5 * np.sum((Y_hat - Y) ** 2) / m
    # backward, the batch formulas of the notes
    dV = (Y_hat - Y) * Y_hat * (1 - Y_hat) / m
    dW2 = H.T @ dV
    db2 = dV.sum(axis=0)
    dU = (dV @ W2.T) * H * (1 - H)
    dW1 = X.T @ dU
    db1 = dU.sum(axis=0)

    loss, grads = net.loss_and_grad(X, Y)
    (gW1, gb1), (gW2, gb2) = net.unflatten(grads)
    assert loss == pytest.approx(expected_loss, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(net.forward(X), Y_hat, **EXACT)
    np.testing.assert_allclose(gW2, dW2, **EXACT)
    np.testing.assert_allclose(gb2, db2, **EXACT)
    np.testing.assert_allclose(gW1, dW1, **EXACT)
    np.testing.assert_allclose(gb1, db1, **EXACT)
    np.testing.assert_allclose(grads, np.concatenate([dW1.ravel(), db1, dW2.ravel(), db2]), **EXACT)


def test_two_layer_sigmoid_network_sum_reduction_is_the_1986_error():
    # E = 1/2 sum_cases sum_units (y - d)^2, and its gradient is m times the mean's.
    rng = np.random.default_rng(9)
    mean_net = bp.Network([3, 4, 2], activation="sigmoid", output="sigmoid", loss="mse",
                          reduction="mean", dtype="float64", seed=9)
    sum_net = bp.Network([3, 4, 2], activation="sigmoid", output="sigmoid", loss="mse",
                         reduction="sum", dtype="float64", seed=9)
    X = rng.standard_normal((7, 3))
    Y = rng.uniform(0, 1, (7, 2))
    (W1, b1), (W2, b2) = [(layer.W, layer.b) for layer in sum_net.layers]
    Y_hat = sigmoid(sigmoid(X @ W1 + b1) @ W2 + b2)
    loss_sum, grads_sum = sum_net.loss_and_grad(X, Y)
    loss_mean, grads_mean = mean_net.loss_and_grad(X, Y)
    assert loss_sum == pytest.approx(0.5 * np.sum((Y_hat - Y) ** 2), rel=1e-12)
    assert loss_sum == pytest.approx(7 * loss_mean, rel=1e-12)
    np.testing.assert_allclose(grads_sum, 7 * grads_mean, **EXACT)
