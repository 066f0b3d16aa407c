"""Network: construction, initialisation, the flat parameter buffer, and every computation
(forward, predict, loss, loss_and_grad, evaluate) against the NumPy oracle in tests/reference.py."""

import math

import numpy as np
import pytest

import backprop as bp
from backprop._arrays import zeros_on_cache_lines
import reference as ref
from conftest import tolerances

ACTIVATIONS = ref.ACTIVATIONS
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")

# (id, layer sizes, hidden activation(s), output (None: the loss's own), loss)
NETS = [
    ("1layer-ce", [5, 3], "relu", None, "cross_entropy"),
    ("1layer-bce", [5, 2], "relu", None, "binary_cross_entropy"),
    ("1layer-mse", [5, 2], "relu", None, "mse"),
    ("2layer-relu-ce", [5, 7, 3], "relu", None, "cross_entropy"),
    ("2layer-tanh-bce1", [5, 7, 1], "tanh", None, "binary_cross_entropy"),
    ("2layer-sigmoid-bce3", [5, 6, 3], "sigmoid", None, "binary_cross_entropy"),
    ("2layer-identity-mse", [5, 4, 2], "identity", None, "mse"),
    ("2layer-softplus-mse-sigmoid", [5, 6, 3], "softplus", "sigmoid", "mse"),
    ("2layer-gelu-mse-softmax", [5, 6, 4], "gelu", "softmax", "mse"),
    ("3layer-mixed-ce", [5, 8, 6, 4], ["leaky_relu", "elu"], None, "cross_entropy"),
    ("3layer-mixed-mse-tanh", [5, 8, 6, 2], ["sigmoid", "gelu"], "tanh", "mse"),
    ("4layer-mixed-bce", [5, 9, 7, 6, 2], ["tanh", "relu", "softplus"], None, "binary_cross_entropy"),
    ("4layer-mixed-mse-softmax", [5, 9, 7, 6, 3], ["elu", "identity", "leaky_relu"], "softmax", "mse"),
]
NET_IDS = [net[0] for net in NETS]

DEFAULT_OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}


def make_targets(rng, loss, n_outputs, m):
    """Integer class ids for cross_entropy, 0/1 columns for binary_cross_entropy, reals for mse."""
    if loss == "cross_entropy":
        return rng.integers(0, n_outputs, m)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (m, n_outputs)).astype(np.float64)
    return rng.standard_normal((m, n_outputs))


def build(sizes, activation, output, loss, dtype, reduction="mean", seed=0):
    """A network with non-zero biases, so the bias path is exercised too."""
    net = bp.Network(sizes, activation=activation, output=output, loss=loss, reduction=reduction,
                     dtype=dtype, seed=seed)
    rng = np.random.default_rng(100 + seed)
    for layer in net.layers:
        layer.b[...] = rng.uniform(-0.5, 0.5, layer.b.shape)
    return net


def oracle_args(net, sizes, activation, output, loss):
    """The positional arguments reference.mlp_* take before X (and Y)."""
    out = DEFAULT_OUTPUT[loss] if output is None else output
    return net.params.copy(), sizes, activation, out


def approx(expected, dtype, terms=1):
    tol = tolerances(dtype, terms)
    return pytest.approx(expected, rel=tol["rtol"], abs=tol["atol"])


def data(sizes, loss, m=11, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0]))
    return X, make_targets(rng, loss, sizes[-1], m)


# -- construction -----------------------------------------------------------------------------


def test_sizes_list_builds_dense_layers():
    net = bp.Network([4, 6, 5, 3])
    assert net.layer_sizes == [4, 6, 5, 3]
    assert (net.n_inputs, net.n_outputs) == (4, 3)
    assert net.n_params == ref.n_params([4, 6, 5, 3]) == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    assert all(isinstance(layer, bp.Dense) for layer in net.layers)
    assert [(l.fan_in, l.fan_out) for l in net.layers] == [(4, 6), (6, 5), (5, 3)]
    assert [l.activation for l in net.layers] == ["relu", "relu", "softmax"]
    assert net.output == "softmax"
    assert net.loss_name == "cross_entropy"
    assert net.reduction == "mean"
    assert net.dtype == np.float32


def test_dense_list_keeps_each_layers_activation():
    layers = [bp.Dense(4, 6, "tanh"), bp.Dense(6, 5, "leaky_relu", alpha=0.2), bp.Dense(5, 2)]
    net = bp.Network(layers, loss="mse", dtype="float64")
    assert net.layer_sizes == [4, 6, 5, 2]
    assert [l.activation for l in net.layers] == ["tanh", "leaky_relu", "identity"]
    assert net.layers[1].alpha == 0.2
    # The network builds its own layers: the caller's Dense objects are not bound to it.
    assert layers[0].W is None and net.layers[0].W is not None
    X = np.random.default_rng(0).standard_normal((6, 4))
    _, post = ref.mlp_forward(net.params, [4, 6, 5, 2], ["tanh", ("leaky_relu", 0.2)], "identity", X)
    np.testing.assert_allclose(net.forward(X), post[-1], **tolerances(np.float64, 6))


def test_dense_list_with_explicit_output_activation():
    net = bp.Network([bp.Dense(3, 4, "relu"), bp.Dense(4, 2, "tanh")], loss="mse")
    assert net.output == "tanh"


def test_per_layer_activation_list():
    net = bp.Network([4, 6, 5, 3], activation=["tanh", "sigmoid"], dtype="float64")
    assert [l.activation for l in net.layers] == ["tanh", "sigmoid", "softmax"]
    X = np.random.default_rng(0).standard_normal((5, 4))
    _, post = ref.mlp_forward(net.params, [4, 6, 5, 3], ["tanh", "sigmoid"], "softmax", X)
    np.testing.assert_allclose(net.forward(X), post[-1], **tolerances(np.float64, 6))


@pytest.mark.parametrize("loss, output", sorted(DEFAULT_OUTPUT.items()))
def test_output_is_inferred_from_the_loss(loss, output):
    net = bp.Network([3, 4, 2], loss=loss)
    assert net.output == output
    assert net.layers[-1].activation == output


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "tanh", "identity", "relu"])
def test_mse_takes_any_output(output):
    assert bp.Network([3, 4, 2], loss="mse", output=output).output == output


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("init, limit_of", [
    ("glorot", lambda fan_in, fan_out: math.sqrt(6 / (fan_in + fan_out))),
    ("he", lambda fan_in, fan_out: math.sqrt(6 / fan_in)),
    ("lecun", lambda fan_in, fan_out: math.sqrt(3 / fan_in)),
    ("uniform", lambda fan_in, fan_out: 0.3),
])
def test_init_scheme_limits(init, limit_of, dtype_name):
    sizes = [120, 90, 60, 30]
    net = bp.Network(sizes, init=init, init_scale=0.3 if init == "uniform" else None,
                     dtype=dtype_name, seed=3)
    assert net.init == init
    for layer in net.layers:
        limit = limit_of(layer.fan_in, layer.fan_out)
        W = layer.W.astype(np.float64)
        assert np.all(np.abs(W) <= limit), (init, layer)
        # Thousands of uniform draws come close to the limit: the range is not narrower either.
        assert np.abs(W).max() > 0.97 * limit, (init, layer)
        assert abs(W.mean()) < 0.05 * limit
        assert np.all(layer.b == 0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_default_init_is_he_for_relu_like_and_glorot_otherwise(activation):
    sizes = [100, 100, 10]
    net = bp.Network(sizes, activation=activation, seed=5)
    expected = "he" if activation in RELU_LIKE else "glorot"
    assert net.init == expected
    explicit = bp.Network(sizes, activation=activation, init=expected, seed=5)
    assert net.params.tobytes() == explicit.params.tobytes()
    he, glorot = math.sqrt(6 / 100), math.sqrt(6 / 200)
    largest = np.abs(net.layers[0].W).max()
    if expected == "he":
        assert glorot < largest <= he
    else:
        assert largest <= glorot


def test_default_init_for_mixed_hidden_activations_is_glorot():
    assert bp.Network([4, 5, 5, 2], activation=["relu", "tanh"]).init == "glorot"
    assert bp.Network([4, 5, 5, 2], activation=["relu", "elu"]).init == "he"


def test_same_seed_same_params_different_seed_different():
    a = bp.Network([10, 8, 3], seed=7)
    b = bp.Network([10, 8, 3], seed=7)
    c = bp.Network([10, 8, 3], seed=8)
    assert a.params.tobytes() == b.params.tobytes()
    assert not np.array_equal(a.params, c.params)
    # seed=None draws fresh weights each time
    assert not np.array_equal(bp.Network([10, 8, 3], seed=None).params,
                              bp.Network([10, 8, 3], seed=None).params)


def test_both_dtypes_draw_the_same_initial_weights():
    single = bp.Network([10, 8, 3], dtype="float32", seed=4)
    double = bp.Network([10, 8, 3], dtype="float64", seed=4)
    assert single.params.dtype == np.float32 and double.params.dtype == np.float64
    np.testing.assert_array_equal(single.params, double.params.astype(np.float32))


# -- the flat parameter buffer ------------------------------------------------------------------


def test_params_is_one_flat_buffer_and_layers_are_views(dtype):
    sizes = [4, 6, 3]
    net = bp.Network(sizes, dtype=dtype)
    params = net.params
    assert params.ndim == 1 and params.size == ref.n_params(sizes)
    assert params.dtype == dtype
    assert params.flags.c_contiguous and params.flags.writeable
    offset = 0
    for layer, (W_ref, b_ref) in zip(net.layers, ref.unflatten(params, sizes)):
        assert layer.W.shape == (layer.fan_in, layer.fan_out) and layer.b.shape == (layer.fan_out,)
        assert np.shares_memory(layer.W, params) and np.shares_memory(layer.b, params)
        np.testing.assert_array_equal(layer.W, W_ref)
        np.testing.assert_array_equal(layer.b, b_ref)
        # the views sit exactly where the layout says: W (row-major) then b
        assert layer.W.__array_interface__["data"][0] == params[offset:].__array_interface__["data"][0]
        offset += layer.fan_in * layer.fan_out
        assert layer.b.__array_interface__["data"][0] == params[offset:].__array_interface__["data"][0]
        offset += layer.fan_out
    assert offset == params.size


def test_params_gradients_and_workspaces_start_on_cache_lines(dtype):
    # The native GEMM writes whole 64-byte lines only into buffers that start on one (NumPy's
    # own large blocks start 16 bytes past a line).
    net = bp.Network([37, 53, 5], dtype=dtype)
    opt = bp.optim.Adam(lr=1e-3)
    X = np.random.default_rng(0).standard_normal((70, 37))
    net.fit(X, np.arange(70) % 5, optimizer=opt, epochs=1, batch_size=9, verbose=0)
    assert net.params.ctypes.data % 64 == 0
    assert net._grads.ctypes.data % 64 == 0
    assert len(opt.state) == 2 and all(state.ctypes.data % 64 == 0 for state in opt.state)
    offsets = net._engine.workspace_line_offsets()
    # X and dX of both layers, U of the output layer (the relu layer's output stands for its
    # U), and the gathered X, y and weights
    assert len(offsets) == 2 * 2 + 1 + 3
    assert offsets == [0] * len(offsets)


@pytest.mark.parametrize("activation, kept", [("relu", 1), ("identity", 1), ("tanh", 3),
                                              ("leaky_relu", 3)])
def test_only_layers_whose_output_stands_for_their_sums_drop_them(activation, kept):
    # relu(relu(u)) = relu(u) and relu'(relu(u)) = relu'(u), so a relu (or identity) hidden
    # layer's output serves as its pre-activation U and the workspace holds no U for it; tanh
    # and leaky_relu (whose slope may be negative) keep theirs. Three layers: two hidden, the
    # output's U always kept.
    net = bp.Network([6, 9, 7, 3], activation=activation, dtype=np.float64)
    X, y = data([6, 9, 7, 3], "cross_entropy")
    net.loss_and_grad(X, y)
    buffers = len(net._engine.workspace_line_offsets())
    assert buffers == kept + 2 * 3 + 3  # the Us kept; X and dX of each layer; the gathered batch


@pytest.mark.parametrize("shape", [1, 7, (3, 5), (1000, 3)])
def test_zeros_on_cache_lines(shape, dtype):
    array = zeros_on_cache_lines(shape, dtype)
    assert array.shape == np.empty(shape).shape and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    assert array.ctypes.data % 64 == 0 and not array.any()


def test_writing_a_view_changes_params_and_the_output(dtype):
    sizes = [4, 6, 3]
    net = bp.Network(sizes, dtype=dtype)
    X = np.random.default_rng(0).standard_normal((5, 4))
    before = net.forward(X)
    net.layers[1].W[2, 1] = 0.75
    net.layers[0].b[3] = -0.5
    assert net.params[4 * 6 + 6 + 2 * 3 + 1] == dtype.type(0.75)
    assert net.params[4 * 6 + 3] == dtype.type(-0.5)
    after = net.forward(X)
    assert not np.array_equal(before, after)
    _, post = ref.mlp_forward(net.params.copy(), sizes, "relu", "softmax", X)
    np.testing.assert_allclose(after, post[-1], **tolerances(dtype, 6))
    # and the other way round: writing params shows through the views
    net.params[0] = 1.25
    assert net.layers[0].W[0, 0] == 1.25


def test_assigning_params_copies_into_the_same_buffer():
    net = bp.Network([4, 6, 3], dtype="float64")
    buffer = net.params
    W = net.layers[0].W
    values = np.arange(net.n_params, dtype=np.float32) / 100
    net.params = values
    assert net.params is buffer
    np.testing.assert_array_equal(net.params, values.astype(np.float64))
    np.testing.assert_array_equal(W, values[:24].reshape(4, 6))


def test_unflatten_gives_views_of_any_flat_array():
    net = bp.Network([4, 6, 3], dtype="float64")
    flat = np.arange(net.n_params, dtype=np.float64)
    views = net.unflatten(flat)
    for (W, b), (W_ref, b_ref) in zip(views, ref.unflatten(flat, [4, 6, 3])):
        np.testing.assert_array_equal(W, W_ref)
        np.testing.assert_array_equal(b, b_ref)
        assert np.shares_memory(W, flat)


# -- computations against the oracle ------------------------------------------------------------


@pytest.mark.parametrize("name, sizes, activation, output, loss", NETS, ids=NET_IDS)
def test_forward_matches_reference(name, sizes, activation, output, loss, dtype):
    net = build(sizes, activation, output, loss, dtype)
    X, _ = data(sizes, loss)
    y_hat = net.forward(X)
    assert y_hat.dtype == dtype and y_hat.shape == (X.shape[0], sizes[-1])
    _, post = ref.mlp_forward(*oracle_args(net, sizes, activation, output, loss), X.astype(dtype))
    np.testing.assert_allclose(y_hat, post[-1], **tolerances(dtype, max(sizes) * len(sizes)))
    np.testing.assert_array_equal(net(X), y_hat)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name, sizes, activation, output, loss", NETS, ids=NET_IDS)
def test_loss_matches_reference(name, sizes, activation, output, loss, reduction, dtype):
    net = build(sizes, activation, output, loss, dtype, reduction)
    X, y = data(sizes, loss)
    expected = ref.mlp_loss(*oracle_args(net, sizes, activation, output, loss), loss,
                            X.astype(dtype), y, reduction)
    value = net.loss(X, y)
    assert isinstance(value, float)
    assert value == approx(expected, dtype, max(sizes) * len(sizes))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name, sizes, activation, output, loss", NETS, ids=NET_IDS)
def test_loss_and_grad_matches_reference(name, sizes, activation, output, loss, reduction, dtype):
    net = build(sizes, activation, output, loss, dtype, reduction)
    X, y = data(sizes, loss)
    before = net.params.copy()
    value, grads = net.loss_and_grad(X, y)
    expected_value, expected_grads = ref.mlp_grad(*oracle_args(net, sizes, activation, output, loss),
                                                  loss, X.astype(dtype), y, reduction)
    tol = tolerances(dtype, max(sizes) * len(sizes))
    assert value == approx(expected_value, dtype, max(sizes) * len(sizes))
    assert grads.dtype == dtype and grads.shape == net.params.shape and grads.flags.c_contiguous
    scale = np.abs(expected_grads).max()
    np.testing.assert_allclose(grads, expected_grads, rtol=tol["rtol"], atol=tol["atol"] * max(1, scale))
    assert net.params.tobytes() == before.tobytes()
    assert value == approx(net.loss(X, y), dtype)


@pytest.mark.parametrize("activation", [["tanh", "elu"], ["relu", "sigmoid"], ["gelu", "softplus"],
                                        ["identity", "relu"]])
@pytest.mark.parametrize("rows", [63, 64, 65])
def test_loss_and_grad_match_reference_on_both_sides_of_the_write_back_threshold(activation, rows,
                                                                                  dtype):
    # A hidden layer of fewer than 2^15 outputs (rows x units) gets its activation and its
    # derivative in the write-back of its product, a larger one in passes of their own
    # (cpp/src/mlp.cpp, activation_in_write_back). 512 units: 63 rows make 32,256 outputs per
    # hidden layer, 64 and 65 make 32,768 and 33,280.
    sizes = [6, 512, 512, 3]
    net = build(sizes, activation, None, "cross_entropy", dtype)
    X, y = data(sizes, "cross_entropy", m=rows)
    args = oracle_args(net, sizes, activation, None, "cross_entropy")
    _, post = ref.mlp_forward(*args, X.astype(dtype))
    tol = tolerances(dtype, 512 * len(sizes))
    np.testing.assert_allclose(net.forward(X), post[-1], **tol)
    value, grads = net.loss_and_grad(X, y)
    expected_value, expected_grads = ref.mlp_grad(*args, "cross_entropy", X.astype(dtype), y, "mean")
    assert value == approx(expected_value, dtype, 512 * len(sizes))
    scale = np.abs(expected_grads).max()
    np.testing.assert_allclose(grads, expected_grads, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("activation", [["tanh", "elu"], ["relu", "sigmoid"], ["gelu", "softplus"],
                                        ["identity", "relu"]])
@pytest.mark.parametrize("rows", [64, 65])
def test_write_back_and_passes_give_the_same_bits(activation, rows, dtype):
    # 63 rows of 512 units take the write-back, 64 and 65 the passes (the test above). With
    # the rows past 63 weighted 0 and the loss summed, they add only zeros: the same bits.
    sizes = [6, 512, 512, 3]
    net = build(sizes, activation, None, "cross_entropy", dtype, "sum")
    X, y = data(sizes, "cross_entropy", m=rows)
    weights = np.r_[np.ones(63), np.zeros(rows - 63)]
    assert net.forward(X)[:63].tobytes() == net.forward(X[:63]).tobytes()
    value, grads = net.loss_and_grad(X, y, sample_weight=weights)
    value_63, grads_63 = net.loss_and_grad(X[:63], y[:63])
    assert value == value_63
    assert grads.tobytes() == grads_63.tobytes()


def test_loss_and_grad_returns_a_fresh_array_each_call():
    net = build([4, 5, 3], "tanh", None, "cross_entropy", np.float64)
    X, y = data([4, 5, 3], "cross_entropy")
    _, first = net.loss_and_grad(X, y)
    first_copy = first.copy()
    _, second = net.loss_and_grad(X[:3], y[:3])
    assert not np.shares_memory(first, second)
    assert not np.shares_memory(first, net.params)
    np.testing.assert_array_equal(first, first_copy)
    first[:] = 99
    _, third = net.loss_and_grad(X, y)
    np.testing.assert_array_equal(third, first_copy)


@pytest.mark.parametrize("name, sizes, activation, output, loss", NETS, ids=NET_IDS)
def test_evaluate_matches_reference(name, sizes, activation, output, loss, dtype):
    net = build(sizes, activation, output, loss, dtype)
    X, y = data(sizes, loss, m=40)
    result = net.evaluate(X, y)
    expected_loss = ref.mlp_loss(*oracle_args(net, sizes, activation, output, loss), loss,
                                 X.astype(dtype), y)
    assert result["loss"] == approx(expected_loss, dtype, max(sizes) * len(sizes))
    if loss == "mse":
        assert set(result) == {"loss"}
        return
    assert set(result) == {"loss", "accuracy"}
    y_hat = net.forward(X)
    if loss == "cross_entropy":
        expected_accuracy = np.mean(y_hat.argmax(axis=1) == y)
    else:  # binary and multi-label outputs: the share of entries on the right side of 0.5
        expected_accuracy = np.mean((y_hat > 0.5) == (y > 0.5))
    assert result["accuracy"] == pytest.approx(expected_accuracy)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_int_labels_and_one_hot_give_the_same_loss_and_grad(reduction, dtype):
    net = build([6, 8, 4], "tanh", None, "cross_entropy", dtype, reduction)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 6))
    labels = rng.integers(0, 4, 9)
    one_hot = ref.one_hot(labels, 4)
    assert net.loss(X, labels) == net.loss(X, one_hot)
    assert net.loss(X, labels) == net.loss(X, labels.astype(np.float64))  # integral floats
    assert net.loss(X, labels) == net.loss(X, labels.astype(np.int32))
    value_ids, grads_ids = net.loss_and_grad(X, labels)
    value_hot, grads_hot = net.loss_and_grad(X, one_hot)
    assert value_ids == value_hot
    np.testing.assert_array_equal(grads_ids, grads_hot)
    assert net.evaluate(X, labels) == net.evaluate(X, one_hot)


def test_bce_single_output_takes_1d_or_column_targets(dtype):
    net = build([3, 4, 1], "tanh", None, "binary_cross_entropy", dtype)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    y = rng.integers(0, 2, 7)
    assert net.loss(X, y) == net.loss(X, y.reshape(-1, 1).astype(np.float64))


def test_predict_returns_class_ids():
    net = build([5, 7, 4], "relu", None, "cross_entropy", np.float32)
    X = np.random.default_rng(0).standard_normal((30, 5))
    labels = net.predict(X)
    assert labels.shape == (30,) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, net.forward(X).argmax(axis=1))
    assert set(labels) <= set(range(4))


def test_predict_returns_binary_labels():
    X = np.random.default_rng(0).standard_normal((30, 5))
    one = build([5, 7, 1], "relu", None, "binary_cross_entropy", np.float64)
    labels = one.predict(X)
    assert labels.shape == (30,) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, (one.forward(X)[:, 0] > 0.5).astype(int))
    assert 0 < labels.sum() < 30  # not all the same, so the threshold is really exercised
    several = build([5, 7, 3], "relu", None, "binary_cross_entropy", np.float64)
    labels = several.predict(X)
    assert labels.shape == (30, 3)
    np.testing.assert_array_equal(labels, (several.forward(X) > 0.5).astype(int))


def test_predict_returns_values_for_mse(dtype):
    net = build([5, 7, 2], "tanh", None, "mse", dtype)
    X = np.random.default_rng(0).standard_normal((30, 5))
    np.testing.assert_array_equal(net.predict(X), net.forward(X))
    assert net.predict(X).dtype == dtype


def test_inputs_of_other_dtypes_are_converted(dtype):
    net = build([3, 4, 2], "tanh", None, "mse", dtype)
    X = np.arange(12).reshape(4, 3)
    expected = net.forward(X.astype(dtype))
    for variant in (X, X.astype(np.float32), X.astype(np.float64), X.tolist(), np.asfortranarray(X),
                    np.repeat(X, 2, axis=1)[:, ::2]):
        np.testing.assert_array_equal(net.forward(variant), expected)


def test_chunked_forward_on_many_rows_equals_row_by_row(dtype):
    sizes = [64, 128, 10]
    net = build(sizes, "relu", None, "cross_entropy", dtype)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10000, 64)).astype(dtype)
    labels = rng.integers(0, 10, 10000)
    assert len(list(net._chunks(10000))) > 1  # the chunked path is really taken
    y_hat = net.forward(X)
    rows = np.concatenate([net.forward(X[i:i + 1]) for i in range(X.shape[0])])
    assert y_hat.tobytes() == rows.tobytes()
    _, post = ref.mlp_forward(net.params.copy(), sizes, "relu", "softmax", X)
    np.testing.assert_allclose(y_hat, post[-1], **tolerances(dtype, 128))
    expected = ref.mlp_loss(net.params.copy(), sizes, "relu", "softmax", "cross_entropy", X, labels)
    assert net.loss(X, labels) == approx(expected, dtype, 128)
    assert net.evaluate(X, labels)["accuracy"] == np.mean(y_hat.argmax(axis=1) == labels)


def test_sum_reduction_loss_on_many_rows_via_constructor(dtype):
    sizes = [64, 32, 10]
    mean_net = build(sizes, "relu", None, "cross_entropy", dtype, "mean")
    sum_net = build(sizes, "relu", None, "cross_entropy", dtype, "sum")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9000, 64))
    labels = rng.integers(0, 10, 9000)
    assert sum_net.loss(X, labels) == pytest.approx(9000 * mean_net.loss(X, labels),
                                                    rel=10 * tolerances(dtype, 64)["rtol"])


# -- copies and repr ------------------------------------------------------------------------------


def test_astype_makes_an_independent_copy_in_another_dtype():
    layers = [bp.Dense(4, 6, "leaky_relu", alpha=0.3), bp.Dense(6, 5, "tanh"), bp.Dense(5, 3, "sigmoid")]
    single = bp.Network(layers, loss="mse", reduction="sum", dtype="float32", seed=2)
    single.layers[0].b[...] = 0.25
    double = single.astype("float64")
    assert double.dtype == np.float64 and single.dtype == np.float32
    np.testing.assert_array_equal(double.params, single.params.astype(np.float64))
    assert [l.activation for l in double.layers] == ["leaky_relu", "tanh", "sigmoid"]
    assert double.layers[0].alpha == 0.3
    assert (double.loss_name, double.reduction, double.output) == ("mse", "sum", "sigmoid")
    assert not np.shares_memory(double.params, single.params)
    X = np.random.default_rng(0).standard_normal((8, 4))
    # The copy computes the same function: leaky_relu's alpha of 0.3 came along.
    _, post = ref.mlp_forward(double.params.copy(), [4, 6, 5, 3], [("leaky_relu", 0.3), "tanh"],
                              "sigmoid", X)
    np.testing.assert_allclose(double.forward(X), post[-1], **tolerances(np.float64, 6))
    np.testing.assert_allclose(single.forward(X), post[-1], **tolerances(np.float32, 6))
    before = single.params.copy()
    double.params[:] = 0
    assert single.params.tobytes() == before.tobytes()


def test_copy_is_equal_and_independent(dtype):
    net = build([4, 6, 3], "tanh", None, "cross_entropy", dtype, "sum")
    twin = net.copy()
    assert twin.dtype == net.dtype
    assert twin.params.tobytes() == net.params.tobytes()
    assert not np.shares_memory(twin.params, net.params)
    assert (twin.loss_name, twin.reduction, twin.output, twin.init) == ("cross_entropy", "sum", "softmax", net.init)
    X, y = data([4, 6, 3], "cross_entropy")
    assert twin.forward(X).tobytes() == net.forward(X).tobytes()
    assert twin.loss(X, y) == net.loss(X, y)
    twin.layers[0].W[0, 0] += 1
    assert twin.params[0] != net.params[0]


def test_repr():
    net = bp.Network([4, 6, 3])
    assert repr(net) == ("Network([4, 6, 3], activation='relu', output='softmax', "
                         "loss='cross_entropy', reduction='mean', dtype='float32', params=51)")
    mixed = bp.Network([4, 6, 5, 1], activation=["tanh", "sigmoid"], loss="mse", reduction="sum",
                       dtype="float64")
    assert repr(mixed) == ("Network([4, 6, 5, 1], activation=['tanh', 'sigmoid'], output='identity', "
                           "loss='mse', reduction='sum', dtype='float64', params=71)")
    assert repr(bp.Dense(3, 2, "elu", alpha=0.5)) == "Dense(3, 2, activation='elu', alpha=0.5)"
