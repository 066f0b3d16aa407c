"""Shortcut connections: layers that read the input or earlier layers, not only the previous one."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import Dense
from conftest import GRADCHECK_ATOL, GRADCHECK_RTOL


def _manual_forward(net: bp.Network, X: np.ndarray) -> np.ndarray:
    """The forward pass written out with NumPy from the layers' views and their inputs."""
    outputs = [X.astype(np.float64)]
    for number, layer in enumerate(net.layers, start=1):
        sources = layer.inputs if layer.inputs is not None else [number - 1]
        joined = np.concatenate([outputs[s] for s in sources], axis=1)
        u = joined @ layer.W.astype(np.float64) + layer.b
        name = layer.activation
        if name == "softmax":
            e = np.exp(u - u.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        else:
            out = bp.kernels.activation_forward(u, name)
        outputs.append(out)
    return outputs[-1]


def _cascade(dtype="float64", seed=0):
    # Input (3) -> layer 1 (4) -> layer 2 reads input and layer 1 (7) -> output reads all.
    return bp.Network([Dense(3, 4, "tanh"), Dense(7, 5, "sigmoid", inputs=[0, 1]),
                       Dense(12, 2, inputs=[0, 1, 2])], loss="cross_entropy", dtype=dtype,
                      seed=seed)


def test_forward_matches_the_concatenation_written_out():
    net = _cascade()
    X = np.random.default_rng(1).standard_normal((9, 3))
    np.testing.assert_allclose(net.forward(X), _manual_forward(net, X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_of_a_cascaded_network_matches_finite_differences(loss, reduction):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 3))
    n_out = 3
    net = bp.Network([3, 4, 3, n_out], activation="tanh", loss=loss, reduction=reduction,
                     shortcuts=True, dtype="float64", seed=4)
    y = rng.integers(0, n_out, 6) if loss == "cross_entropy" else rng.uniform(0, 1, (6, n_out))
    result = bp.gradcheck(net, X, y, rtol=GRADCHECK_RTOL, atol=GRADCHECK_ATOL)
    assert result, result


def test_a_layer_whose_output_only_feeds_a_shortcut_gets_its_gradient():
    # Layer 1 feeds only layer 3 (skipping layer 2): its delta arrives through the shortcut.
    net = bp.Network([Dense(2, 3, "tanh"), Dense(2, 3, "tanh", inputs=[0]),
                      Dense(6, 1, inputs=[1, 2])], output="identity", loss="mse",
                     dtype="float64", seed=5)
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
    _, grads = net.loss_and_grad(X, y)
    first_w, _ = net.unflatten(grads)[0]
    assert np.abs(first_w).max() > 0
    assert bp.gradcheck(net, X, y)


@pytest.mark.parametrize("rows", [5, 9000])
def test_a_layer_that_reads_one_source_twice_gets_both_gradients(rows):
    # Both products into layer 1's delta come from layer 2; only the last may apply tanh's
    # derivative in its write-back (5 rows; 9,000 rows make 36,000 outputs, over the 2^15 from
    # which the derivative is a pass of its own).
    net = bp.Network([Dense(3, 4, "tanh"), Dense(8, 2, inputs=[1, 1])], loss="cross_entropy",
                     dtype="float64", seed=7)
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((rows, 3)), rng.integers(0, 2, rows)
    np.testing.assert_allclose(net.forward(X), _manual_forward(net, X), rtol=1e-12, atol=1e-14)
    result = bp.gradcheck(net, X, y, rtol=GRADCHECK_RTOL, atol=GRADCHECK_ATOL)
    assert result, result


def test_shortcuts_true_builds_the_full_cascade():
    net = bp.Network([2, 3, 4, 1], shortcuts=True, loss="mse")
    assert [layer.fan_in for layer in net.layers] == [2, 5, 9]
    assert [layer.inputs for layer in net.layers] == [[0], [0, 1], [0, 1, 2]]
    assert net.n_params == (2 * 3 + 3) + (5 * 4 + 4) + (9 * 1 + 1)


def test_xor_with_one_hidden_unit_and_shortcuts_learns():
    # The 1986 paper's XOR net: one hidden unit, the output also reading both inputs.
    X, y = bp.datasets.xor()
    net = bp.Network([Dense(2, 1, "sigmoid"), Dense(3, 1, inputs=[0, 1])], output="sigmoid",
                     loss="binary_cross_entropy", init="uniform", init_scale=1.0,
                     dtype="float64", seed=3)
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.5, momentum=0.9), epochs=2000, batch_size=None,
            verbose=0)
    assert (net.predict(X) == y.ravel()).all()


def test_copies_keep_the_wiring():
    net = _cascade()
    twin = net.astype("float32")
    assert [layer.inputs for layer in twin.layers] == [layer.inputs for layer in net.layers]
    X = np.random.default_rng(7).standard_normal((4, 3))
    np.testing.assert_allclose(twin.forward(X), net.forward(X), rtol=1e-5)


@pytest.mark.parametrize("layers, match", [
    ([Dense(2, 3), Dense(4, 1, inputs=[0, 2])], r"layer 2 reads \[2\]"),
    ([Dense(2, 3), Dense(4, 1, inputs=[0, 1])], r"takes 4 values but its inputs \[0, 1\] give 5"),
    ([Dense(2, 3, inputs=[1]), Dense(3, 1)], r"layer 1 can only read the network's input"),
])
def test_bad_wiring_is_refused(layers, match):
    with pytest.raises(ValueError, match=match):
        bp.Network(layers, loss="mse")


@pytest.mark.parametrize("inputs, error", [([], ValueError), ([-1], ValueError), (["a"], TypeError)])
def test_bad_inputs_lists_are_refused(inputs, error):
    with pytest.raises(error, match="inputs"):
        Dense(2, 2, inputs=inputs)


def test_shortcuts_with_dense_layers_is_refused():
    with pytest.raises(ValueError, match="shortcuts=True goes with layer sizes"):
        bp.Network([Dense(2, 2), Dense(2, 1)], shortcuts=True)


@pytest.mark.parametrize("rows, inputs, width, threads_count", [
    (128, 100, 512, 1),  # 128 x 512 outputs a layer: the activation in a pass of its own
    (8, 100, 512, 1),    # 8 x 512: in the write-back of the layer's last product
    (32, 784, 128, 2),   # in training, on two threads, the products split by k blocks
], ids=["pass", "write-back", "k-blocks"])
def test_relu_layers_reading_two_sources_sum_both_before_the_activation(rows, inputs, width,
                                                                        threads_count, threads):
    # A relu layer keeps its output alone (mlp.cpp, keeps_output_alone): the sums of its
    # products accumulate in the output's buffer, and the activation must overwrite them once,
    # after the last product. A layer reading two sources is two products.
    threads(threads_count)
    net = bp.Network([Dense(inputs, width, "relu"),
                      Dense(width + inputs, width, "relu", inputs=[1, 0]),
                      Dense(width, 3, inputs=[2])], loss="cross_entropy", dtype="float64",
                     seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((rows, inputs))
    y = rng.integers(0, 3, rows)
    np.testing.assert_allclose(net.forward(X), _manual_forward(net, X), rtol=1e-10, atol=1e-12)
    _, grads = net.loss_and_grad(X, y)
    params = net.params.copy()
    direction = rng.standard_normal(params.size)
    step = 1e-7  # few pre-activations cross 0 (where relu bends) within it
    net.params[...] = params + step * direction
    up = net.loss(X, y)
    net.params[...] = params - step * direction
    down = net.loss(X, y)
    net.params[...] = params
    assert (up - down) / (2 * step) == pytest.approx(grads @ direction, rel=1e-5)
    # The training step's own forward pass (split by k blocks where that applies) gives the
    # same gradient.
    net.train_step(X, y, bp.optim.SGD(lr=0.1))
    np.testing.assert_allclose(net.params, params - 0.1 * grads, rtol=0, atol=1e-12)
