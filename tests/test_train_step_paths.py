"""Network.train_step's two ways into the core: a batch in the form training loops pass (the
network's dtype, C order, int64 class ids) is checked and made one-hot natively; anything else
is converted in Python first. Both must give the same bits and the same errors. And the native
optimizer record train_step reuses between steps must follow every hyper-parameter change."""

import pickle

import numpy as np
import pytest

import backprop as bp


def _batches(dtype, steps=5, rows=7, inputs=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, inputs)).astype(dtype), rng.integers(0, classes, rows))
            for _ in range(steps)]


def _native(net, X, y, opt):
    """The fast entry's answer for (X, y): a result dict, or None for the general path."""
    spec = opt.native_spec()
    return net._engine.train_step_on_class_ids(net._params, net._grads,
                                                opt.state_for(net._params, spec), spec, X, y)


class _CountingEngine:
    """Forwards to a network's engine, counting the batches its fast entry took."""

    def __init__(self, engine):
        self._engine = engine
        self.taken = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def train_step_on_class_ids(self, *args):
        result = self._engine.train_step_on_class_ids(*args)
        self.taken += result is not None
        return result


@pytest.mark.parametrize("convert", [
    lambda X, y: (X, y.astype(np.int32)),                     # ids of another integer type
    lambda X, y: (X.astype(X.dtype.newbyteorder()), y),      # the same values, byte-swapped
    lambda X, y: (np.asfortranarray(X), y),                   # not C order
    lambda X, y: (X, np.eye(4)[y]),                           # one-hot rows
    lambda X, y: (X.tolist(), y.tolist()),                    # lists
], ids=["int32-ids", "byte-swapped", "fortran", "one-hot", "lists"])
def test_both_paths_give_the_same_bits(dtype, convert):
    fast = bp.Network([6, 9, 4], activation="tanh", dtype=dtype, seed=1)
    general = fast.copy()
    fast._engine, general._engine = _CountingEngine(fast._engine), _CountingEngine(general._engine)
    opt_fast, opt_general = bp.optim.SGD(lr=0.1, momentum=0.9), bp.optim.SGD(lr=0.1, momentum=0.9)
    for X, y in _batches(dtype):
        other_X, other_y = convert(X, y)
        assert _native(general, other_X, other_y, opt_general) is None  # it takes the general path
        loss_fast = fast.train_step(X, y, opt_fast)
        loss_general = general.train_step(other_X, other_y, opt_general)
        assert loss_fast == loss_general
        assert fast.params.tobytes() == general.params.tobytes()
        assert all(a.tobytes() == b.tobytes() for a, b in zip(opt_fast.state, opt_general.state))
    assert opt_fast.steps == opt_general.steps == 5
    # The first step binds the optimizer through the general path; the fast entry takes the rest.
    assert (fast._engine.taken, general._engine.taken) == (4, 0)


def test_a_refused_first_batch_binds_the_optimizer_to_nothing():
    first, second = bp.Network([6, 9, 4], seed=1), bp.Network([6, 9, 4], seed=2)
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    (X, y), = _batches(np.float32, steps=1)
    with pytest.raises(ValueError, match="class ids"):
        first.train_step(X, np.where(y == y[0], 7, y), opt)
    assert opt.state == [] and opt.steps == 0
    second.train_step(X, y, opt)  # free for another network
    with pytest.raises(ValueError, match="another network"):
        first.train_step(X, y, opt)


def test_the_fast_entry_takes_the_usual_batch_and_declines_the_rest(dtype):
    net = bp.Network([6, 9, 4], dtype=dtype, seed=1)
    opt = bp.optim.SGD(lr=0.1)
    (X, y), = _batches(dtype, steps=1)
    before = net.params.tobytes()
    declined = {
        "NaN in X": (np.where(np.arange(X.size).reshape(X.shape) == 10, np.nan, X).astype(dtype), y),
        "Inf in X": (np.where(np.arange(X.size).reshape(X.shape) == 0, -np.inf, X).astype(dtype), y),
        "id past the outputs": (X, np.where(np.arange(len(y)) == 3, 4, y)),
        "negative id": (X, np.where(np.arange(len(y)) == 6, -1, y)),
        "ids of other rows": (X, y[:-1]),
        "wrong columns": (np.ascontiguousarray(X[:, :5]), y),
        "no rows": (X[:0], y[:0]),
        "1-D X": (np.ascontiguousarray(X[0]), y[:1]),
        "2-D y": (X, y[:, None]),
        "not arrays": (X.tolist(), y),
    }
    for what, (bad_X, bad_y) in declined.items():
        assert _native(net, bad_X, bad_y, opt) is None, what
        assert net.params.tobytes() == before, what  # nothing touched
    result = _native(net, X, y, opt)
    assert result is not None and result["finite"] and result["loss"] > 0
    assert net.params.tobytes() != before


def test_the_fast_entry_declines_networks_without_class_ids():
    net = bp.Network([6, 5, 4], loss="mse", seed=1)
    (X, y), = _batches(np.float32, steps=1)
    assert _native(net, X, y, bp.optim.SGD()) is None


@pytest.mark.parametrize("spoil, pattern", [
    (lambda X, y: (np.where(X > 1.0, np.nan, X).astype(X.dtype), y), r"X contains NaN or Inf"),
    (lambda X, y: (X, np.where(y == y[0], 9, y)), r"y holds class ids from \d to 9"),
], ids=["NaN-X", "id-9"])
def test_a_bad_usual_batch_raises_the_general_message_and_changes_nothing(dtype, spoil, pattern):
    net = bp.Network([6, 9, 4], dtype=dtype, seed=1)
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    (X, y), = _batches(dtype, steps=1)
    before = net.params.tobytes()
    with pytest.raises(ValueError, match=pattern):
        net.train_step(*spoil(X, y), opt)
    assert net.params.tobytes() == before and opt.steps == 0


# The fast entry scans X only after a step that came out not finite, so a non-finite X must
# always make the step so. Where the loss stays finite, an activation's flat end (or dropout)
# has absorbed every non-finite value, so the deltas behind it are 0 and the first layer's
# weight gradient holds Inf times 0: NaN, which every rule must carry into a refused update
# (an Inf it might clip; a NaN it must not). The hardest case: an Inf whose hidden units all
# end at -Inf, which ReLU turns into 0.
REFUSING = [
    lambda: bp.optim.SGD(lr=0.1), lambda: bp.optim.SGD(lr=0.0, momentum=0.9),
    lambda: bp.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda: bp.optim.SGD(lr=0.1, clip_value=1e-3), lambda: bp.optim.SGD(lr=0.1, clip_norm=1.0),
    lambda: bp.optim.SGD(lr=0.1, l1=0.5), lambda: bp.optim.Adam(lr=0.01),
    lambda: bp.optim.AdamW(lr=0.01), lambda: bp.optim.RMSprop(lr=0.01, centered=True),
    lambda: bp.optim.Adagrad(lr=0.1), lambda: bp.optim.Rprop(lr=0.01),
    lambda: bp.optim.Quickprop(lr=0.01),
]


@pytest.mark.parametrize("make", REFUSING, ids=lambda make: repr(make()))
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["Inf", "-Inf", "NaN"])
def test_a_non_finite_x_is_refused_whatever_the_rule(dtype, make, bad):
    net = bp.Network([bp.Dense(6, 9, "relu", dropout=0.25), bp.Dense(9, 4)], dtype=dtype, seed=1)
    opt = make()
    (X, y), (X2, y2) = _batches(dtype, steps=2)
    net.train_step(X2, y2, opt)  # the state exists, and Rprop and Quickprop have a last step
    # Row 0's hidden units all get -Inf from an Inf input: weights of the other sign.
    column = 2
    net.layers[0].W[column] = -1.0 if np.isnan(bad) else -np.sign(bad)
    spoiled = X.copy()
    spoiled[0, column] = bad
    with np.errstate(invalid="ignore"):
        hidden = np.maximum(spoiled.astype(np.float64) @ net.layers[0].W + net.layers[0].b, 0.0)
    assert np.isfinite(hidden).all() == (not np.isnan(bad))  # a finite loss but for NaN
    params, state, steps = net.params.copy(), [s.copy() for s in opt.state], opt.steps
    assert _native(net, spoiled, y, opt) is None  # the fast entry declines it
    assert net.params.tobytes() == params.tobytes()
    with pytest.raises(ValueError, match=r"X contains NaN or Inf"):
        net.train_step(spoiled, y, opt)
    assert net.params.tobytes() == params.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(opt.state, state))
    assert opt.steps == steps
    net.train_step(X, y, opt)  # the next good batch trains
    assert opt.steps == steps + 1


# Activations and the infinite end of each that is finite: there the derivative must be exactly
# 0 (else a delta times Inf is Inf, which clip_value clamps and Rprop's sign change drops).
SATURATING = [("relu", -1.0), ("sigmoid", -1.0), ("sigmoid", 1.0), ("tanh", -1.0),
              ("tanh", 1.0), ("elu", -1.0), ("softplus", -1.0), ("gelu", -1.0)]


@pytest.mark.parametrize("activation, end", SATURATING, ids=lambda v: str(v))
@pytest.mark.parametrize("make", [lambda: bp.optim.SGD(lr=0.1, clip_value=1e-3),
                                  lambda: bp.optim.Rprop(lr=0.01)], ids=["clip_value", "Rprop"])
def test_an_inf_in_x_is_refused_where_an_activation_saturates(dtype, activation, end, make):
    net = bp.Network([bp.Dense(6, 9, activation), bp.Dense(9, 4)], dtype=dtype, seed=1)
    opt = make()
    (X, y), (X2, y2) = _batches(dtype, steps=2)
    net.train_step(X2, y2, opt)
    net.layers[0].W[2] = end  # row 0's units all get end x Inf
    spoiled = X.copy()
    spoiled[0, 2] = np.inf
    targets = np.eye(4, dtype=dtype)[y]
    with np.errstate(all="ignore"):
        assert np.isfinite(net._engine.loss(net._params, spoiled, targets, None, 0))
    params, state = net.params.copy(), [s.copy() for s in opt.state]
    assert _native(net, spoiled, y, opt) is None
    assert net.params.tobytes() == params.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(opt.state, state))


# Each optimizer with one hyper-parameter changed between steps: train_step (reusing its native
# record) must match loss_and_grad + Optimizer.step (which builds a new record every step).
CHANGES = [
    (lambda: bp.optim.SGD(lr=0.1, momentum=0.9), [("lr", 0.02), ("momentum", 0.5),
                                                  ("nesterov", True), ("weight_decay", 0.1)]),
    (lambda: bp.optim.Adam(lr=0.01), [("lr", 0.03), ("betas", (0.5, 0.9)), ("eps", 1e-3),
                                      ("weight_decay", 0.2)]),
    (lambda: bp.optim.RMSprop(lr=0.01), [("alpha", 0.5), ("momentum", 0.3), ("centered", True)]),
    (lambda: bp.optim.SGD(lr=0.1), [("clip_value", 1e-3), ("clip_norm", 1e-2), ("l1", 0.5)]),
    (lambda: bp.optim.Adagrad(lr=0.1), [("lr_decay", 0.5), ("eps", 1e-2)]),
    (lambda: bp.optim.AdamW(lr=0.01), [("weight_decay", 0.5), ("betas", (0.8, 0.95))]),
    (lambda: bp.optim.Rprop(lr=0.01), [("etas", (0.3, 1.5)), ("step_sizes", (1e-4, 1e-3))]),
    (lambda: bp.optim.Quickprop(lr=0.01), [("max_growth", 1.2), ("weight_decay", 0.1)]),
]


@pytest.mark.parametrize("make, changes", CHANGES,
                         ids=["sgd", "adam", "rmsprop", "common", "adagrad", "adamw", "rprop",
                              "quickprop"])
def test_train_step_follows_every_hyper_parameter_change(make, changes):
    stepped = bp.Network([6, 9, 4], activation="tanh", dtype="float64", seed=2)
    reference = stepped.copy()
    opt_stepped, opt_reference = make(), make()
    batches = _batches(np.float64, steps=2 * len(changes) + 1)
    for i, (X, y) in enumerate(batches):
        if i % 2 == 1:  # change one setting on both, then step twice with it
            name, value = changes[i // 2]
            setattr(opt_stepped, name, value)
            setattr(opt_reference, name, value)
        stepped.train_step(X, y, opt_stepped)
        _, grads = reference.loss_and_grad(X, y)
        opt_reference.step(reference.params, grads)
        np.testing.assert_allclose(stepped.params, reference.params, rtol=1e-12, atol=1e-14,
                                   err_msg=f"step {i}")
    assert opt_stepped.steps == opt_reference.steps == len(batches)


def test_an_optimizer_pickles_after_train_step():
    # The reused native record cannot be pickled; it is left out and rebuilt when next needed.
    net = bp.Network([6, 9, 4], dtype="float64", seed=2)
    opt = bp.optim.SGD(lr=0.1, momentum=0.9)
    for X, y in _batches(np.float64, steps=3):
        net.train_step(X, y, opt)
    twin = pickle.loads(pickle.dumps(opt))
    assert (twin.lr, twin.momentum, twin.steps) == (0.1, 0.9, 3)
    record = twin._step_record()
    assert (record.lr, record.momentum, record.step) == (0.1, 0.9, 3)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(opt.state, twin.state))


class _WarmUpSGD(bp.optim.SGD):
    """A subclass outside the package whose record depends on the step count."""

    def _fill(self, spec):
        super()._fill(spec)
        spec.lr = self.lr * min(1.0, (self.steps + 1) / 3)


def test_a_subclass_record_is_built_every_step():
    stepped = bp.Network([6, 9, 4], activation="tanh", dtype="float64", seed=2)
    reference = stepped.copy()
    opt_stepped, opt_reference = _WarmUpSGD(lr=0.1), _WarmUpSGD(lr=0.1)
    for X, y in _batches(np.float64, steps=4):
        stepped.train_step(X, y, opt_stepped)
        _, grads = reference.loss_and_grad(X, y)
        opt_reference.step(reference.params, grads)
        np.testing.assert_allclose(stepped.params, reference.params, rtol=1e-12, atol=1e-14)
