"""bp.gradcheck: backprop agrees with central differences for every activation, loss and output,
and the checker itself fails, pointing at the right entry, when a gradient is wrong."""

import re

import numpy as np
import pytest

import backprop as bp
import reference as ref
from conftest import GRADCHECK_ATOL, GRADCHECK_RTOL

ACTIVATIONS = ref.ACTIVATIONS
KINKED = {"relu", "leaky_relu", "elu"}  # elu's second derivative jumps at 0 (alpha != 1)
LOSS_OUTPUTS = [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")] + [
    ("mse", output) for output in ("softmax",) + ACTIVATIONS
]
TOL = {"rtol": GRADCHECK_RTOL, "atol": GRADCHECK_ATOL}
# Pre-activations closer to a kink than this could be crossed by a finite-difference step.
KINK_GAP = 1e-3


def targets(rng, loss, n_outputs, m):
    if loss == "cross_entropy":
        return rng.integers(0, n_outputs, m)
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, (m, n_outputs))  # soft targets exercise y != 0/1 as well
    return rng.standard_normal((m, n_outputs))


def hidden_names(net):
    return [(layer.activation, layer.alpha) for layer in net.layers[:-1]]


def generic_data(net, loss, m=6, seed=0):
    """Random (X, y) whose pre-activations all stay KINK_GAP away from 0 in every kinked layer, so
    central differences never straddle a kink (relu, leaky_relu, elu)."""
    sizes = net.layer_sizes
    activations = hidden_names(net)
    output = net.output if net.layers[-1].alpha is None else (net.output, net.layers[-1].alpha)
    kinked = [name in KINKED for name, _ in activations] + [net.output in KINKED]
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        X = rng.standard_normal((m, sizes[0]))
        pre, _ = ref.mlp_forward(net.params.astype(np.float64), sizes, activations, output, X)
        if all(np.abs(u).min() > KINK_GAP for u, k in zip(pre, kinked) if k):
            return X, targets(rng, loss, sizes[-1], m)
    raise AssertionError("no generic data found")  # pragma: no cover


def randomize_biases(net, seed=0):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        layer.b[...] = rng.uniform(-0.5, 0.5, layer.b.shape)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss, output", LOSS_OUTPUTS, ids=[f"{l}-{o}" for l, o in LOSS_OUTPUTS])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_passes_for_every_activation_loss_and_output(activation, loss, output, reduction):
    net = bp.Network([3, 4, 3], activation=activation, output=output, loss=loss,
                     reduction=reduction, dtype="float64", seed=1)
    randomize_biases(net)
    X, y = generic_data(net, loss)
    result = bp.gradcheck(net, X, y, **TOL)
    assert result, result
    assert result.ok is True and result.n_checked == net.n_params
    assert result.max_abs_error < 1e-7


@pytest.mark.parametrize("activation, alpha", [("leaky_relu", 0.2), ("elu", 0.5), ("elu", 1.7)])
def test_gradcheck_passes_with_non_default_alpha(activation, alpha):
    net = bp.Network([bp.Dense(3, 5, activation, alpha=alpha), bp.Dense(5, 2)], loss="mse",
                     dtype="float64", seed=2)
    randomize_biases(net)
    X, y = generic_data(net, "mse")
    assert bp.gradcheck(net, X, y, **TOL)


@pytest.mark.parametrize("sizes, activations, loss", [
    ([4, 3], [], "cross_entropy"),
    ([4, 3], [], "binary_cross_entropy"),
    ([4, 3], [], "mse"),
    ([4, 6, 3], ["tanh"], "cross_entropy"),
    ([4, 6, 5, 2], ["relu", "sigmoid"], "binary_cross_entropy"),
    ([4, 6, 5, 4, 3], ["gelu", "elu", "softplus"], "cross_entropy"),
    ([4, 6, 5, 4, 2], ["leaky_relu", "tanh", "identity"], "mse"),
], ids=["1-ce", "1-bce", "1-mse", "2-ce", "3-bce", "4-ce", "4-mse"])
def test_gradcheck_passes_for_whole_networks(sizes, activations, loss):
    net = bp.Network(sizes, activation=activations if activations else "relu", loss=loss,
                     dtype="float64", seed=3)
    randomize_biases(net, 3)
    X, y = generic_data(net, loss, m=8, seed=3)
    result = bp.gradcheck(net, X, y, **TOL)
    assert result, result
    assert result.n_checked == net.n_params


def test_gradcheck_of_a_float32_network_runs_in_float64_and_leaves_it_alone():
    net = bp.Network([4, 6, 3], activation="tanh", dtype="float32", seed=4)
    randomize_biases(net, 4)
    before = net.params.tobytes()
    X, y = generic_data(net, "cross_entropy", m=8)
    result = bp.gradcheck(net, X, y, **TOL)
    assert result, result
    assert net.params.tobytes() == before
    assert net.dtype == np.float32


def perturb_one_gradient(monkeypatch, index, amount=1e-3):
    """Make Network.loss_and_grad (which gradcheck calls on its float64 twin) wrong at one entry."""
    original = bp.network.Network.loss_and_grad

    def wrong(self, X, y, **options):
        value, grads = original(self, X, y, **options)
        grads[index] += amount
        return value, grads

    monkeypatch.setattr(bp.network.Network, "loss_and_grad", wrong)


@pytest.mark.parametrize("index, where", [
    (0, "layer 1 W[0, 0]"),
    (4 * 6 - 1, "layer 1 W[3, 5]"),
    (4 * 6 + 2, "layer 1 b[2]"),
    (4 * 6 + 6 + 3 * 3 + 1, "layer 2 W[3, 1]"),
    (4 * 6 + 6 + 6 * 3 + 2, "layer 2 b[2]"),
])
def test_gradcheck_fails_on_a_wrong_gradient_and_names_the_entry(monkeypatch, index, where):
    net = bp.Network([4, 6, 3], activation="tanh", dtype="float64", seed=5)
    randomize_biases(net, 5)
    X, y = generic_data(net, "cross_entropy")
    assert bp.gradcheck(net, X, y, **TOL)  # correct before the sabotage
    perturb_one_gradient(monkeypatch, index)
    result = bp.gradcheck(net, X, y, **TOL)
    assert not result
    assert result.ok is False
    assert result.worst == where
    assert result.max_abs_error == pytest.approx(1e-3, rel=1e-3)
    assert result.n_checked == net.n_params


def test_gradcheck_catches_a_small_relative_error(monkeypatch):
    # 1e-4 relative error on the largest entry is far above the checker's tolerance.
    net = bp.Network([4, 6, 3], activation="sigmoid", loss="mse", dtype="float64", seed=6)
    X, y = generic_data(net, "mse")
    _, grads = net.loss_and_grad(X, y)
    index = int(np.argmax(np.abs(grads)))
    perturb_one_gradient(monkeypatch, index, amount=1e-4 * abs(grads[index]))
    result = bp.gradcheck(net, X, y, **TOL)
    assert not result
    layer_number = 1 if index < 4 * 6 + 6 else 2
    assert result.worst.startswith(f"layer {layer_number} ")
    assert result.max_rel_error == pytest.approx(1e-4, rel=1e-2)


def test_gradcheck_max_params_checks_a_seeded_subset(monkeypatch):
    net = bp.Network([5, 8, 4], activation="tanh", dtype="float64", seed=7)
    X, y = generic_data(net, "cross_entropy")
    n = net.n_params
    result = bp.gradcheck(net, X, y, max_params=10, **TOL)
    assert result and result.n_checked == 10
    assert bp.gradcheck(net, X, y, max_params=n, **TOL).n_checked == n
    assert bp.gradcheck(net, X, y, max_params=10 * n, **TOL).n_checked == n

    # The subset is np.random.default_rng(seed).choice(n, k, replace=False): a wrong entry is
    # found exactly when the subset includes it.
    chosen = set(np.random.default_rng(11).choice(n, 10, replace=False).tolist())
    inside = min(chosen)
    outside = min(set(range(n)) - chosen)
    perturb_one_gradient(monkeypatch, inside)
    missed = bp.gradcheck(net, X, y, max_params=10, seed=11, **TOL)
    assert not missed
    monkeypatch.undo()
    perturb_one_gradient(monkeypatch, outside)
    assert bp.gradcheck(net, X, y, max_params=10, seed=11, **TOL)
    assert not bp.gradcheck(net, X, y, **TOL)


def test_gradcheck_result_fields():
    net = bp.Network([3, 2], dtype="float64", seed=8)
    X, y = generic_data(net, "cross_entropy")
    result = bp.gradcheck(net, X, y)
    assert isinstance(result, bp.GradcheckResult)
    assert isinstance(result.max_abs_error, float) and isinstance(result.max_rel_error, float)
    assert result.n_checked == 8
    assert re.fullmatch(r"layer 1 (W\[\d, \d\]|b\[\d\])", result.worst)
