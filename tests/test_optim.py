"""bp.optim.SGD: hyper-parameter checks, Optimizer.step and Network.train_step against the oracle's
sgd_step, and one optimizer per network."""

import math

import numpy as np
import pytest

import backprop as bp
import reference as ref
from backprop import Dense
from conftest import ALWAYS_IN_BURST_NS, tolerances

SGD_CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    {"lr": 0.1, "weight_decay": 0.01},
    {"lr": 0.03, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
]
SGD_IDS = ["plain", "momentum", "nesterov", "weight_decay", "all"]


# -- hyper-parameters ---------------------------------------------------------------------------


def test_sgd_defaults_and_repr():
    opt = bp.optim.SGD()
    assert (opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (0.01, 0.0, False, 0.0)
    assert isinstance(opt, bp.optim.Optimizer)
    assert repr(bp.optim.SGD(lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4)) == (
        "SGD(lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.0001)")


def test_sgd_accepts_numpy_scalars_and_ints():
    opt = bp.optim.SGD(lr=np.float32(0.25), momentum=np.float64(0.5), weight_decay=0)
    assert opt.lr == 0.25 and type(opt.lr) is float
    assert opt.momentum == 0.5 and opt.weight_decay == 0.0
    assert bp.optim.SGD(lr=1).lr == 1.0


@pytest.mark.parametrize("kwargs, pattern", [
    ({"lr": -0.1}, r"lr must be .*; got -0\.1$"),
    ({"lr": math.nan}, r"lr must be .*; got nan$"),
    ({"lr": math.inf}, r"lr must be .*; got inf$"),
    ({"momentum": -0.1}, r"momentum must be .*; got -0\.1$"),
    ({"momentum": 1.0}, r"momentum must be .*1.*; got 1\.0$"),
    ({"momentum": 1.5}, r"momentum must be .*; got 1\.5$"),
    ({"momentum": math.nan}, r"momentum must be .*; got nan$"),
    ({"nesterov": True}, r"nesterov needs momentum > 0"),
    ({"nesterov": True, "momentum": 0.0}, r"nesterov needs momentum > 0"),
    ({"weight_decay": -1e-3}, r"weight_decay must be .*; got -0\.001$"),
    ({"weight_decay": math.inf}, r"weight_decay must be .*; got inf$"),
    ({"weight_decay": math.nan}, r"weight_decay must be .*; got nan$"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_sgd_rejects_bad_hyper_parameters(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        bp.optim.SGD(**kwargs)


@pytest.mark.parametrize("value", [None, "fast", [0.1]], ids=["None", "str", "list"])
def test_sgd_rejects_a_non_number_lr_naming_it(value):
    with pytest.raises((TypeError, ValueError), match=r"\blr\b"):
        bp.optim.SGD(lr=value)


def test_lr_can_be_changed_but_only_to_a_valid_value():
    opt = bp.optim.SGD(lr=0.1)
    opt.lr = 0.01
    assert opt.lr == 0.01
    opt.lr = 0  # allowed, as in torch: a schedule may anneal to exactly 0
    assert opt.lr == 0
    opt.lr = 0.01
    with pytest.raises(ValueError, match=r"lr must be .*; got -1$"):
        opt.lr = -1
    with pytest.raises(TypeError, match=r"lr must be a number"):
        opt.lr = None
    assert opt.lr == 0.01


# -- Optimizer.step against reference.sgd_step -------------------------------------------------


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=SGD_IDS)
def test_step_matches_reference_over_several_steps(config, dtype):
    rng = np.random.default_rng(0)
    params = rng.standard_normal(257).astype(dtype)  # odd size: covers any vector tail
    expected = params.copy()
    velocity = None
    opt = bp.optim.SGD(**config)
    tol = tolerances(dtype, 8)
    for step in range(6):
        grads = rng.standard_normal(params.size).astype(dtype)
        buffer = params
        opt.step(params, grads)
        assert params is buffer  # in place
        expected, velocity = ref.sgd_step(expected, grads, velocity, **config)
        np.testing.assert_allclose(params, expected, **tol, err_msg=f"step {step}")
    if config.get("momentum", 0) > 0:
        assert len(opt.state) == 1
        assert opt.state[0].dtype == dtype and opt.state[0].shape == params.shape
        np.testing.assert_allclose(opt.state[0], velocity, **tol)
    else:
        assert opt.state == []


def test_step_converts_grads_to_the_params_dtype(dtype):
    params = np.linspace(-1, 1, 11).astype(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    grads = np.linspace(0, 1, 11).astype(other)
    expected, _ = ref.sgd_step(params, grads.astype(dtype), None, lr=0.5)
    bp.optim.SGD(lr=0.5).step(params, grads)
    assert params.dtype == dtype
    np.testing.assert_allclose(params, expected, **tolerances(dtype))


def test_reset_forgets_the_momentum():
    params = np.zeros(4)
    opt = bp.optim.SGD(lr=1.0, momentum=0.5)
    opt.step(params, np.ones(4))
    opt.step(params, np.ones(4))  # v = 1.5, params = -1 - 1.5
    np.testing.assert_array_equal(params, -2.5)
    opt.reset()
    assert opt.state == []
    opt.step(params, np.ones(4))  # a fresh start: v = 1
    np.testing.assert_array_equal(params, -3.5)


# -- one optimizer per network ------------------------------------------------------------------


def test_optimizer_refuses_a_second_networks_params():
    first = bp.Network([3, 4, 2], dtype="float64", seed=0)
    second = bp.Network([3, 4, 2], dtype="float64", seed=1)
    X = np.random.default_rng(0).standard_normal((5, 3))
    y = np.array([0, 1, 1, 0, 1])
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    first.train_step(X, y, opt)
    before = second.params.tobytes()
    with pytest.raises(ValueError, match="another network"):
        second.train_step(X, y, opt)
    assert second.params.tobytes() == before
    with pytest.raises(ValueError, match="another network"):
        second.fit(X, y, optimizer=opt, epochs=1, batch_size=None, verbose=0)
    assert second.params.tobytes() == before
    with pytest.raises(ValueError, match="another network"):
        opt.step(second.params, np.zeros(second.n_params))
    assert second.params.tobytes() == before
    # a copy of the params is another buffer too: nothing silently steps a stray array
    with pytest.raises(ValueError, match="another network"):
        opt.step(first.params.copy(), np.zeros(first.n_params))
    # the first network goes on training with it
    first.train_step(X, y, opt)
    opt.reset()
    second.train_step(X, y, opt)
    assert second.params.tobytes() != before


def test_plain_sgd_also_belongs_to_one_network():
    first = bp.Network([3, 2], seed=0)
    second = bp.Network([3, 2], seed=1)
    opt = bp.optim.SGD(lr=0.1)
    X = np.ones((2, 3))
    first.train_step(X, [0, 1], opt)
    with pytest.raises(ValueError, match="another network"):
        second.train_step(X, [0, 1], opt)


# -- Network.train_step against the oracle's training steps ----------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=SGD_IDS)
@pytest.mark.parametrize("sizes, activation, loss", [
    ([6, 8, 4], "tanh", "cross_entropy"),
    ([6, 7, 5, 2], ["relu", "sigmoid"], "mse"),
    ([6, 5, 3], "elu", "binary_cross_entropy"),
], ids=["ce", "mse", "bce"])
def test_train_step_matches_reference_steps(sizes, activation, loss, config, reduction, dtype):
    rng = np.random.default_rng(1)
    net = bp.Network(sizes, activation=activation, loss=loss, reduction=reduction, dtype=dtype, seed=2)
    output = net.output
    expected = net.params.copy()
    velocity = None
    opt = bp.optim.SGD(**config)
    tol = tolerances(dtype, 64)
    for step, m in enumerate([8, 5, 8, 1, 13, 8]):
        X = rng.standard_normal((m, sizes[0]))
        if loss == "cross_entropy":
            y = rng.integers(0, sizes[-1], m)
        elif loss == "binary_cross_entropy":
            y = rng.integers(0, 2, (m, sizes[-1])).astype(np.float64)
        else:
            y = rng.standard_normal((m, sizes[-1]))
        loss_before = net.loss(X, y)
        value = net.train_step(X, y, opt)
        assert isinstance(value, float)
        expected_value, grads = ref.mlp_grad(expected, sizes, activation, output, loss,
                                             X.astype(dtype), y, reduction)
        expected, velocity = ref.sgd_step(expected, grads, velocity, **config)
        assert value == pytest.approx(loss_before, rel=tol["rtol"], abs=tol["atol"])
        assert value == pytest.approx(expected_value, rel=tol["rtol"], abs=tol["atol"])
        np.testing.assert_allclose(net.params, expected, **tol, err_msg=f"step {step}")
    assert net.params.dtype == dtype


def test_train_step_equals_loss_and_grad_then_step(dtype):
    # The one native call does what the two Python-level calls do.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 5))
    y = rng.integers(0, 3, 16)
    fused = bp.Network([5, 9, 3], activation="tanh", dtype=dtype, seed=3)
    split = fused.copy()
    opt_fused = bp.optim.SGD(lr=0.1, momentum=0.9)
    opt_split = bp.optim.SGD(lr=0.1, momentum=0.9)
    for _ in range(4):
        fused.train_step(X, y, opt_fused)
        _, grads = split.loss_and_grad(X, y)
        opt_split.step(split.params, grads)
    np.testing.assert_allclose(fused.params, split.params, **tolerances(dtype, 4))


def test_train_step_keeps_the_weights_when_the_loss_is_not_finite():
    net = bp.Network([2, 3, 1], activation="identity", loss="mse", dtype="float32", seed=0)
    net.params = np.full(net.n_params, 1e18)
    before = net.params.tobytes()
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    with pytest.raises(FloatingPointError, match="unchanged"):
        net.train_step(np.full((2, 2), 1e3), np.zeros(2), opt)  # loss ~ (1e39)^2 overflows
    assert net.params.tobytes() == before
    assert all(not state.any() for state in opt.state)


def test_train_step_refuses_an_update_that_overflows(dtype):
    # The loss (about 1e59, summed in double) is finite, but in float32 the gradient is not: the
    # step must raise and change neither the weights nor the momentum.
    net = bp.Network([2, 1], loss="mse", dtype=dtype, seed=0)
    before = net.params.tobytes()
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    X = np.full((1, 2), 1e30)
    if dtype == np.float64:
        net.train_step(X, np.zeros(1), opt)  # representable in float64: a (huge) finite step
        assert np.isfinite(net.params).all()
        return
    with pytest.raises(FloatingPointError, match="unchanged"):
        net.train_step(X, np.zeros(1), opt)
    assert net.params.tobytes() == before
    assert all(not state.any() for state in opt.state)


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("kind, config", [
    pytest.param(bp.optim.SGD, {"lr": 10.0, "momentum": 0.9}, id="sgd"),
    pytest.param(bp.optim.Adam, {"lr": 10.0, "weight_decay": 1.0}, id="adam-l2"),
])
def test_train_step_refuses_an_update_that_overflows_in_one_layer_and_changes_no_layer(
        layer, kind, config, dtype):
    # One layer's first state buffer near half the largest float: its new value stays finite,
    # but times lr 10 the new weights overflow there, while every other layer's update is
    # finite. train_step checks each layer's update in its backward pass, the last layer first;
    # whichever layer fails, no weight and no state of any layer may change.
    net = bp.Network([6, 8, 3], activation="tanh", dtype=dtype, seed=2)
    opt = kind(**config)
    state = opt.state_for(net.params)
    big = np.finfo(dtype).max / 2
    offset = 0 if layer == 0 else net.layers[0].W.size + net.layers[0].b.size
    state[0][offset:offset + net.layers[layer].W.size] = big
    before = [net.params.tobytes()] + [buffer.tobytes() for buffer in state]
    rng = np.random.default_rng(1)
    checked = bp._core.train_step_checked_in_backward_count()
    with pytest.raises(FloatingPointError, match="unchanged"):
        net.train_step(rng.standard_normal((5, 6)).astype(dtype), rng.integers(0, 3, 5), opt)
    assert bp._core.train_step_checked_in_backward_count() == checked + 1
    assert [net.params.tobytes()] + [buffer.tobytes() for buffer in opt.state] == before
    state[0][...] = 0  # from ordinary state a step is made
    net.train_step(rng.standard_normal((5, 6)).astype(dtype), rng.integers(0, 3, 5), opt)
    assert net.params.tobytes() != before[0]


# -- sgd epochs that skip the check pass ---------------------------------------------------------
# Inside one train_epoch call, bounds on |params| and |momentum| carried from update to update
# and the gradients' largest magnitude can prove an sgd update finite; it then skips its check
# pass. Every result must stay what a checked train_step per batch gives, bit for bit.


def _native_epoch(net, opt, X, Y, batch_size, weight=None, order=None):
    """One train_epoch over the rows in `order` (default: all, in order); the engine's dict
    (with proven_updates)."""
    state = opt.state_for(net.params)
    if order is None:
        order = np.arange(len(X), dtype=np.int64)
    return net._engine.train_epoch(net.params, net._grads, state, opt.native_spec(), X, Y,
                                   order, batch_size, sample_weight=weight)


def _replay_steps(net, opt, X, Y, batch_size, stop=None, weight=None, order=None, losses=None):
    """train_step (which always checks) over the same batches; the batches it made. Each
    step's loss is appended to `losses` when given."""
    made = 0
    for start in range(0, len(X) if order is None else len(order), batch_size):
        if made == stop:
            break
        end = start + batch_size
        rows = slice(start, end) if order is None else order[start:end]
        loss = net.train_step(X[rows], Y[rows], opt,
                              sample_weight=None if weight is None else weight[rows])
        if losses is not None:
            losses.append(loss)
        made += 1
    return made


def _regression(dtype, rows=40, features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features)).astype(dtype)
    return X, rng.standard_normal((rows, 2)).astype(dtype)


BOUNDED = [pytest.param(bp.optim.SGD, config, id=name)
           for config, name in zip(SGD_CONFIGS, SGD_IDS)]
BOUNDED += [
    pytest.param(bp.optim.SGD, {"lr": 0.05, "momentum": 0.9, "clip_norm": 0.5, "clip_value": 0.1,
                                "l1": 1e-3}, id="sgd-clipped"),
    pytest.param(bp.optim.Adam, {"lr": 1e-2}, id="adam"),
    # L2 decay feeds the parameters' bound back into the gradient's, and the bound on Adam's
    # step (|a| / eps) is loose: the bounds outgrow float32 within a few updates, which are
    # then checked, and the buffers measured again.
    pytest.param(bp.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "clip_value": 0.2}, id="adam-l2"),
    pytest.param(bp.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}, id="adamw"),
]


@pytest.mark.parametrize("kind, config", BOUNDED)
def test_epoch_proves_ordinary_updates_finite_and_matches_checked_steps(kind, config, dtype):
    X, Y = _regression(dtype)
    net = bp.Network([5, 7, 2], activation="tanh", loss="mse", dtype=dtype, seed=0)
    twin = net.copy()
    opt, twin_opt = kind(**config), kind(**config)
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 7 and result["failed_batch"] == -1
    if kind is bp.optim.Adam and "weight_decay" in config:
        assert 1 <= result["proven_updates"] <= 7
    else:
        assert result["proven_updates"] == 7  # none needed its check pass
    # At 6 rows the layers' inputs and deltas (126 values) outnumber the gradient (58): the
    # proofs take its largest magnitude from a scan.
    assert result["proven_unscanned"] == 0
    assert _replay_steps(twin, twin_opt, X, Y, 6) == 7
    assert net.params.tobytes() == twin.params.tobytes()
    assert len(opt.state) == len(twin_opt.state)
    for mine, theirs in zip(opt.state, twin_opt.state):
        assert mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("kind, config", [(bp.optim.RMSprop, {"lr": 1e-3}),
                                          (bp.optim.Adagrad, {"lr": 1e-2}),
                                          (bp.optim.Rprop, {"lr": 1e-3})],
                         ids=["rmsprop", "adagrad", "rprop"])
def test_other_optimizers_always_check(kind, config, dtype):
    X, Y = _regression(dtype)
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    result = _native_epoch(net, kind(**config), X, Y, 6)
    assert result["batches"] == 7 and result["proven_updates"] == 0


def test_adam_epoch_refuses_a_negative_second_moment_it_is_given(dtype):
    # Written before the call, a negative second moment makes sqrt NaN: no bound may prove
    # that update, and the check refuses it.
    X, Y = _regression(dtype)
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    opt = bp.optim.Adam(lr=1e-3)
    state = opt.state_for(net.params)
    state[1][5] = -1.0
    before = net.params.tobytes(), state[0].tobytes(), state[1].tobytes()
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 0 and result["failed_batch"] == 0
    assert (net.params.tobytes(), state[0].tobytes(), state[1].tobytes()) == before


# Networks whose layers' inputs and deltas, at 4 rows (3 for the one reading a source twice),
# hold fewer values than their gradient: their proofs bound it from those.
WIRED = {
    "plain": ([12, 24, 3], {"activation": "tanh"}, 4),
    "cascade-dropout": ([Dense(12, 20, "tanh", dropout=0.5),
                         Dense(32, 16, "relu", inputs=[0, 1], dropout=0.9),
                         Dense(48, 3, inputs=[0, 1, 2])], {}, 4),
    "source-twice": ([Dense(12, 30, "tanh", dropout=0.3), Dense(60, 3, inputs=[1, 1])], {}, 3),
    "shortcuts": ([12, 20, 20, 3], {"shortcuts": True, "activation": "elu", "dropout": 0.2}, 4),
}


def _wired(wiring, dtype, loss="mse", reduction="mean"):
    """A WIRED network and its batch size."""
    layers, options, batch = WIRED[wiring]
    return bp.Network(layers, loss=loss, reduction=reduction, dtype=dtype, seed=3,
                      **options), batch


def _weighted_rows(dtype, features=12, outputs=3, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features)).astype(dtype)
    Y = rng.standard_normal((rows, outputs)).astype(dtype)
    return X, Y, (rng.random(rows) * 2).astype(dtype)


def _epoch_against_checked_steps(net, opt, twin_opt, X, Y, weight, batch):
    """One native epoch on net, checked train_steps on a copy: the epoch's dict, and whether the
    weights and optimizer state came out the same, bit for bit."""
    twin = net.copy()
    result = _native_epoch(net, opt, X, Y, batch, weight)
    _replay_steps(twin, twin_opt, X, Y, batch, weight=weight)
    same = net.params.tobytes() == twin.params.tobytes() and all(
        mine.tobytes() == theirs.tobytes() for mine, theirs in zip(opt.state, twin_opt.state))
    return result, same


STEP_RULES = [
    pytest.param(bp.optim.SGD, {"lr": 0.01, "momentum": 0.9}, id="sgd-momentum"),
    pytest.param(bp.optim.SGD, {"lr": 0.01}, id="sgd"),
    pytest.param(bp.optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True, "clip_value": 0.1,
                                "l1": 1e-3}, id="sgd-shaped"),
    pytest.param(bp.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1}, id="adam-l2"),
    pytest.param(bp.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}, id="adamw"),
    # checked after the backward pass: clip_norm's scale needs the whole gradient, and the
    # other kinds are not taken layer by layer
    pytest.param(bp.optim.SGD, {"lr": 0.01, "clip_norm": 0.5}, id="sgd-clip-norm"),
    pytest.param(bp.optim.RMSprop, {"lr": 1e-2, "momentum": 0.5}, id="rmsprop"),
]


@pytest.mark.parametrize("kind, config", STEP_RULES)
@pytest.mark.parametrize("wiring", list(WIRED))
def test_train_step_gives_the_bits_of_loss_and_grad_then_step(wiring, kind, config, dtype):
    # train_step checks each layer's update as its backward pass reaches it and then writes them
    # all; loss_and_grad and the optimizer's step check and write the whole update after the
    # gradient. Shortcuts, a source read twice, dropout (the step's masks) and sample weights:
    # weights and state the same bits after every batch.
    net, batch = _wired(wiring, dtype)
    twin = net.copy()
    X, Y, weight = _weighted_rows(dtype)
    opt, twin_opt = kind(**config), kind(**config)
    checked = bp._core.train_step_checked_in_backward_count()
    for start in range(0, len(X), batch):
        rows = slice(start, start + batch)
        net._grads.fill(np.nan)  # every entry is written before its check: an early one sees NaN
        net.train_step(X[rows], Y[rows], opt, sample_weight=weight[rows])
        _, grads = twin.loss_and_grad(X[rows], Y[rows], sample_weight=weight[rows],
                                      dropout_step=twin_opt.steps)
        twin_opt.step(twin.params, grads)
        assert net.params.tobytes() == twin.params.tobytes()
        assert [a.tobytes() for a in opt.state] == [b.tobytes() for b in twin_opt.state]
    assert not np.array_equal(net.params, _wired(wiring, dtype)[0].params)
    taken = kind in (bp.optim.SGD, bp.optim.Adam, bp.optim.AdamW) and "clip_norm" not in config
    steps = -(-len(X) // batch)
    assert bp._core.train_step_checked_in_backward_count() - checked == (steps if taken else 0)


@pytest.mark.parametrize("kind, config", [
    pytest.param(bp.optim.SGD, {"lr": 0.01, "momentum": 0.9}, id="sgd-momentum"),
    pytest.param(bp.optim.SGD, {"lr": 0.01, "clip_norm": 0.5, "clip_value": 0.1, "l1": 1e-3},
                 id="sgd-clipped"),
    pytest.param(bp.optim.SGD, {"lr": 0.01, "clip_value": 0.1, "l1": 1e-3}, id="sgd-shaped"),
    pytest.param(bp.optim.Adam, {"lr": 1e-2}, id="adam"),
    pytest.param(bp.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}, id="adamw"),
])
@pytest.mark.parametrize("wiring", list(WIRED))
def test_epoch_bounds_the_gradient_from_inputs_and_deltas(wiring, kind, config, dtype):
    # Shortcuts, a source read twice, dropout (whose scaled outputs the weight gradient reads)
    # and sample weights: every update proven without a scan of the gradient, with the bits of
    # checked steps. Most are proven before the backward pass and made layer by layer in it.
    net, batch = _wired(wiring, dtype)
    X, Y, weight = _weighted_rows(dtype)
    result, same = _epoch_against_checked_steps(net, kind(**config), kind(**config), X, Y, weight,
                                                batch)
    batches = -(-len(X) // batch)
    assert result["batches"] == batches and result["failed_batch"] == -1
    assert result["proven_updates"] == result["proven_unscanned"] == batches
    if "clip_norm" in config:  # its scale needs the whole gradient: proven after the backward
        assert result["early_updates"] == 0
    elif kind is bp.optim.SGD:
        assert result["early_updates"] == batches
    else:  # the bound on Adam's step (|a| / eps) is loose: the weights' bound grows fast
        assert result["early_updates"] >= 1
    assert same


def test_early_updates_carry_the_largest_values_they_wrote_as_the_next_bounds(dtype):
    # A weight far above the rest, on an input that is always 0, halves at every update (lr *
    # weight_decay = 0.5). Bounds moved by the update's formula could only grow, by half per
    # update, until they proved nothing and the buffers were measured again (when the bounds
    # were moved so, 99 of these 100 updates were proven and 94 made early). The early
    # updates' bounds are the largest values they wrote: all 100 are proven before their
    # backward pass and made in it, with the bits of checked steps.
    net, batch = _wired("plain", dtype)
    X, Y, weight = _weighted_rows(dtype, rows=100 * batch)
    X[:, 0] = 0.0
    start = np.dtype(dtype).type(np.finfo(dtype).max / 1e12)
    net.layers[0].W[0, 3] = start
    result, same = _epoch_against_checked_steps(
        net, bp.optim.SGD(lr=0.5, weight_decay=1.0), bp.optim.SGD(lr=0.5, weight_decay=1.0), X,
        Y, weight, batch)
    assert result["batches"] == 100 and result["failed_batch"] == -1
    assert result["proven_updates"] == result["early_updates"] == 100
    assert net.layers[0].W[0, 3] == start / np.dtype(dtype).type(2.0**100)  # exact halvings
    assert same


@pytest.mark.parametrize("kind, config", [
    pytest.param(bp.optim.SGD, {"lr": 0.05, "momentum": 0.9}, id="sgd-momentum"),
    pytest.param(bp.optim.SGD, {"lr": 0.05}, id="sgd"),
    pytest.param(bp.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "clip_value": 0.1,
                                "l1": 1e-3}, id="sgd-shaped"),
    pytest.param(bp.optim.Adam, {"lr": 1e-3}, id="adam"),
    pytest.param(bp.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.1}, id="adamw"),
])
def test_epoch_after_an_early_update_carries_the_largest_values_it_wrote(kind, config, dtype,
                                                                         threads):
    # The bounds the epoch ends with are exactly the largest magnitudes in the parameters and
    # in the state the proof reads (sgd: the momentum; adam: both moments), on one and two
    # threads, whose pieces of the update each found their own.
    net, batch = _wired("plain", dtype)
    X, Y, weight = _weighted_rows(dtype)
    for count in (1, 2):
        threads(count)
        opt = kind(**config)
        result = _native_epoch(net, opt, X, Y, batch, weight)
        assert result["batches"] == result["early_updates"] == 10
        largest = [float(np.abs(buffer).max()) for buffer in [net.params, *opt.state]]
        assert result["bounds"] == tuple(largest + [0.0] * (3 - len(largest))), f"{count} threads"


def test_epoch_scans_the_gradient_when_its_inputs_cannot_bound_it(dtype):
    # Row 0 has a huge input but weight 0, so its delta is 0 and the gradient stays small; the
    # bound from the inputs and deltas (rows x largest input x largest delta) is huge, and
    # times lr = 10 proves nothing. A scan of the gradient proves every update; the bits are
    # those of checked steps.
    net, batch = _wired("plain", dtype)
    X, Y, weight = _weighted_rows(dtype)
    X[0, 0] = np.finfo(dtype).max / 10
    weight[0] = 0.0
    result, same = _epoch_against_checked_steps(net, bp.optim.SGD(lr=10.0),
                                                bp.optim.SGD(lr=10.0), X, Y, weight, batch)
    assert result["batches"] == 10 and result["proven_updates"] == 10
    assert result["proven_unscanned"] == 9  # batch 0, with row 0, needed the scan
    assert 1 <= result["early_updates"] <= 9  # nor could batch 0 be proven before its backward
    assert same


@pytest.mark.parametrize("wiring", list(WIRED))
@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_bound_holds_in_every_wiring(wiring, loss, reduction, dtype):
    # With dropout on (step 3): the weight gradient reads the dropped outputs, scaled by
    # 1 / (1 - p), and so must the bound. The bound an early update is proven with, from the
    # output's deltas and the weights' bound alone, holds it too, and each layer's delta bound
    # holds that layer's deltas: it is at least the bound from the deltas themselves.
    net, _ = _wired(wiring, dtype, loss, reduction)
    X, _, weight = _weighted_rows(dtype, rows=9, seed=2)
    Y = np.eye(3, dtype=dtype)[np.arange(9) % 3]
    grads = np.empty_like(net.params)
    after = net._engine.gradient_bound(net.params, X, Y, grads, sample_weight=weight,
                                       dropout_step=3)
    assert np.isfinite(grads).all() and grads.any()
    assert float(np.abs(grads).max()) <= after
    largest_weight = float(np.abs(net.params).max())
    again = np.empty_like(grads)
    before = net._engine.gradient_bound_before_backward(net.params, X, Y, again, largest_weight,
                                                        sample_weight=weight, dropout_step=3)
    assert again.tobytes() == grads.tobytes()
    assert after <= before < np.inf


# Each hidden activation where its derivative is largest (alpha where it has one), and that
# largest derivative.
STEEPEST = {
    "identity": (None, 0.7, 1.0),
    "sigmoid": (None, 0.0, 0.25),
    "tanh": (None, 0.0, 1.0),
    "relu": (None, 0.7, 1.0),
    "leaky_relu": (3.0, -0.7, 3.0),
    "elu": (2.5, -1e-3, 2.5 * math.exp(-1e-3)),
    "softplus": (None, 30.0, 1.0),
    "gelu": (None, math.sqrt(2.0), 0.5 * math.erfc(-1.0) + math.exp(-1.0) / math.sqrt(math.pi)),
}


@pytest.mark.parametrize("activation", list(STEEPEST))
def test_gradient_bound_before_backward_covers_the_steepest_derivative(activation, dtype):
    # One unit per layer: x -> u (where f' is largest) -> f(u) -> y_hat, every weight 1 or
    # below, so the first weight's gradient, x f'(u) (y_hat - y), is the largest. The bound
    # must hold it, and stay within the slack derivative_bound allows (sigmoid's 1 for 1/4).
    alpha, u, steepest = STEEPEST[activation]
    net = bp.Network([Dense(1, 1, activation, alpha=alpha), Dense(1, 1)], output="identity",
                     loss="mse", reduction="sum", dtype=dtype, seed=0)
    x = 1000.0
    net.params[...] = 0.0
    net.layers[0].W[...] = u / x
    net.layers[1].W[...] = 1.0
    X, Y = np.full((1, 1), x, dtype), np.full((1, 1), -1.0, dtype)
    grads = np.empty_like(net.params)
    bound = net._engine.gradient_bound_before_backward(net.params, X, Y, grads, 1.0)
    largest = float(np.abs(grads).max())
    assert largest == pytest.approx(abs(float(grads[0])))
    assert abs(float(grads[0])) == pytest.approx(
        x * steepest * abs(float(net.predict(X)[0, 0]) + 1.0), rel=1e-3)
    assert largest <= bound <= largest * 4.01


@pytest.mark.parametrize("wiring", ["dropout", "read-twice"])
def test_gradient_bound_before_backward_counts_dropout_and_every_reading(wiring, dtype):
    # One identity unit between the input and the output, every weight 1: the first weight's
    # gradient is x (y_hat - y) times dropout's scale (10 for p = 0.9, on a step that keeps the
    # unit), or twice that when the output reads the unit twice. The bound must hold it; one
    # that missed the scale or a reading would be 10 or 2 times too small.
    if wiring == "dropout":
        layers = [Dense(1, 1, "identity", dropout=0.9), Dense(1, 1)]
    else:
        layers = [Dense(1, 1, "identity"), Dense(2, 1, inputs=[1, 1])]
    net = bp.Network(layers, output="identity", loss="mse", reduction="sum", dtype=dtype, seed=0)
    net.params[...] = 0.0
    for layer in net.layers:
        layer.W[...] = 1.0
    X, Y = np.full((1, 1), 1000.0, dtype), np.zeros((1, 1), dtype)
    grads = np.empty_like(net.params)
    for step in range(200):  # a step whose mask keeps the unit
        bound = net._engine.gradient_bound_before_backward(net.params, X, Y, grads, 1.0,
                                                           dropout_step=step)
        if grads[0] != 0:
            break
    expected = 1000.0 * 1000.0 * (10.0 if wiring == "dropout" else 2.0) ** 2
    assert float(grads[0]) == pytest.approx(expected, rel=1e-5)
    assert float(np.abs(grads).max()) == float(grads[0])
    assert grads[0] <= bound <= grads[0] * 1.001


def test_gradient_bound_before_backward_refuses_an_infinite_pre_activation(dtype):
    # A sigmoid unit whose sum overflows to +inf gives a finite output (1), so a finite loss;
    # the derivative reads U, and no bound is claimed.
    net = bp.Network([Dense(1, 1, "sigmoid"), Dense(1, 1)], output="identity", loss="mse",
                     dtype=dtype, seed=0)
    net.params[...] = 0.0
    net.layers[0].W[...] = np.finfo(dtype).max / 2
    net.layers[1].W[...] = 1.0
    X, Y = np.full((1, 1), 4.0, dtype), np.zeros((1, 1), dtype)
    grads = np.empty_like(net.params)
    assert np.isfinite(net.loss(X, Y))
    assert net._engine.gradient_bound_before_backward(net.params, X, Y, grads, 1.0) == np.inf


def test_gradient_bound_before_backward_refuses_an_infinite_output_that_dropout_hides(dtype):
    # Unit 0 of the hidden layer is +inf; a step whose mask drops it passes the next layer a
    # 0 there and gives a finite loss, but its derivative still reads the +inf: no bound.
    net = bp.Network([Dense(1, 2, "identity", dropout=0.5), Dense(2, 1)], output="identity",
                     loss="mse", dtype=dtype, seed=0)
    net.params[...] = 0.0
    net.layers[0].W[...] = [[np.finfo(dtype).max / 2, 1.0]]
    net.layers[1].W[...] = 1.0
    X, Y = np.full((1, 1), 4.0, dtype), np.zeros((1, 1), dtype)
    grads = np.empty_like(net.params)
    steps = [step for step in range(64)
             if np.isfinite(net._engine.loss(net.params, X, Y, dropout_step=step))]
    assert steps and len(steps) < 64  # some masks drop unit 0, others keep it
    for step in steps[:4]:
        bound = net._engine.gradient_bound_before_backward(net.params, X, Y, grads, 1.0,
                                                           dropout_step=step)
        assert bound == np.inf


def test_gradient_bound_reads_the_outputs_dropout_scaled(dtype):
    # h = 0.5 kept by dropout 0.9 reaches layer 2 as 5: its weight's gradient is 5 x the output
    # delta 0.05 = 0.25, which a bound from h itself (at least 1, for the bias: 0.05), or from
    # layer 1 (input 1 x its delta 0.05 x 0.01 x 10), would miss.
    net = bp.Network([Dense(1, 1, "identity", dropout=0.9), Dense(1, 1)], output="identity",
                     loss="mse", reduction="sum", dtype=dtype, seed=0)
    net.params[...] = 0.0
    net.layers[0].W[...] = 0.5
    net.layers[1].W[...] = 0.01
    X, Y = np.ones((1, 1), dtype), np.zeros((1, 1), dtype)
    grads = np.zeros_like(net.params)
    for step in range(200):  # a step whose mask keeps the unit
        bound = net._engine.gradient_bound(net.params, X, Y, grads, dropout_step=step)
        if grads[2] != 0:
            break
    largest = float(grads[2])  # layer 2's weight
    assert largest == pytest.approx(0.25, rel=1e-6)
    assert largest <= bound <= largest * (1 + 1e-5)


def test_gradient_bound_counts_what_underflow_rounds_up(dtype):
    # 1.5 x the smallest subnormal rounds to 2 of them: in float32 a bound of rows x input x
    # delta alone (1.5 of them, in double) would sit below the gradient. (In float64 the bound's
    # own product rounds up to 2 of them.)
    tiny = np.finfo(dtype).smallest_subnormal
    net = bp.Network([Dense(1, 1)], output="identity", loss="mse", reduction="sum", dtype=dtype,
                     seed=0)
    net.params[...] = 0.0
    X, Y = np.full((1, 1), 1.5, dtype), np.full((1, 1), -tiny, dtype)
    grads = np.empty_like(net.params)
    bound = net._engine.gradient_bound(net.params, X, Y, grads)
    assert 0 < float(np.abs(grads).max()) <= bound


# Hidden layers whose outputs each forward path writes: (rows, layer sizes, options).
RECORDING_PATHS = {
    # 64 x 256 x 256: split by k blocks on two threads, each thread writing its rows of X_l
    "k-blocks": (64, [256, 256, 256, 10], {}),
    # 64 x 256 x 128 (k under 3 m): split into column slabs, the step on each tile
    "slabs": (64, [128, 256, 256, 10], {}),
    # 128 x 512: 2^16 outputs, the activation in a pass of its own over X_l
    "pass": (128, [256, 512, 512, 10], {}),
    # each layer reads every earlier one: the step after the last source's product
    "shortcuts": (64, [128, 256, 256, 10], {"shortcuts": True}),
}


@pytest.mark.parametrize("activation", ["relu", "elu"])
@pytest.mark.parametrize("path", list(RECORDING_PATHS))
def test_gradient_bounds_read_the_hidden_outputs_the_forward_recorded(path, activation, dtype,
                                                                      threads):
    # In a training forward (a dropout step given; no layer has dropout) each thread records the
    # largest hidden output it wrote (relu's in place of the sums, elu's beside them), and the
    # bounds read those rather than scanning the outputs; inference's forward records nothing,
    # and they scan. The bounds must be the same, to the bit, with the largest output in the
    # first, a middle or the last row, on one thread and on two.
    rows, sizes, options = RECORDING_PATHS[path]
    rng = np.random.default_rng(5)
    X = rng.standard_normal((rows, sizes[0])).astype(dtype)
    X[:, 7] = 0.0
    Y = np.eye(10, dtype=dtype)[np.arange(rows) % 10]
    net = bp.Network(sizes, activation=activation, loss="cross_entropy", dtype=dtype, seed=1,
                     **options)
    net.layers[0].W[7] *= 1e4  # input 7 makes its row's hidden outputs the largest
    for count in (1, 2):
        threads(count)
        for row in (0, rows * 5 // 8, rows - 1):
            X[row, 7] = 1.0 + row / rows
            grads = np.empty_like(net.params)
            scanned = net._engine.gradient_bound(net.params, X, Y, grads)
            recorded = net._engine.gradient_bound(net.params, X, Y, grads, dropout_step=0)
            assert recorded == scanned < np.inf, f"{count} threads, row {row}"
            largest_weight = float(np.abs(net.params).max())
            before = [net._engine.gradient_bound_before_backward(net.params, X, Y, grads,
                                                                 largest_weight, dropout_step=step)
                      for step in (-1, 0)]
            assert before[0] == before[1] < np.inf, f"{count} threads, row {row}"
            X[row, 7] = 0.0


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_gradient_bound_holds_every_gradient_entry(activation, rows, dtype):
    # The bound a training step proves its update with: at least every |gradient| entry, and
    # not loose beyond rows x largest input x largest delta (the rounding adds a hair).
    rng = np.random.default_rng(rows)
    X = (rng.standard_normal((rows, 6)) * 3).astype(dtype)
    Y = rng.standard_normal((rows, 3)).astype(dtype)
    net = bp.Network([6, 9, 8, 3], activation=activation, loss="mse", reduction="sum",
                     dtype=dtype, seed=rows)
    grads = np.empty_like(net.params)
    bound = net._engine.gradient_bound(net.params, X, Y, grads)
    assert np.isfinite(grads).all() and grads.any()
    assert float(np.abs(grads).max()) <= bound  # compared in float64
    # All rows and deltas alike: every sum is exactly rows x input x delta, the bound's worst case.
    Xs = np.full((rows, 6), 2.0, dtype)
    flat = bp.Network([6, 3], activation="identity", loss="mse", reduction="sum", dtype=dtype,
                      seed=0)
    flat.params[...] = 0.0
    Ys = np.full((rows, 3), -0.5, dtype)
    grads = np.empty_like(flat.params)
    bound = flat._engine.gradient_bound(flat.params, Xs, Ys, grads)
    weight_grad, bias_grad = grads[:18], grads[18:]  # W (6 x 3), then b
    assert (bias_grad == bias_grad[0]).all() and bias_grad[0] != 0  # rows x the one delta
    assert (weight_grad == 2.0 * bias_grad[0]).all()  # rows x input 2 x delta
    largest = float(np.abs(weight_grad).max())
    assert largest <= bound <= largest * (1 + 1e-5)


def test_gradient_bound_is_infinite_for_a_non_finite_input(dtype):
    X = np.ones((4, 3), dtype)
    X[2, 1] = np.inf
    net = bp.Network([3, 2], activation="identity", loss="mse", dtype=dtype, seed=0)
    grads = np.empty_like(net.params)
    assert net._engine.gradient_bound(net.params, X, np.zeros((4, 2), dtype), grads) == np.inf


def test_sgd_epoch_checks_what_the_bounds_cannot_prove(dtype):
    # One weight near the dtype's largest value, on an input that is always 0: its updates stay
    # finite, but no bound can show that, so every update is checked, and made.
    X, Y = _regression(dtype)
    X[:, 0] = 0.0
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    net.layers[0].W[0, 3] = np.finfo(dtype).max / 2
    twin = net.copy()
    opt, twin_opt = bp.optim.SGD(lr=0.05, momentum=0.9), bp.optim.SGD(lr=0.05, momentum=0.9)
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 7 and result["proven_updates"] == 0
    assert _replay_steps(twin, twin_opt, X, Y, 6) == 7
    assert net.params.tobytes() == twin.params.tobytes()
    assert net.layers[0].W[0, 3] == np.finfo(dtype).max / 2


def test_sgd_epoch_refuses_a_step_that_overflows_after_proven_ones(dtype):
    # Batches 1-2 have zero gradients (proven, nothing moves); batch 3's gradients are finite,
    # but times lr = 1e300 (float64) or 1e30 (float32) the step overflows: the bounds must not
    # prove it, and the check must refuse it, leaving the weights and momentum of batch 2.
    huge = 1e300 if dtype == np.float64 else 1e30
    net = bp.Network([2, 1], activation="identity", loss="mse", dtype=dtype, seed=0)
    X = np.zeros((6, 2), dtype)
    X[4:] = 1e6
    Y = np.zeros((6, 1), dtype)
    opt = bp.optim.SGD(lr=huge, momentum=0.9)
    before = net.params.tobytes()
    result = _native_epoch(net, opt, X, Y, 2)
    assert result["batches"] == 2 and result["failed_batch"] == 2
    assert result["proven_updates"] == 2
    assert net.params.tobytes() == before
    assert not opt.state[0].any()


def test_sgd_epoch_measures_the_momentum_it_is_given(dtype):
    # A momentum entry near the largest value, written before the call: the first update's
    # step 0.9 * v overflows once times lr = 10, so it must be refused and nothing written.
    X, Y = _regression(dtype)
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    opt = bp.optim.SGD(lr=10.0, momentum=0.9)
    state = opt.state_for(net.params)
    state[0][5] = np.finfo(dtype).max / 2
    before = net.params.tobytes(), state[0].tobytes()
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 0 and result["failed_batch"] == 0
    assert (net.params.tobytes(), state[0].tobytes()) == before


def test_epoch_bounds_are_exact_maxima_not_bit_unions(dtype):
    # Weights of 1.5 and 2.5: an OR of their bits would read as Inf and prove nothing; the
    # largest magnitude proves every update.
    X, Y = _regression(dtype)
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    net.layers[0].W[0, :2] = [1.5, 2.5]
    opt = bp.optim.SGD(lr=0.01, momentum=0.9)
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 7 and result["proven_updates"] == 7


def test_epoch_measures_the_buffers_again_after_an_update_it_could_not_prove(dtype):
    # A weight at a fifth of the largest value, on an input that is always 0, halves at every
    # update (lr * weight_decay = 0.5), while its bound grows by half per proven update (the
    # bound cannot know the sign). Over a quarter of the largest value nothing is proven: update
    # 1 (bound 0.3) and update 4 (0.1 * 1.5^3 = 0.34) are checked; each time the next one
    # measures the buffers again (0.1, then 0.0125) and is proven.
    X, Y = _regression(dtype, rows=60)
    X[:, 0] = 0.0
    net = bp.Network([5, 7, 2], loss="mse", dtype=dtype, seed=0)
    net.layers[0].W[0, 3] = np.finfo(dtype).max / 5
    twin = net.copy()
    opt = bp.optim.SGD(lr=0.5, weight_decay=1.0)
    twin_opt = bp.optim.SGD(lr=0.5, weight_decay=1.0)
    result = _native_epoch(net, opt, X, Y, 6)
    assert result["batches"] == 10 and result["proven_updates"] == 8
    assert _replay_steps(twin, twin_opt, X, Y, 6) == 10
    assert net.params.tobytes() == twin.params.tobytes()


# A batch whose rows follow one another in the order is read where it lies in X (and Y and the
# weights); any other is copied first. Either way the step must see exactly those rows.
ORDER_OF_MIXED_BATCHES = np.array(
    [0, 1, 2, 3, 4, 5,          # consecutive from the first row
     13, 14, 15, 16, 17, 18,    # consecutive from the middle
     30, 12, 7, 25, 6, 19,      # scattered
     11, 10, 9, 8, 7, 6,        # a run backwards
     20, 21, 22, 23, 24, 20,    # consecutive but for the last row, the first again
     20, 25, 22, 23, 24, 25,    # the ends of a run, not its middle
     34, 35, 36, 37, 38, 39,    # consecutive up to the last row
     26, 27, 28],               # a short last batch, consecutive
    dtype=np.int64)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_epoch_over_consecutive_and_scattered_batches_matches_steps(weighted, dtype, threads):
    threads(2)
    X, Y = _regression(dtype)
    weight = np.random.default_rng(5).uniform(0.5, 2.0, len(X)).astype(dtype) if weighted else None
    kept = (X.copy(), Y.copy())
    net = bp.Network([5, 7, 2], activation="tanh", loss="mse", dtype=dtype, seed=0)
    twin = net.copy()
    opt, twin_opt = bp.optim.SGD(lr=0.05, momentum=0.9), bp.optim.SGD(lr=0.05, momentum=0.9)
    result = _native_epoch(net, opt, X, Y, 6, weight, order=ORDER_OF_MIXED_BATCHES)
    assert result["batches"] == 8 and result["rows"] == len(ORDER_OF_MIXED_BATCHES)
    losses = []
    _replay_steps(twin, twin_opt, X, Y, 6, weight=weight, order=ORDER_OF_MIXED_BATCHES,
                  losses=losses)
    assert net.params.tobytes() == twin.params.tobytes()
    assert opt.state[0].tobytes() == twin_opt.state[0].tobytes()
    batch_rows = np.diff(np.r_[0:len(ORDER_OF_MIXED_BATCHES):6, len(ORDER_OF_MIXED_BATCHES)])
    assert result["loss_sum"] == pytest.approx(float(np.dot(losses, batch_rows)), rel=1e-12)
    assert X.tobytes() == kept[0].tobytes() and Y.tobytes() == kept[1].tobytes()


@pytest.mark.parametrize("count, in_burst, shortcut", [(2, True, False), (3, True, False),
                                                       (2, False, False), (2, True, True)],
                         ids=["2-threads", "3-threads", "last-batch-alone", "input-read-again"])
def test_scattered_batches_copied_inside_a_k_block_split_match_steps(dtype, threads, call_burst,
                                                                     count, in_burst, shortcut):
    # 784-64-10 in batches of 32 (and a last one of 8) from a shuffled order: the first layer
    # splits by k blocks, and each batch's rows are copied by the threads of that region
    # (mlp_forward's pending batch), then read by all of them. Outside a burst the last batch
    # (401k multiply-adds) runs on one thread, which copies its rows before the product; a
    # last layer that reads the input again (a shortcut) reads the copy. The epoch must match
    # train_step over the same rows, which reads the caller's arrays.
    call_burst(window_ns=ALWAYS_IN_BURST_NS if in_burst else 0)
    threads(count)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((104, 784)).astype(dtype)
    Y = rng.standard_normal((104, 10)).astype(dtype)
    order = rng.permutation(104).astype(np.int64)
    last = bp.Dense(64 + 784, 10, inputs=[1, 0]) if shortcut else bp.Dense(64, 10)
    net = bp.Network([bp.Dense(784, 64, "relu"), last], loss="mse", dtype=dtype, seed=0)
    twin = net.copy()
    opt, twin_opt = bp.optim.SGD(lr=0.01, momentum=0.9), bp.optim.SGD(lr=0.01, momentum=0.9)
    splits_before = bp._core.gemm_k_split_count()
    result = _native_epoch(net, opt, X, Y, 32, order=order)
    assert result["batches"] == 4
    splits = bp._core.gemm_k_split_count() - splits_before
    if shortcut:  # the shortcut's product (32 x 10 x 784) may split too, by path and type
        assert splits >= 4
    else:
        assert splits == (4 if in_burst else 3)
    assert _replay_steps(twin, twin_opt, X, Y, 32, order=order) == 4
    assert net.params.tobytes() == twin.params.tobytes()
    assert opt.state[0].tobytes() == twin_opt.state[0].tobytes()


@pytest.mark.parametrize("inputs, count, in_burst, shortcut",
                         [(784, 2, True, False), (784, 3, True, False), (784, 1, True, False),
                          (100, 2, True, False), (784, 2, False, False), (784, 2, True, True)],
                         ids=["k-blocks", "3-threads", "1-thread", "slabs", "last-batch-alone",
                              "input-read-again"])
def test_a_scattered_batch_records_its_largest_input_as_it_is_copied(dtype, threads, call_burst,
                                                                     inputs, count, in_burst,
                                                                     shortcut):
    # The threads that copy a shuffled batch (inside the first layer's k-block region, or before
    # a product split by slabs; outside a burst the last batch of 8 rows runs on one thread)
    # record its largest magnitude, which the proof reads in place of a scan of the batch. It
    # must be the batch's largest wherever that lies: the first, a middle or the last row, the
    # first, a middle or the last column.
    call_burst(window_ns=ALWAYS_IN_BURST_NS if in_burst else 0)
    threads(count)
    rng = np.random.default_rng(11)
    X = rng.standard_normal((104, inputs)).astype(dtype)
    Y = rng.standard_normal((104, 10)).astype(dtype)
    order = rng.permutation(104).astype(np.int64)
    last = order[96:]  # the last batch
    for row, column, value in ((last[0], 0, 9.5), (last[3], inputs // 2, -7.0),
                               (last[-1], inputs - 1, -11.25)):
        X_try = X.copy()
        X_try[row, column] = value
        last_layer = bp.Dense(64 + inputs, 10, inputs=[1, 0]) if shortcut else bp.Dense(64, 10)
        net = bp.Network([bp.Dense(inputs, 64, "relu"), last_layer], loss="mse", dtype=dtype,
                         seed=0)
        splits_before = bp._core.gemm_k_split_count()
        result = _native_epoch(net, bp.optim.SGD(lr=0.01, momentum=0.9), X_try, Y, 32,
                               order=order)
        splits = bp._core.gemm_k_split_count() - splits_before
        if count > 1 and inputs == 784 and not shortcut:  # the copy inside a k-block region
            assert splits == (4 if in_burst else 3)
        elif inputs == 100:
            assert splits == 0
        assert result["batches"] == result["proven_updates"] == 4
        assert result["input_bound"] == abs(value), f"row {row}, column {column}"


def test_epoch_proves_and_matches_over_two_threads(dtype, threads):
    # Enough parameters (over 2^15) that the scans and the update split over the threads.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 200)).astype(dtype)
    Y = rng.standard_normal((64, 2)).astype(dtype)
    results = []
    for count in (1, 2):
        threads(count)
        net = bp.Network([200, 200, 2], loss="mse", dtype=dtype, seed=0)
        opt = bp.optim.SGD(lr=0.01, momentum=0.9)
        result = _native_epoch(net, opt, X, Y, 16)
        assert result["batches"] == 4 and result["proven_updates"] == 4
        if count == 1:  # no scan to fetch the weights on the way: the inputs' bound proves them
            assert result["proven_unscanned"] == 4
        results.append((net.params.tobytes(), opt.state[0].tobytes()))
    twin = bp.Network([200, 200, 2], loss="mse", dtype=dtype, seed=0)
    twin_opt = bp.optim.SGD(lr=0.01, momentum=0.9)
    assert _replay_steps(twin, twin_opt, X, Y, 16) == 4
    assert results[0] == results[1] == (twin.params.tobytes(), twin_opt.state[0].tobytes())


def test_epoch_with_weights_split_by_rows_proves_without_a_scan(dtype, threads):
    # 784-64-10 in batches of 32: the forward splits the first layer's weights by rows (k
    # blocks), as the update's shares do, so on two threads the proof takes its bound from the
    # inputs and deltas, as on one, rather than scan the gradient to fetch the weights for
    # writing (which it does, where each share fits in half of L2, for a forward split by
    # slabs of U).
    rng = np.random.default_rng(8)
    X = rng.standard_normal((128, 784)).astype(dtype)
    Y = rng.standard_normal((128, 10)).astype(dtype)
    results = []
    for count in (1, 2):
        threads(count)
        net = bp.Network([784, 64, 10], loss="mse", dtype=dtype, seed=0)
        opt = bp.optim.SGD(lr=0.01, momentum=0.9)
        result = _native_epoch(net, opt, X, Y, 32)
        assert result["batches"] == 4 and result["proven_unscanned"] == 4, f"{count} threads"
        results.append((net.params.tobytes(), opt.state[0].tobytes()))
    assert results[0] == results[1]


def _steps_then_epoch_on_one_to_three_threads(threads, make_network, X, y, batch):
    """For 1, 2 and 3 threads, from make_network() and SGD with momentum: train_step over X's
    batches in order, then one fit epoch. Per count: the k-block splits the GEMMs took, and
    (step losses, epoch losses, params, momentum, forward on X) as bytes where they are arrays."""
    runs = []
    for count in (1, 2, 3):
        threads(count)
        net = make_network()
        opt = bp.optim.SGD(lr=0.05, momentum=0.9)
        splits_before = bp._core.gemm_k_split_count()
        losses = [net.train_step(X[i:i + batch], y[i:i + batch], opt)
                  for i in range(0, len(X), batch)]
        history = net.fit(X, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0)
        k_splits = bp._core.gemm_k_split_count() - splits_before
        runs.append((k_splits, (losses, list(history["loss"]), net.params.tobytes(),
                                opt.state[0].tobytes(), net.forward(X).tobytes())))
    return runs


@pytest.mark.parametrize("sources", [[0, 1], [1, 0]], ids=["inputs-first", "inputs-second"])
def test_steps_whose_forward_splits_by_k_blocks_give_the_bytes_of_one_thread(dtype, threads,
                                                                             sources):
    # Layers that read the 784 inputs of 32 rows (four k blocks of 196) split that product by k
    # blocks on two and three threads (mlp.cpp's forward_split): the first layer's with its
    # bias, the second's with the bias (inputs first) or added onto the first layer's product
    # (inputs second). Every thread count must give the bytes of one.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((96, 784)).astype(dtype)
    y = rng.integers(0, 10, 96)

    def network():
        return bp.Network([bp.Dense(784, 64, "relu"), bp.Dense(848, 96, "tanh", inputs=sources),
                           bp.Dense(96, 10)], dtype=dtype, seed=0)

    runs = _steps_then_epoch_on_one_to_three_threads(threads, network, X, y, 32)
    assert [k_splits for k_splits, _ in runs] == [0, 2 * 6, 2 * 6]  # 2 per step
    results = [result for _, result in runs]
    assert np.all(np.isfinite(results[0][0] + results[0][1]))
    assert results[0][2] != network().params.tobytes()
    assert results[1] == results[0] and results[2] == results[0]


def test_steps_of_128_rows_through_784_inputs_split_by_k_blocks_with_the_bytes_of_one_thread(
        dtype, threads):
    # mnist's first layer: 128 rows through 784 inputs, four k blocks of 196. On two threads the
    # other thread's two blocks' products (2 x 128 x n) are under a third of W's 784 x n values,
    # so the product splits by k blocks; on three threads (the other threads' three blocks) it
    # splits by slabs. The second layer (32 deep) is one block. Every count gives the bytes of one.
    rng = np.random.default_rng(8)
    X = rng.standard_normal((256, 784)).astype(dtype)
    y = rng.integers(0, 10, 256)
    runs = _steps_then_epoch_on_one_to_three_threads(
        threads, lambda: bp.Network([784, 32, 10], activation="relu", dtype=dtype, seed=0),
        X, y, 128)
    assert [k_splits for k_splits, _ in runs] == [0, 1 * 4, 0]  # 1 per step on two threads
    results = [result for _, result in runs]
    assert np.all(np.isfinite(results[0][0] + results[0][1]))
    assert results[1] == results[0] and results[2] == results[0]


def test_steps_of_256_deep_layers_split_by_two_k_blocks_with_the_bytes_of_one_thread(dtype,
                                                                                    threads):
    # deep's shape: 64 rows through layers of 256 inputs, one k block of KC, which a layer sums
    # in two of 128 on any thread count (mlp.cpp, kLayerKBlocks): two threads then split the
    # two hidden layers' products by k blocks, three by slabs (two blocks for three threads).
    # The last layer (256 x 2) is too small to split. Every thread count gives the bytes of one.
    rng = np.random.default_rng(6)
    X = rng.standard_normal((192, 256)).astype(dtype)
    y = rng.integers(0, 2, 192)
    runs = _steps_then_epoch_on_one_to_three_threads(
        threads, lambda: bp.Network([256, 256, 256, 2], activation="relu", dtype=dtype, seed=0),
        X, y, 64)
    assert [k_splits for k_splits, _ in runs] == [0, 2 * 6, 0]  # 2 per step on two threads
    results = [result for _, result in runs]
    assert np.all(np.isfinite(results[0][0] + results[0][1]))
    assert results[1] == results[0] and results[2] == results[0]


@pytest.mark.parametrize("make_optimizer", [
    lambda: bp.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    lambda: bp.optim.Adam(lr=0.01),
    lambda: bp.optim.RMSprop(lr=0.01, momentum=0.5, centered=True),
    lambda: bp.optim.Rprop(lr=0.01),
], ids=["sgd-nesterov", "adam", "rmsprop-centered", "rprop"])
def test_train_step_updates_every_parameter_as_one_flat_update_does(dtype, threads,
                                                                    make_optimizer):
    # train_step shares its update out by the rows of each layer's weights and bias
    # (UpdateShares): every parameter must be updated exactly once, as optimizer.step updates
    # the flat buffer, on any thread count. A layer of one input and one output (fewer rows
    # than threads), a layer reading two sources, and weights of 300 rows (2^15 parameters and
    # more, so the update splits).
    rng = np.random.default_rng(7)
    X = rng.standard_normal((48, 1)).astype(dtype)
    y = rng.integers(0, 3, 48)
    layers = [bp.Dense(1, 1, "tanh"), bp.Dense(1, 300, "relu"), bp.Dense(301, 120, "tanh",
              inputs=[1, 2]), bp.Dense(120, 3)]
    results = []
    for count in (1, 2, 3):
        threads(count)
        stepped = bp.Network(layers, dtype=dtype, seed=1)
        flat = bp.Network(layers, dtype=dtype, seed=1)
        stepped_opt, flat_opt = make_optimizer(), make_optimizer()
        for i in range(0, 48, 16):
            stepped.train_step(X[i:i + 16], y[i:i + 16], stepped_opt)
            _, grads = flat.loss_and_grad(X[i:i + 16], y[i:i + 16])
            flat_opt.step(flat.params, grads)
        assert stepped.params.tobytes() == flat.params.tobytes(), f"{count} threads"
        assert all(a.tobytes() == b.tobytes() for a, b in zip(stepped_opt.state, flat_opt.state))
        results.append(stepped.params.tobytes())
    assert results[0] != bp.Network(layers, dtype=dtype, seed=1).params.tobytes()
    assert results[1] == results[0] and results[2] == results[0]


def test_epoch_over_two_threads_refuses_an_overflow_in_one_weight_row(dtype, threads):
    # The first layer's weights and every bias start at 0 and only input 150 is non-zero, so of
    # the weight gradient only row 150 (entries 30000-30199 of the buffer, in the second
    # thread's share) is large; times lr its step overflows, while the other gradients' steps
    # stay finite. Each thread's scan (which may fetch the weights on the way) must see that
    # row: had it missed it, the proof would pass and the write would leave Inf.
    threads(2)
    lr = 1e305 if dtype == np.float64 else 1e37
    net = bp.Network([200, 200, 2], activation="identity", loss="mse", dtype=dtype, seed=0)
    net.layers[0].W[...] = 0.0
    for layer in net.layers:
        layer.b[...] = 0.0
    X = np.zeros((16, 200), dtype)
    X[:, 150] = 1e6
    Y = np.ones((16, 2), dtype)
    opt = bp.optim.SGD(lr=lr, momentum=0.9)
    before = net.params.tobytes()
    result = _native_epoch(net, opt, X, Y, 16)
    assert result["batches"] == 0 and result["failed_batch"] == 0
    assert result["proven_updates"] == 0
    assert net.params.tobytes() == before
    assert not opt.state[0].any()


@pytest.mark.parametrize("case", ["sgd-lr-inf", "adam-step-inf", "momentum-zero-times-inf"])
def test_epoch_refuses_what_rounds_to_inf_times_zero(case):
    # float32 constants that round to Inf, or to 0 against an Inf: with zero gradients the
    # update computes Inf * 0 = NaN. The proof must not pass it, and the check refuses it.
    dtype = np.float32
    net = bp.Network([2, 1], activation="identity", loss="mse", dtype=dtype, seed=0)
    X, Y = np.zeros((4, 2), dtype), np.zeros((4, 1), dtype)  # zero output, zero gradients
    if case == "sgd-lr-inf":
        opt = bp.optim.SGD(lr=1e39)  # finite in Python, Inf in float32
    elif case == "adam-step-inf":
        opt = bp.optim.Adam(lr=1e38)  # step size lr / (1 - 0.9) is Inf in float32
    else:
        opt = bp.optim.SGD(lr=0.1, momentum=1e-50)  # 0 in float32, but momentum is on
        opt.state_for(net.params)[0][0] = np.inf
    state = opt.state_for(net.params)
    before = net.params.tobytes(), [s.tobytes() for s in state]
    result = _native_epoch(net, opt, X, Y, 2)
    assert result["batches"] == 0 and result["failed_batch"] == 0
    assert (net.params.tobytes(), [s.tobytes() for s in state]) == before
