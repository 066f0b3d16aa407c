"""Property tests: random shapes (0, 1, tile sizes +- 1), both dtypes, transposes and strided
inputs; each kernel equals the NumPy reference or raises the documented exception."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import backprop as bp  # noqa: E402
import reference as ref  # noqa: E402
from conftest import tolerances  # noqa: E402

# Sizes around the micro-kernel tiles (MR 6, NR 16 / 8) and blocks (MC 144 / 96, KC 256).
EDGE = [0, 1, 2, 5, 6, 7, 8, 9, 15, 16, 17, 95, 97, 143, 145, 255, 257]
size = st.one_of(st.sampled_from(EDGE), st.integers(0, 40))
positive = st.one_of(st.sampled_from([s for s in EDGE if s > 0]), st.integers(1, 40))
dtypes = st.sampled_from([np.float32, np.float64])
PROPERTY = settings(max_examples=60, deadline=None)


def _matrix(draw, rows, cols, dtype, strided):
    """A rows x cols array, as a strided view of a larger one when asked."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if strided:
        big = rng.uniform(-1, 1, (rows * 2 + 1, cols * 3 + 1)).astype(dtype)
        return big[1::2, ::3][:rows, :cols]
    return rng.uniform(-1, 1, (rows, cols)).astype(dtype)


@PROPERTY
@given(st.data(), size, size, size, dtypes, st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from([0.0, 1.0, -0.5]))
def test_gemm_equals_the_reference(data, m, n, k, dtype, trans_a, trans_b, strided, beta):
    A = _matrix(data.draw, *((k, m) if trans_a else (m, k)), dtype, strided)
    B = _matrix(data.draw, *((n, k) if trans_b else (k, n)), dtype, strided)
    C = _matrix(data.draw, m, n, dtype, False)
    expected = ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.75, beta=beta, C=C)
    got = bp.kernels.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.75, beta=beta,
                          out=C.copy())
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, expected, **tolerances(dtype, max(k, 1)))


@PROPERTY
@given(st.data(), positive, positive, positive, dtypes)
def test_gemm_with_mismatched_inner_sizes_raises(data, m, n, k, dtype):
    A = _matrix(data.draw, m, k, dtype, False)
    B = _matrix(data.draw, k + 1, n, dtype, False)
    with pytest.raises(ValueError, match="A and B do not fit"):
        bp.kernels.gemm(A, B)


@PROPERTY
@given(st.data(), st.sampled_from(ref.ACTIVATIONS), size, positive, dtypes, st.booleans(),
       st.floats(0.5, 30))
def test_activations_equal_the_reference(data, name, rows, cols, dtype, strided, scale):
    u = _matrix(data.draw, rows, cols, dtype, strided) * dtype(scale)
    grad = _matrix(data.draw, rows, cols, dtype, False)
    tol = tolerances(dtype, 4)
    np.testing.assert_allclose(bp.kernels.activation_forward(u, name),
                               ref.activation_forward(name, u), **tol)
    np.testing.assert_allclose(bp.kernels.activation_backward(grad, u, name),
                               grad * ref.activation_derivative(name, u), **tol)


LOSS_OUTPUTS = ([("mse", a) for a in ref.ACTIVATIONS] + [("mse", "softmax"),
                ("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax")])


@PROPERTY
@given(st.data(), st.sampled_from(LOSS_OUTPUTS), positive, positive, dtypes,
       st.sampled_from(["mean", "sum"]), st.floats(0.1, 50))
def test_losses_and_their_gradients_equal_the_reference(data, pair, m, n, dtype, reduction, scale):
    loss, output = pair
    u = _matrix(data.draw, m, n, dtype, data.draw(st.booleans())) * dtype(scale)
    y = np.abs(_matrix(data.draw, m, n, dtype, False))
    if loss == "cross_entropy":
        y = y / y.sum(axis=1, keepdims=True)
    expected = ref.loss_value(loss, output, u, y, reduction)
    got = bp.kernels.loss(u, y, loss, output=output, reduction=reduction)
    assert got == pytest.approx(expected, rel=1e-4 if dtype == np.float32 else 1e-10, abs=1e-6)
    np.testing.assert_allclose(bp.kernels.loss_grad(u, y, loss, output=output, reduction=reduction),
                               ref.loss_grad(loss, output, u, y, reduction), **tolerances(dtype, n))


@PROPERTY
@given(st.data(), size, positive, dtypes, st.booleans())
def test_bias_grad_is_the_column_sum(data, m, n, dtype, strided):
    d = _matrix(data.draw, m, n, dtype, strided)
    np.testing.assert_allclose(bp.kernels.bias_grad(d), d.astype(np.float64).sum(axis=0),
                               **tolerances(dtype, max(m, 1)))


@PROPERTY
@given(st.data(), st.integers(1, 5000), dtypes, st.floats(0.001, 1.0), st.floats(0, 0.99),
       st.booleans(), st.floats(0, 0.1))
def test_sgd_update_equals_the_reference(data, n, dtype, lr, momentum, nesterov, decay):
    nesterov = nesterov and momentum > 0
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    params, grads, velocity = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    expected, expected_v = ref.sgd_step(params, grads, velocity, lr=lr, momentum=momentum,
                                        nesterov=nesterov, weight_decay=decay)
    got_v = velocity.copy()
    got = bp.kernels.sgd_update(params.copy(), grads, got_v, lr=lr, momentum=momentum,
                                nesterov=nesterov, weight_decay=decay)
    np.testing.assert_allclose(got, expected, **tolerances(dtype, 4))
    if momentum:
        np.testing.assert_allclose(got_v, expected_v, **tolerances(dtype, 4))


@st.composite
def networks(draw):
    sizes = draw(st.lists(st.integers(1, 12), min_size=2, max_size=5))
    hidden = draw(st.lists(st.sampled_from(ref.ACTIVATIONS), min_size=len(sizes) - 2,
                           max_size=len(sizes) - 2))
    loss, output = draw(st.sampled_from(LOSS_OUTPUTS))
    return sizes, hidden, loss, output


@settings(max_examples=80, deadline=None)
@given(networks(), positive, dtypes, st.sampled_from(["mean", "sum"]),
       st.integers(0, 2**32 - 1))
def test_loss_and_grad_equals_the_reference(network, m, dtype, reduction, seed):
    sizes, hidden, loss, output = network
    net = bp.Network(sizes, activation=hidden if hidden else "relu", output=output, loss=loss,
                     reduction=reduction, dtype=dtype, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0])).astype(dtype)
    y = rng.uniform(0, 1, (m, sizes[-1])).astype(dtype)
    if loss == "cross_entropy":
        y = y / y.sum(axis=1, keepdims=True)
    value, grads = net.loss_and_grad(X, y)
    expected, expected_grads = ref.mlp_grad(net.params, sizes, hidden or "relu", output, loss, X,
                                            y, reduction)
    tol = tolerances(dtype, max(sizes) * len(sizes) * max(m, 1))
    assert value == pytest.approx(expected, rel=max(tol["rtol"], 1e-12), abs=tol["atol"])
    np.testing.assert_allclose(grads, expected_grads, **tol)
