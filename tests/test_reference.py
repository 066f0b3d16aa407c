"""Checks of the NumPy oracle itself: finite differences in float64 and textbook worked examples."""

import math

import numpy as np
import pytest

import reference as ref
from reference import (
    ACTIVATIONS,
    activation_derivative,
    activation_forward,
    flatten,
    gemm,
    loss_grad,
    loss_value,
    mlp_forward,
    mlp_grad,
    mlp_loss,
    n_params,
    numerical_grad,
    one_hot,
    output_forward,
    sgd_step,
    softmax,
    train_sgd,
    unflatten,
)

# Tolerances, all in one place.
FD_EPS = 1e-6  # central-difference step (float64)
FD_RTOL = 1e-6  # backprop vs central differences
FD_ATOL = 1e-8
EXACT_RTOL = 1e-12  # hand-derived formulas evaluated in float64 vs the oracle
EXACT_ATOL = 1e-14
FLOAT32_RTOL = 1e-5  # float32 computation vs the same computation in float64
FLOAT32_ATOL = 1e-6

# Activations with their parameter, so leaky_relu and elu are also checked at a non-default alpha.
ACTIVATION_CASES = [(name, None) for name in ACTIVATIONS] + [("leaky_relu", 0.2), ("elu", 0.5)]
KINKED = {"relu", "leaky_relu", "elu"}


def _case_id(case):
    name, alpha = case
    return name if alpha is None else f"{name}-{alpha}"


def _points_away_from_kinks(rng, size, low=-4.0, high=4.0, gap=1e-2):
    u = rng.uniform(low, high, size)
    return u[np.abs(u) > gap]


def _targets(rng, loss, kind, shape):
    """Dense targets of the given kind for a loss."""
    m, n = shape
    if loss == "mse":
        return rng.standard_normal(shape)
    if loss == "binary_cross_entropy":
        if kind == "hard":
            return rng.integers(0, 2, shape).astype(np.float64)
        return rng.uniform(0, 1, shape)
    # cross_entropy
    if kind == "one_hot":
        return one_hot(rng.integers(0, n, m), n)
    if kind == "soft":
        y = rng.uniform(0.1, 1.0, shape)
        return y / y.sum(axis=1, keepdims=True)
    if kind == "unnormalised":  # non-negative weights whose rows do not sum to one
        return rng.uniform(0.0, 2.0, shape)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# gemm


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 4), (1, 1, 1), (7, 2, 13), (0, 3, 2), (4, 3, 0)])
def test_gemm_matches_matmul(trans_a, trans_b, shape):
    M, N, K = shape
    rng = np.random.default_rng(1)
    op_a = rng.standard_normal((M, K))
    op_b = rng.standard_normal((K, N))
    A = np.ascontiguousarray(op_a.T) if trans_a else op_a
    B = np.ascontiguousarray(op_b.T) if trans_b else op_b
    C = rng.standard_normal((M, N))

    np.testing.assert_allclose(gemm(A, B, trans_a=trans_a, trans_b=trans_b), op_a @ op_b,
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)
    got = gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=-1.5, beta=0.75, C=C)
    np.testing.assert_allclose(got, -1.5 * (op_a @ op_b) + 0.75 * C,
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)
    assert got is not C


def test_gemm_ignores_c_when_beta_is_zero():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    C = np.full((3, 2), np.nan)
    got = gemm(A, B, alpha=2.0, beta=0.0, C=C)
    np.testing.assert_allclose(got, 2.0 * (A @ B), rtol=EXACT_RTOL)
    assert np.isnan(C).all()  # untouched


def test_gemm_float32_stays_float32():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 6)).astype(np.float32)
    B = rng.standard_normal((6, 7)).astype(np.float32)
    C = rng.standard_normal((5, 7)).astype(np.float32)
    got = gemm(A, B, alpha=0.5, beta=2.0, C=C)
    assert got.dtype == np.float32
    want = 0.5 * (A.astype(np.float64) @ B.astype(np.float64)) + 2.0 * C.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


def test_gemm_rejects_bad_shapes():
    with pytest.raises(ValueError):
        gemm(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        gemm(np.ones((2, 3)), np.ones((3, 4)), beta=1.0)  # no C
    with pytest.raises(ValueError):
        gemm(np.ones((2, 3)), np.ones((3, 4)), beta=1.0, C=np.ones((4, 2)))


# --------------------------------------------------------------------------------------------
# activations


@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=_case_id)
def test_activation_derivative_matches_finite_differences(case):
    name, alpha = case
    rng = np.random.default_rng(4)
    u = np.concatenate([_points_away_from_kinks(rng, 400), [-30.0, -8.0, 8.0, 30.0]])
    h = FD_EPS
    numeric = (activation_forward(name, u + h, alpha) - activation_forward(name, u - h, alpha)) / (2 * h)
    np.testing.assert_allclose(activation_derivative(name, u, alpha), numeric,
                               rtol=FD_RTOL, atol=FD_ATOL)


def test_activation_forward_matches_textbook_definitions():
    u = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(activation_forward("identity", u), u)
    np.testing.assert_allclose(activation_forward("sigmoid", u), 1 / (1 + np.exp(-u)), rtol=EXACT_RTOL)
    np.testing.assert_allclose(activation_forward("tanh", u),
                               (np.exp(u) - np.exp(-u)) / (np.exp(u) + np.exp(-u)), rtol=EXACT_RTOL,
                               atol=EXACT_ATOL)
    np.testing.assert_allclose(activation_forward("relu", u), np.where(u > 0, u, 0.0))
    np.testing.assert_allclose(activation_forward("leaky_relu", u), np.where(u > 0, u, 0.01 * u))
    np.testing.assert_allclose(activation_forward("leaky_relu", u, 0.3), np.where(u > 0, u, 0.3 * u))
    np.testing.assert_allclose(activation_forward("elu", u), np.where(u > 0, u, np.exp(u) - 1),
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)
    np.testing.assert_allclose(activation_forward("elu", u, 0.5),
                               np.where(u > 0, u, 0.5 * (np.exp(u) - 1)), rtol=EXACT_RTOL,
                               atol=EXACT_ATOL)
    np.testing.assert_allclose(activation_forward("softplus", u), np.log(1 + np.exp(u)),
                               rtol=EXACT_RTOL)
    phi = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in u])
    np.testing.assert_allclose(activation_forward("gelu", u), u * phi, rtol=EXACT_RTOL,
                               atol=EXACT_ATOL)


def test_gelu_known_values():
    # Phi(1) = 0.841344746068543 (standard normal table)
    np.testing.assert_allclose(activation_forward("gelu", np.array([1.0, -1.0, 0.0])),
                               [0.8413447460685429, -0.15865525393145707, 0.0], rtol=1e-15)
    np.testing.assert_allclose(activation_derivative("gelu", np.array([0.0])), [0.5], rtol=1e-15)
    # gelu'(1) = Phi(1) + phi(1)
    np.testing.assert_allclose(activation_derivative("gelu", np.array([1.0])),
                               [0.8413447460685429 + math.exp(-0.5) / math.sqrt(2 * math.pi)],
                               rtol=1e-15)


def test_derivatives_at_the_kink_use_the_negative_side():
    zero = np.array([0.0])
    assert activation_derivative("relu", zero)[0] == 0.0
    assert activation_derivative("leaky_relu", zero)[0] == 0.01
    assert activation_derivative("leaky_relu", zero, 0.2)[0] == 0.2
    assert activation_derivative("elu", zero)[0] == 1.0
    assert activation_derivative("elu", zero, 0.5)[0] == 0.5
    assert activation_derivative("elu", np.array([-1.0]), 0.5)[0] == pytest.approx(0.5 * math.exp(-1))


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_stable_for_large_inputs(name, dtype):
    u = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        f = activation_forward(name, u)
        df = activation_derivative(name, u)
    assert f.dtype == dtype and df.dtype == dtype
    assert np.isfinite(f).all() and np.isfinite(df).all()


def test_sigmoid_and_softplus_limits():
    u = np.array([-1000.0, 1000.0])
    np.testing.assert_array_equal(activation_forward("sigmoid", u), [0.0, 1.0])
    np.testing.assert_array_equal(activation_forward("softplus", u), [0.0, 1000.0])
    np.testing.assert_array_equal(activation_derivative("sigmoid", u), [0.0, 0.0])


@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=_case_id)
def test_activations_in_float32_agree_with_float64(case):
    name, alpha = case
    u = np.random.default_rng(5).uniform(-6, 6, 300)
    for function in (activation_forward, activation_derivative):
        got = function(name, u.astype(np.float32), alpha)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, function(name, u, alpha), rtol=FLOAT32_RTOL,
                                   atol=FLOAT32_ATOL)


def test_unknown_activation_raises():
    with pytest.raises(ValueError):
        activation_forward("swish", np.zeros(3))
    with pytest.raises(ValueError):
        activation_derivative("swish", np.zeros(3))


# --------------------------------------------------------------------------------------------
# softmax and output


def test_softmax_rows_are_distributions_and_shift_invariant():
    u = np.random.default_rng(6).standard_normal((5, 4))
    p = softmax(u)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=EXACT_RTOL)
    np.testing.assert_allclose(p, np.exp(u) / np.exp(u).sum(axis=1, keepdims=True), rtol=EXACT_RTOL)
    np.testing.assert_allclose(softmax(u + 500.0), p, rtol=EXACT_RTOL)


def test_softmax_is_stable_for_large_logits():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = softmax(np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=EXACT_RTOL)


def test_output_forward_dispatches():
    u = np.random.default_rng(7).standard_normal((3, 4))
    np.testing.assert_array_equal(output_forward("softmax", u), softmax(u))
    np.testing.assert_array_equal(output_forward("tanh", u), activation_forward("tanh", u))
    np.testing.assert_array_equal(output_forward(("elu", 0.5), u), activation_forward("elu", u, 0.5))


# --------------------------------------------------------------------------------------------
# losses

LOSS_CASES = (
    [("mse", (name, alpha), "dense") for name, alpha in ACTIVATION_CASES]
    + [("mse", ("softmax", None), "dense"),
       ("binary_cross_entropy", ("sigmoid", None), "hard"),
       ("binary_cross_entropy", ("sigmoid", None), "soft"),
       ("cross_entropy", ("softmax", None), "one_hot"),
       ("cross_entropy", ("softmax", None), "soft"),
       ("cross_entropy", ("softmax", None), "unnormalised")]
)


def _loss_case_id(case):
    loss, (name, alpha), kind = case
    return f"{loss}-{_case_id((name, alpha))}-{kind}"


def _output_arg(name, alpha):
    return name if alpha is None else (name, alpha)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", LOSS_CASES, ids=_loss_case_id)
def test_loss_grad_matches_finite_differences(case, reduction):
    loss, (name, alpha), kind = case
    output = _output_arg(name, alpha)
    rng = np.random.default_rng(8)
    shape = (4, 3)
    u = _points_away_from_kinks(rng, 1000, -3.0, 3.0, gap=0.05)[: shape[0] * shape[1]].reshape(shape)
    y = _targets(rng, loss, kind, shape)

    numeric = numerical_grad(lambda v: loss_value(loss, output, v.reshape(shape), y, reduction),
                             u.ravel(), FD_EPS).reshape(shape)
    got = loss_grad(loss, output, u, y, reduction)
    assert got.shape == shape and got.dtype == np.float64
    np.testing.assert_allclose(got, numeric, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("case", LOSS_CASES, ids=_loss_case_id)
def test_loss_in_float32_agrees_with_float64(case):
    loss, (name, alpha), kind = case
    output = _output_arg(name, alpha)
    rng = np.random.default_rng(9)
    u = rng.standard_normal((6, 5))
    y = _targets(rng, loss, kind, u.shape)
    got = loss_grad(loss, output, u.astype(np.float32), y.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, loss_grad(loss, output, u, y), rtol=1e-4, atol=FLOAT32_ATOL)
    value = loss_value(loss, output, u.astype(np.float32), y)
    assert isinstance(value, float)
    assert value == pytest.approx(loss_value(loss, output, u, y), rel=1e-5)


def test_loss_values_by_hand():
    # mse: per sample 0.5 * sum of squares
    u = np.array([[1.0, 2.0], [0.0, -1.0]])
    y = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert loss_value("mse", "identity", u, y, "sum") == pytest.approx(0.5 * (1 + 4) + 0.5 * (1 + 4))
    assert loss_value("mse", "identity", u, y, "mean") == pytest.approx(2.5)

    # cross-entropy with one-hot targets is -log p_class
    u = np.array([[2.0, 1.0, 0.1], [0.5, 0.5, 3.0]])
    labels = np.array([0, 2])
    p = np.exp(u) / np.exp(u).sum(axis=1, keepdims=True)
    want = -np.log(p[[0, 1], labels])
    assert loss_value("cross_entropy", "softmax", u, one_hot(labels, 3), "sum") == pytest.approx(want.sum(), rel=1e-14)
    assert loss_value("cross_entropy", "softmax", u, one_hot(labels, 3)) == pytest.approx(want.mean(), rel=1e-14)

    # binary cross-entropy from logits equals the textbook -[d log y + (1 - d) log(1 - y)]
    u = np.array([[0.3, -1.2], [2.0, -0.4]])
    d = np.array([[1.0, 0.0], [0.25, 1.0]])
    s = 1 / (1 + np.exp(-u))
    want = -(d * np.log(s) + (1 - d) * np.log(1 - s)).sum()
    assert loss_value("binary_cross_entropy", "sigmoid", u, d, "sum") == pytest.approx(want, rel=1e-13)


def test_cross_entropies_are_stable_for_large_logits():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ce = loss_value("cross_entropy", "softmax", np.array([[1000.0, 0.0]]), np.array([[0.0, 1.0]]))
        bce = loss_value("binary_cross_entropy", "sigmoid", np.array([[1000.0, -1000.0]]),
                         np.array([[0.0, 0.0]]), "sum")
        g = loss_grad("cross_entropy", "softmax", np.array([[1000.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert ce == pytest.approx(1000.0)
    assert bce == pytest.approx(1000.0)
    np.testing.assert_allclose(g, [[1.0, -1.0]])


def test_cross_entropy_grad_is_p_minus_y_for_one_hot():
    rng = np.random.default_rng(10)
    u = rng.standard_normal((5, 4))
    y = one_hot(rng.integers(0, 4, 5), 4)
    np.testing.assert_allclose(loss_grad("cross_entropy", "softmax", u, y, "sum"), softmax(u) - y,
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)
    np.testing.assert_allclose(loss_grad("cross_entropy", "softmax", u, y), (softmax(u) - y) / 5,
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)


def test_invalid_loss_arguments_raise():
    u, y = np.zeros((2, 3)), np.zeros((2, 3))
    for loss, output in [("binary_cross_entropy", "softmax"), ("binary_cross_entropy", "tanh"),
                         ("cross_entropy", "sigmoid"), ("hinge", "identity"), ("mse", "swish")]:
        with pytest.raises(ValueError):
            loss_value(loss, output, u, y)
        with pytest.raises(ValueError):
            loss_grad(loss, output, u, y)
    with pytest.raises(ValueError):
        loss_value("mse", "identity", u, y, reduction="none")
    with pytest.raises(ValueError):
        loss_grad("mse", "identity", u, np.zeros(2))  # would broadcast silently otherwise


def test_one_hot():
    got = one_hot(np.array([2, 0, 1, 2]), 3, np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError):
        one_hot(np.array([0, 3]), 3, np.float64)
    with pytest.raises(ValueError):
        one_hot(np.array([-1]), 3, np.float64)


# --------------------------------------------------------------------------------------------
# flat parameter layout


def test_flat_layout_roundtrip_and_views():
    sizes = [4, 3, 2]
    assert n_params(sizes) == 4 * 3 + 3 + 3 * 2 + 2
    assert n_params([64, 32, 10]) == 2410
    params = np.arange(n_params(sizes), dtype=np.float64)
    layers = unflatten(params, sizes)
    (W1, b1), (W2, b2) = layers
    assert W1.shape == (4, 3) and b1.shape == (3,) and W2.shape == (3, 2) and b2.shape == (2,)
    np.testing.assert_array_equal(W1, np.arange(12).reshape(4, 3))  # row-major
    np.testing.assert_array_equal(b1, [12, 13, 14])
    np.testing.assert_array_equal(W2, np.arange(15, 21).reshape(3, 2))
    np.testing.assert_array_equal(b2, [21, 22])
    np.testing.assert_array_equal(flatten(layers), params)
    W2[1, 0] = -1.0  # a view: writes reach the flat buffer
    assert params[17] == -1.0
    with pytest.raises(ValueError):
        unflatten(params[:-1], sizes)


# --------------------------------------------------------------------------------------------
# the network

NETWORK_CASES = [
    # (layer sizes, hidden activations, output, loss)
    ([3, 2], [], "sigmoid", "binary_cross_entropy"),
    ([6, 3], [], "softmax", "cross_entropy"),
    ([2, 3, 1], "leaky_relu", "tanh", "mse"),
    ([4, 5, 3], "tanh", "softmax", "cross_entropy"),
    ([3, 4, 5, 2], [("leaky_relu", 0.1), "elu"], "identity", "mse"),
    ([5, 6, 4, 3, 3], ["gelu", "softplus", "sigmoid"], "softmax", "mse"),
    ([4, 6, 5, 3, 2], ["relu", ("elu", 0.7), "tanh"], "sigmoid", "binary_cross_entropy"),
    ([3, 5, 4, 4, 3], ["sigmoid", "identity", "gelu"], "softmax", "cross_entropy"),
    ([2, 4, 3, 3, 2], ["softplus", ("leaky_relu", 0.3), "relu"], ("elu", 0.5), "mse"),
]


def _network_id(case):
    sizes, _, output, loss = case
    return f"{'-'.join(map(str, sizes))}-{_case_id(ref._split_activation(output))}-{loss}"


def _network_problem(case, m=7, seed=11):
    sizes, _, _, loss = case
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(n_params(sizes)) * 0.7
    X = rng.standard_normal((m, sizes[0]))
    kind = {"mse": "dense", "binary_cross_entropy": "soft", "cross_entropy": "one_hot"}[loss]
    Y = _targets(rng, loss, kind, (m, sizes[-1]))
    return params, X, Y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", NETWORK_CASES, ids=_network_id)
def test_mlp_grad_matches_finite_differences(case, reduction):
    sizes, activations, output, loss = case
    params, X, Y = _network_problem(case)
    value, grads = mlp_grad(params, sizes, activations, output, loss, X, Y, reduction)
    numeric = numerical_grad(
        lambda p: mlp_loss(p, sizes, activations, output, loss, X, Y, reduction), params, FD_EPS)
    assert grads.shape == params.shape and grads.dtype == np.float64
    assert value == mlp_loss(params, sizes, activations, output, loss, X, Y, reduction)
    np.testing.assert_allclose(grads, numeric, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("case", NETWORK_CASES, ids=_network_id)
def test_mlp_grad_in_float32_agrees_with_float64(case):
    sizes, activations, output, loss = case
    params, X, Y = _network_problem(case)
    value32, grads32 = mlp_grad(params.astype(np.float32), sizes, activations, output, loss,
                                X.astype(np.float32), Y.astype(np.float32))
    value64, grads64 = mlp_grad(params, sizes, activations, output, loss, X, Y)
    assert grads32.dtype == np.float32
    assert value32 == pytest.approx(value64, rel=1e-5)
    np.testing.assert_allclose(grads32, grads64, rtol=1e-4, atol=1e-5)


def test_mlp_forward_layers():
    sizes = [3, 5, 4, 2]
    rng = np.random.default_rng(12)
    params = rng.standard_normal(n_params(sizes))
    X = rng.standard_normal((6, 3))
    pre, post = mlp_forward(params, sizes, ["tanh", ("leaky_relu", 0.2)], "softmax", X)
    (W1, b1), (W2, b2), (W3, b3) = unflatten(params, sizes)
    assert [u.shape for u in pre] == [(6, 5), (6, 4), (6, 2)]
    np.testing.assert_allclose(pre[0], X @ W1 + b1, rtol=EXACT_RTOL)
    np.testing.assert_allclose(post[0], np.tanh(pre[0]), rtol=EXACT_RTOL)
    np.testing.assert_allclose(pre[1], post[0] @ W2 + b2, rtol=EXACT_RTOL)
    np.testing.assert_allclose(post[1], np.where(pre[1] > 0, pre[1], 0.2 * pre[1]), rtol=EXACT_RTOL)
    np.testing.assert_allclose(pre[2], post[1] @ W3 + b3, rtol=EXACT_RTOL)
    np.testing.assert_allclose(post[2], softmax(pre[2]), rtol=EXACT_RTOL)

    # a single name applies to every hidden layer
    single = mlp_forward(params, sizes, "relu", "identity", X)[1][-1]
    listed = mlp_forward(params, sizes, ["relu", "relu"], "identity", X)[1][-1]
    np.testing.assert_array_equal(single, listed)
    pair = mlp_forward(params, sizes, ("elu", 0.5), "identity", X)[1][-1]
    np.testing.assert_array_equal(pair, mlp_forward(params, sizes, [("elu", 0.5)] * 2, "identity", X)[1][-1])

    pre32, post32 = mlp_forward(params.astype(np.float32), sizes, "relu", "softmax", X)
    assert all(a.dtype == np.float32 for a in pre32 + post32)
    with pytest.raises(ValueError):
        mlp_forward(params, sizes, ["relu"], "softmax", X)  # two hidden layers need two names
    with pytest.raises(ValueError):
        mlp_forward(params, sizes, "relu", "softmax", X[:, :2])


def test_mlp_accepts_integer_class_ids_for_cross_entropy():
    sizes = [4, 5, 3]
    rng = np.random.default_rng(13)
    params = rng.standard_normal(n_params(sizes))
    X = rng.standard_normal((6, 4))
    labels = rng.integers(0, 3, 6)
    by_id = mlp_grad(params, sizes, "tanh", "softmax", "cross_entropy", X, labels)
    dense = mlp_grad(params, sizes, "tanh", "softmax", "cross_entropy", X, one_hot(labels, 3))
    assert by_id[0] == dense[0]
    np.testing.assert_array_equal(by_id[1], dense[1])


def test_numerical_grad_of_a_known_function_leaves_params_alone():
    params = np.array([1.0, -2.0, 0.5, 3.0])
    weights = np.array([2.0, 1.0, -1.0, 0.5])
    before = params.copy()
    got = numerical_grad(lambda p: float(np.sum(weights * p ** 3)), params)
    np.testing.assert_allclose(got, 3 * weights * params ** 2, rtol=1e-8)
    np.testing.assert_array_equal(params, before)


# --------------------------------------------------------------------------------------------
# worked examples


def _textbook_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


@pytest.mark.parametrize("d", [1.0, 0.0, 0.3])
def test_worked_example_logistic_regression_one_sample(d):
    # One unit y = sigmoid(w.x + b), binary cross-entropy E = -[d log y + (1 - d) log(1 - y)].
    # Then dE/dv = y - d, dE/dw = (y - d) x, dE/db = y - d.
    x = np.array([1.0, 2.0, -1.5])
    w = np.array([0.2, -0.5, 0.1])
    b = 0.05
    v = w @ x + b
    y = _textbook_sigmoid(v)
    dv = y - d
    params = flatten([(w.reshape(3, 1), np.array([b]))])

    value, grads = mlp_grad(params, [3, 1], [], "sigmoid", "binary_cross_entropy",
                            x.reshape(1, 3), np.array([[d]]), "sum")
    np.testing.assert_allclose(grads, np.concatenate([dv * x, [dv]]), rtol=EXACT_RTOL,
                               atol=EXACT_ATOL)
    assert value == pytest.approx(-(d * math.log(y) + (1 - d) * math.log(1 - y)), rel=EXACT_RTOL)


def test_worked_example_two_layer_sigmoid_network_mse_batch():
    # The notes' column-major batch form: samples are the columns of X^T, layer weights are
    # A = W^T (fan_out x fan_in), and with E = (1/m) * 1/2 * sum over cases and units (y - d)^2:
    #   U = A1 X^T + b1 1^T,  Z = s(U),  V = A2 Z + b2 1^T,  Y = s(V)
    #   dV = (Y - D^T) * Y * (1 - Y),  dU = (A2^T dV) * Z * (1 - Z)
    #   dA2 = (1/m) dV Z^T,  db2 = (1/m) dV 1,  dA1 = (1/m) dU X,  db1 = (1/m) dU 1
    # and in our row-major layout dW = dA^T.
    m, n_in, n_hidden, n_out = 5, 3, 4, 2
    rng = np.random.default_rng(14)
    X = rng.standard_normal((m, n_in))
    D = rng.uniform(0, 1, (m, n_out))
    W1, b1 = rng.standard_normal((n_in, n_hidden)), rng.standard_normal(n_hidden)
    W2, b2 = rng.standard_normal((n_hidden, n_out)), rng.standard_normal(n_out)

    A1, A2 = W1.T, W2.T
    ones = np.ones((m, 1))
    U = A1 @ X.T + b1.reshape(-1, 1) @ ones.T
    Z = _textbook_sigmoid(U)
    V = A2 @ Z + b2.reshape(-1, 1) @ ones.T
    Y = _textbook_sigmoid(V)
    E = 0.5 * np.sum((Y - D.T) ** 2) / m
    dV = (Y - D.T) * Y * (1 - Y)
    dU = (A2.T @ dV) * Z * (1 - Z)
    dA2, db2 = dV @ Z.T / m, (dV @ ones).ravel() / m
    dA1, db1 = dU @ X / m, (dU @ ones).ravel() / m
    want = flatten([(dA1.T, db1), (dA2.T, db2)])

    params = flatten([(W1, b1), (W2, b2)])
    value, grads = mlp_grad(params, [n_in, n_hidden, n_out], "sigmoid", "sigmoid", "mse", X, D, "mean")
    np.testing.assert_allclose(grads, want, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    assert value == pytest.approx(E, rel=EXACT_RTOL)


# --------------------------------------------------------------------------------------------
# SGD

# One parameter p0 = 1 with gradients 0.5 then 0.25, lr = 0.1, mu = 0.9, worked out by hand.
# Each row: (momentum, nesterov, weight_decay, p1, p2, v2)
SGD_BY_HAND = [
    # plain: p1 = 1 - 0.05; p2 = 0.95 - 0.025
    (0.0, False, 0.0, 0.95, 0.925, None),
    # weight decay: g1 = 0.5 + 0.1 = 0.6, p1 = 0.94; g2 = 0.25 + 0.094 = 0.344, p2 = 0.9056
    (0.0, False, 0.1, 0.94, 0.9056, None),
    # momentum: v1 = 0.5, p1 = 0.95; v2 = 0.45 + 0.25 = 0.7, p2 = 0.95 - 0.07
    (0.9, False, 0.0, 0.95, 0.88, 0.7),
    # nesterov: v1 = 0.5, step 0.5 + 0.45, p1 = 0.905; v2 = 0.7, step 0.25 + 0.63, p2 = 0.817
    (0.9, True, 0.0, 0.905, 0.817, 0.7),
    # momentum + decay: g1 = 0.6 = v1, p1 = 0.94; g2 = 0.344, v2 = 0.54 + 0.344, p2 = 0.94 - 0.0884
    (0.9, False, 0.1, 0.94, 0.8516, 0.884),
    # nesterov + decay: g1 = 0.6 = v1, step 0.6 + 0.54, p1 = 0.886; g2 = 0.25 + 0.0886 = 0.3386,
    # v2 = 0.54 + 0.3386 = 0.8786, step 0.3386 + 0.79074 = 1.12934, p2 = 0.886 - 0.112934
    (0.9, True, 0.1, 0.886, 0.773066, 0.8786),
]


@pytest.mark.parametrize("momentum, nesterov, weight_decay, p1, p2, v2", SGD_BY_HAND)
def test_sgd_two_steps_by_hand(momentum, nesterov, weight_decay, p1, p2, v2):
    # The second entry is the first scaled by -2: every quantity in these updates is linear.
    scale = np.array([1.0, -2.0])
    params = 1.0 * scale
    g1, g2 = 0.5 * scale, 0.25 * scale
    kwargs = dict(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    inputs = (params.copy(), g1.copy())

    params1, velocity1 = sgd_step(params, g1, None, **kwargs)
    np.testing.assert_array_equal(params, inputs[0])  # inputs untouched
    np.testing.assert_array_equal(g1, inputs[1])
    params2, velocity2 = sgd_step(params1, g2, velocity1, **kwargs)
    np.testing.assert_allclose(params1, p1 * scale, rtol=EXACT_RTOL)
    np.testing.assert_allclose(params2, p2 * scale, rtol=EXACT_RTOL)
    if v2 is not None:
        np.testing.assert_allclose(velocity2, v2 * scale, rtol=EXACT_RTOL)

    # the same in float32 stays float32
    params32, velocity32 = sgd_step(params.astype(np.float32), g1.astype(np.float32),
                                    np.zeros(2, np.float32), **kwargs)
    assert params32.dtype == np.float32 and velocity32.dtype == np.float32
    np.testing.assert_allclose(params32, p1 * scale, rtol=1e-6)


def test_sgd_zero_velocity_equals_none():
    params, grads = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    a = sgd_step(params, grads, None, lr=0.1, momentum=0.9, nesterov=True)
    b = sgd_step(params, grads, np.zeros(2), lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_sgd_nesterov_needs_momentum():
    with pytest.raises(ValueError):
        sgd_step(np.zeros(2), np.zeros(2), None, lr=0.1, nesterov=True)


# --------------------------------------------------------------------------------------------
# training runs

TRAIN_CASE = ([4, 5, 3], "tanh", "softmax", "cross_entropy")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 32])
def test_train_with_zero_lr_reports_the_full_batch_loss(reduction, batch_size):
    # With nothing changing, the row-weighted mean of batch means is the mean over all rows,
    # and the sum of batch sums is the sum over all rows.
    sizes, activations, output, loss = TRAIN_CASE
    params, X, Y = _network_problem(TRAIN_CASE, m=10)
    rng = np.random.default_rng(15)
    orders = [rng.permutation(10) for _ in range(2)]
    got, losses = train_sgd(params, sizes, activations, output, loss, X, Y, lr=0.0, momentum=0.9,
                            batch_size=batch_size, epochs=2, orders=orders, reduction=reduction)
    np.testing.assert_array_equal(got, params)
    want = mlp_loss(params, sizes, activations, output, loss, X, Y, reduction)
    np.testing.assert_allclose(losses, [want, want], rtol=EXACT_RTOL)


def test_train_full_batch_epoch_is_one_gradient_step():
    sizes, activations, output, loss = TRAIN_CASE
    params, X, Y = _network_problem(TRAIN_CASE, m=8)
    got, losses = train_sgd(params, sizes, activations, output, loss, X, Y, lr=0.3,
                            weight_decay=0.01, batch_size=8, epochs=1,
                            orders=[np.random.default_rng(16).permutation(8)])
    value, grads = mlp_grad(params, sizes, activations, output, loss, X, Y)
    np.testing.assert_allclose(got, params - 0.3 * (grads + 0.01 * params), rtol=EXACT_RTOL,
                               atol=EXACT_ATOL)
    assert losses == [pytest.approx(value, rel=EXACT_RTOL)]


def test_train_follows_the_orders_and_keeps_velocity_across_epochs():
    # Two epochs over orders o1, o2 are the same run as one epoch over the rows X[o1] then X[o2]
    # in sequence, provided the batch size divides the row count and the velocity carries over.
    sizes, activations, output, loss = TRAIN_CASE
    params, X, Y = _network_problem(TRAIN_CASE, m=6)
    rng = np.random.default_rng(17)
    o1, o2 = rng.permutation(6), rng.permutation(6)
    kwargs = dict(lr=0.2, momentum=0.8, nesterov=True, weight_decay=0.05, batch_size=2)
    two_epochs, losses = train_sgd(params, sizes, activations, output, loss, X, Y, epochs=2,
                                   orders=[o1, o2], **kwargs)
    rows = np.concatenate([o1, o2])
    one_epoch, (loss_one,) = train_sgd(params, sizes, activations, output, loss, X[rows], Y[rows],
                                       epochs=1, orders=[np.arange(12)], **kwargs)
    np.testing.assert_allclose(two_epochs, one_epoch, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    assert np.mean(losses) == pytest.approx(loss_one, rel=EXACT_RTOL)
    assert not np.allclose(two_epochs, params)


def test_train_learns_xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    sizes = [2, 4, 1]
    params = np.random.default_rng(18).standard_normal(n_params(sizes))
    epochs = 300
    orders = [np.arange(4)] * epochs
    trained, losses = train_sgd(params, sizes, "tanh", "sigmoid", "binary_cross_entropy", X, Y,
                                lr=0.5, momentum=0.9, batch_size=4, epochs=epochs, orders=orders)
    assert losses[-1] < 0.05 < losses[0]
    _, post = mlp_forward(trained, sizes, "tanh", "sigmoid", X)
    np.testing.assert_array_equal(post[-1] > 0.5, Y > 0.5)


def test_train_rejects_bad_orders():
    sizes, activations, output, loss = TRAIN_CASE
    params, X, Y = _network_problem(TRAIN_CASE, m=5)
    for orders, epochs in [([np.arange(5)], 2), ([np.array([0, 1, 2, 3, 3])], 1), ([np.arange(4)], 1)]:
        with pytest.raises(ValueError):
            train_sgd(params, sizes, activations, output, loss, X, Y, lr=0.1, batch_size=2,
                      epochs=epochs, orders=orders)
