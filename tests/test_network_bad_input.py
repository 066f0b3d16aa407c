"""A table of bad inputs to Network construction and to every Network call, each with the exact
exception type and a message naming the argument; a failing call never changes the weights."""

import re
import math

import numpy as np
import pytest

import backprop as bp

Dense = bp.Dense


# -- construction ----------------------------------------------------------------------------------

CONSTRUCTION = [
    # dtype
    pytest.param({"layers": [3, 2], "dtype": "float16"}, TypeError, r"dtype must be 'float32' or 'float64'; got float16", id="dtype-float16"),
    pytest.param({"layers": [3, 2], "dtype": "int32"}, TypeError, r"dtype must be 'float32' or 'float64'; got int32", id="dtype-int32"),
    pytest.param({"layers": [3, 2], "dtype": "banana"}, TypeError, r"dtype must be 'float32' or 'float64'; got 'banana'", id="dtype-unknown-name"),
    pytest.param({"layers": [3, 2], "dtype": complex}, TypeError, r"dtype must be", id="dtype-complex"),
    # names
    pytest.param({"layers": [3, 4, 2], "activation": "sigmoidal"}, ValueError, r"activation must be one of .*; got 'sigmoidal'", id="activation-unknown"),
    pytest.param({"layers": [3, 4, 2], "activation": "softmax"}, ValueError, r"activation must be one of .*; got 'softmax'", id="activation-softmax-hidden"),
    pytest.param({"layers": [3, 4, 4, 2], "activation": ["relu", "swish"]}, ValueError, r"activation must be one of .*; got 'swish'", id="activation-list-unknown"),
    pytest.param({"layers": [3, 4, 4, 2], "activation": ["relu"]}, ValueError, r"activation lists 1 names for 2 hidden layers", id="activation-list-short"),
    pytest.param({"layers": [3, 4, 2], "activation": ["relu", "tanh"]}, ValueError, r"activation lists 2 names for 1 hidden layers", id="activation-list-long"),
    pytest.param({"layers": [3, 2], "loss": "hinge"}, ValueError, r"loss must be one of .*; got 'hinge'", id="loss-unknown"),
    pytest.param({"layers": [3, 2], "loss": None}, ValueError, r"loss must be one of .*; got None", id="loss-none"),
    pytest.param({"layers": [3, 2], "output": "softmaxx"}, ValueError, r"output must be one of .*; got 'softmaxx'", id="output-unknown"),
    pytest.param({"layers": [3, 2], "init": "xavier"}, ValueError, r"init must be one of .*; got 'xavier'", id="init-unknown"),
    pytest.param({"layers": [3, 2], "reduction": "avg"}, ValueError, r"reduction must be one of 'mean', 'sum'; got 'avg'", id="reduction-unknown"),
    # init_scale
    pytest.param({"layers": [3, 2], "init": "uniform"}, ValueError, r"init 'uniform' needs init_scale", id="uniform-without-init_scale"),
    pytest.param({"layers": [3, 2], "init": "he", "init_scale": 0.1}, ValueError, r"init_scale is only used with init 'uniform'", id="init_scale-with-he"),
    pytest.param({"layers": [3, 2], "init": "uniform", "init_scale": -0.1}, ValueError, r"init_scale must be .*; got -0\.1", id="init_scale-negative"),
    pytest.param({"layers": [3, 2], "init": "uniform", "init_scale": math.nan}, ValueError, r"init_scale must be .*; got nan", id="init_scale-nan"),
    pytest.param({"layers": [3, 2], "init": "uniform", "init_scale": math.inf}, ValueError, r"init_scale must be .*; got inf", id="init_scale-inf"),
    pytest.param({"layers": [3, 2], "init": "uniform", "init_scale": "wide"}, TypeError, r"init_scale", id="init_scale-str"),
    # loss and output that do not belong together
    pytest.param({"layers": [3, 2], "loss": "cross_entropy", "output": "sigmoid"}, ValueError, r"loss 'cross_entropy' needs output 'softmax'; got output 'sigmoid'", id="ce-with-sigmoid"),
    pytest.param({"layers": [3, 2], "loss": "binary_cross_entropy", "output": "softmax"}, ValueError, r"loss 'binary_cross_entropy' needs output 'sigmoid'; got output 'softmax'", id="bce-with-softmax"),
    pytest.param({"layers": [3, 2], "loss": "binary_cross_entropy", "output": "identity"}, ValueError, r"loss 'binary_cross_entropy' needs output 'sigmoid'", id="bce-with-identity"),
    pytest.param({"layers": [Dense(3, 4, "relu"), Dense(4, 2, "sigmoid")], "loss": "cross_entropy"}, ValueError, r"loss 'cross_entropy' needs output 'softmax'; got output 'sigmoid'", id="ce-with-dense-sigmoid"),
    # layers
    pytest.param({"layers": [Dense(3, 4), Dense(5, 2)]}, ValueError, r"layers do not chain: .*(\b4\b.*\b5\b|\b5\b.*\b4\b)", id="layers-not-chaining"),
    pytest.param({"layers": [3, Dense(3, 2)]}, TypeError, r"layers must be all sizes or all Dense layers, not a mix", id="layers-mixed"),
    pytest.param({"layers": [Dense(3, 4), 2]}, TypeError, r"layers must be all sizes or all Dense layers, not a mix", id="layers-mixed-dense-first"),
    pytest.param({"layers": []}, TypeError, r"layers must be a list of layer sizes or of Dense layers", id="layers-empty"),
    pytest.param({"layers": "3,2"}, TypeError, r"layers must be a list of layer sizes or of Dense layers", id="layers-string"),
    pytest.param({"layers": 3}, TypeError, r"layers must be a list of layer sizes or of Dense layers", id="layers-int"),
    pytest.param({"layers": [3]}, ValueError, r"layers needs at least 2 sizes", id="layers-one-size"),
    pytest.param({"layers": [3, 0]}, ValueError, r"fan_out must be at least 1; got 0", id="layers-zero-size"),
    pytest.param({"layers": [3, 4, -2]}, ValueError, r"fan_out must be at least 1; got -2", id="layers-negative-size"),
    pytest.param({"layers": [3, 2.5]}, TypeError, r"layers\[1\] must be an int size; got float", id="layers-float-size"),
    pytest.param({"layers": [3, "2"]}, TypeError, r"layers\[1\] must be an int size; got str", id="layers-str-size"),
    pytest.param({"layers": [Dense(3, 2, "leaky_relu", alpha=math.nan), Dense(2, 2)]}, ValueError, r"alpha must be a finite number", id="alpha-nan"),
]


@pytest.mark.parametrize("kwargs, error, pattern", CONSTRUCTION)
def test_bad_construction(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        bp.Network(**kwargs)


@pytest.mark.parametrize("args, kwargs, error, pattern", [
    pytest.param((0, 3), {}, ValueError, r"fan_in must be at least 1; got 0", id="fan_in-zero"),
    pytest.param((3, -1), {}, ValueError, r"fan_out must be at least 1; got -1", id="fan_out-negative"),
    pytest.param((3.0, 2), {}, TypeError, r"fan_in must be an int; got float", id="fan_in-float"),
    pytest.param((3, 2, "foo"), {}, ValueError, r"activation must be one of .*; got 'foo'", id="activation-unknown"),
])
def test_bad_dense(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        Dense(*args, **kwargs)


# -- calls on a network ------------------------------------------------------------------------------

N_ROWS = 6


def make_net(kind, dtype="float32"):
    if kind == "ce":
        return bp.Network([4, 5, 10], dtype=dtype, seed=0)
    if kind == "bce":
        return bp.Network([4, 5, 2], activation="tanh", loss="binary_cross_entropy", dtype=dtype, seed=0)
    return bp.Network([4, 5, 2], activation="tanh", loss="mse", dtype=dtype, seed=0)


def good_data(kind):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_ROWS, 4))
    if kind == "ce":
        y = np.array([0, 1, 9, 3, 4, 5])
    elif kind == "bce":
        y = rng.integers(0, 2, (N_ROWS, 2)).astype(np.float64)
    else:
        y = rng.standard_normal((N_ROWS, 2))
    return X, y


def sgd():
    return bp.optim.SGD(lr=0.1)


CALLS_WITH_X = {
    "forward": lambda net, X, y: net.forward(X),
    "call": lambda net, X, y: net(X),
    "predict": lambda net, X, y: net.predict(X),
}
CALLS_WITH_X_AND_Y = {
    "loss": lambda net, X, y: net.loss(X, y),
    "evaluate": lambda net, X, y: net.evaluate(X, y),
    "loss_and_grad": lambda net, X, y: net.loss_and_grad(X, y),
    "train_step": lambda net, X, y: net.train_step(X, y, sgd()),
    "fit": lambda net, X, y: net.fit(X, y, optimizer=sgd(), epochs=1, batch_size=2, verbose=0),
    "fit-validation": lambda net, X, y: net.fit(*good_data(net_kind(net)), optimizer=sgd(), epochs=1,
                                                batch_size=2, validation_data=(X, y), verbose=0),
    "gradcheck": lambda net, X, y: bp.gradcheck(net, X, y),
}


def net_kind(net):
    return {"cross_entropy": "ce", "binary_cross_entropy": "bce", "mse": "mse"}[net.loss_name]


def _with(X, index, value):
    X = X.copy()
    X[index] = value
    return X


# (id, how to spoil the good X, exception, message)
BAD_X = [
    ("1-D", lambda X: X[0], ValueError, r"X must be 2-D \(samples, features\); got shape \(4,\); use reshape\(1, -1\)"),
    ("3-D", lambda X: X[None], ValueError, r"X must be 2-D \(samples, features\); got shape \(1, 6, 4\)"),
    ("0-D", lambda X: 1.0, ValueError, r"X must be 2-D"),
    ("wrong-columns", lambda X: X[:, :3], ValueError, r"X must have 4 columns \(the network's inputs\); got shape \(6, 3\)"),
    ("empty", lambda X: X[:0], ValueError, r"X must have at least one row; got shape \(0, 4\)"),
    ("NaN", lambda X: _with(X, (2, 1), np.nan), ValueError, r"X contains NaN or Inf"),
    ("Inf", lambda X: _with(X, (0, 3), -np.inf), ValueError, r"X contains NaN or Inf"),
    ("strings", lambda X: X.astype(str), TypeError, r"X must hold real numbers; got dtype <U"),
    ("None", lambda X: None, TypeError, r"X must hold real numbers; got dtype object"),
    ("complex", lambda X: X.astype(complex), TypeError, r"X must hold real numbers; got dtype complex128"),
]

# (network kind, id, how to spoil the good y, exception, message)
BAD_Y = [
    ("ce", "wrong-rows", lambda y: y[:5], ValueError, r"y has 5 rows but the inputs have 6"),
    ("ce", "wrong-columns", lambda y: np.eye(11)[y], ValueError, r"y must have 10 columns \(the network's outputs\); got shape \(6, 11\)"),
    ("ce", "id-10-of-10", lambda y: _with(y, 2, 10), ValueError, r"y holds class ids from 0 to 10; .* ids must be in 0\.\.9"),
    ("ce", "id-minus-1", lambda y: _with(y, 0, -1), ValueError, r"y holds class ids from -1 to 9; .* ids must be in 0\.\.9"),
    ("ce", "non-integer-ids", lambda y: _with(y.astype(float), 1, 1.5), ValueError, r"y must hold integer class ids"),
    ("ce", "NaN-id", lambda y: _with(y.astype(float), 1, np.nan), ValueError, r"y contains NaN or Inf"),
    ("ce", "Inf-id", lambda y: _with(y.astype(float), 1, np.inf), ValueError, r"y contains NaN or Inf"),
    ("ce", "NaN-one-hot", lambda y: _with(np.eye(10)[y], (0, 0), np.nan), ValueError, r"y contains NaN or Inf"),
    ("ce", "one-hot-above-1", lambda y: 2 * np.eye(10)[y], ValueError, r"y must hold targets between 0 and 1 for loss 'cross_entropy'"),
    ("ce", "3-D", lambda y: y[None, None], ValueError, r"y must be 1-D or 2-D; got shape \(1, 1, 6\)"),
    ("ce", "scalar", lambda y: 3, ValueError, r"y must be 1-D or 2-D; got shape \(\)"),
    ("ce", "strings", lambda y: y.astype(str), TypeError, r"y must hold real numbers; got dtype <U"),
    ("ce", "None", lambda y: None, TypeError, r"y must hold real numbers; got dtype object"),
    ("bce", "above-1", lambda y: _with(y, (3, 1), 1.5), ValueError, r"y must hold targets between 0 and 1 for loss 'binary_cross_entropy'"),
    ("bce", "below-0", lambda y: _with(y, (0, 0), -0.5), ValueError, r"y must hold targets between 0 and 1 for loss 'binary_cross_entropy'"),
    ("bce", "1-D-for-2-outputs", lambda y: y[:, 0], ValueError, r"y is 1-D but the network has 2 outputs; give it the shape \(6, 2\)"),
    ("bce", "wrong-columns", lambda y: y[:, :1], ValueError, r"y must have 2 columns"),
    ("bce", "NaN", lambda y: _with(y, (1, 1), np.nan), ValueError, r"y contains NaN or Inf"),
    ("mse", "NaN", lambda y: _with(y, (1, 1), np.nan), ValueError, r"y contains NaN or Inf"),
    ("mse", "Inf", lambda y: _with(y, (5, 0), np.inf), ValueError, r"y contains NaN or Inf"),
    ("mse", "1-D-for-2-outputs", lambda y: y[:, 0], ValueError, r"y is 1-D but the network has 2 outputs"),
    ("mse", "wrong-rows", lambda y: y[:4], ValueError, r"y has 4 rows but the inputs have 6"),
    ("mse", "wrong-columns", lambda y: np.hstack([y, y]), ValueError, r"y must have 2 columns"),
]


def _named_for(method, pattern):
    """fit names validation data as validation_data X_val / y_val, not X / y."""
    if method != "fit-validation":
        return pattern
    return re.sub(r"^(\^?)(X|y)\b", lambda m: f"{m.group(1)}validation_data {m.group(2)}_val", pattern)


def _assert_raises_and_keeps_params(net, call, X, y, error, pattern):
    before = net.params.tobytes()
    with pytest.raises(error, match=pattern):
        call(net, X, y)
    assert net.params.tobytes() == before


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("method", list(CALLS_WITH_X) + list(CALLS_WITH_X_AND_Y))
@pytest.mark.parametrize("case, spoil, error, pattern", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_X(case, spoil, error, pattern, method, dtype_name):
    call = {**CALLS_WITH_X, **CALLS_WITH_X_AND_Y}[method]
    net = make_net("ce", dtype_name)
    X, y = good_data("ce")
    _assert_raises_and_keeps_params(net, call, spoil(X), y, error, _named_for(method, pattern))


@pytest.mark.parametrize("method", list(CALLS_WITH_X_AND_Y))
@pytest.mark.parametrize("kind, case, spoil, error, pattern", BAD_Y, ids=[f"{c[0]}-{c[1]}" for c in BAD_Y])
def test_bad_y(kind, case, spoil, error, pattern, method):
    net = make_net(kind)
    X, y = good_data(kind)
    _assert_raises_and_keeps_params(net, CALLS_WITH_X_AND_Y[method], X, spoil(y), error,
                                    _named_for(method, pattern))


OTHER_CALLS = [
    pytest.param(lambda net, X, y: net.train_step(X, y, "sgd"), TypeError, r"optimizer must be a backprop\.optim\.Optimizer; got str", id="train_step-optimizer-str"),
    pytest.param(lambda net, X, y: net.train_step(X, y, bp.optim.SGD), TypeError, r"optimizer must be a backprop\.optim\.Optimizer; got type", id="train_step-optimizer-class"),
    pytest.param(lambda net, X, y: net.train_step(X, y, None), TypeError, r"optimizer must be a backprop\.optim\.Optimizer; got NoneType", id="train_step-optimizer-None"),
    pytest.param(lambda net, X, y: net.fit(X, y, optimizer="sgd", verbose=0), TypeError, r"optimizer must be a backprop\.optim\.Optimizer; got str", id="fit-optimizer-str"),
    pytest.param(lambda net, X, y: net.fit(X, y, validation_data=[X, y], batch_size=2, verbose=0), TypeError, r"validation_data must be a tuple \(X_val, y_val\)", id="fit-validation_data-list"),
    pytest.param(lambda net, X, y: net.fit(X, y, validation_data=(X, y, y), batch_size=2, verbose=0), TypeError, r"validation_data must be a tuple \(X_val, y_val\)", id="fit-validation_data-3-tuple"),
    pytest.param(lambda net, X, y: net.fit(X, y, validation_data=(X[:, :3], y), batch_size=2, verbose=0), ValueError, r"validation_data|X_val", id="fit-validation_data-wrong-columns-named"),
    pytest.param(lambda net, X, y: net.fit(X, y, epochs=-1, batch_size=2, verbose=0), ValueError, r"epochs must be >= 0; got -1", id="fit-epochs-negative"),
    pytest.param(lambda net, X, y: net.fit(X, y, epochs=2.5, batch_size=2, verbose=0), TypeError, r"epochs must be an int; got float", id="fit-epochs-float"),
    pytest.param(lambda net, X, y: net.fit(X, y, batch_size=2, verbose=3), ValueError, r"verbose must be 0, 1 or 2; got 3", id="fit-verbose-3"),
    pytest.param(lambda net, X, y: net.fit(X, y, batch_size=2, verbose=-1), ValueError, r"verbose must be 0, 1 or 2; got -1", id="fit-verbose-negative"),
    pytest.param(lambda net, X, y: net.fit(X, y, batch_size=0, verbose=0), ValueError, r"batch_size must be at least 1", id="fit-batch_size-0"),
    pytest.param(lambda net, X, y: net.fit(X, y, batch_size=2, callbacks=[1], verbose=0), TypeError, r"callbacks must be Callback objects or functions; got int", id="fit-callbacks-int"),
    pytest.param(lambda net, X, y: net.fit(X, y, batch_size=2, callbacks=print, verbose=0), TypeError, r"callbacks", id="fit-callbacks-not-a-list"),
    pytest.param(lambda net, X, y: net.fit(X, y, epoch=1, verbose=0), TypeError, r"unexpected keyword argument 'epoch'", id="fit-misspelt-option"),
    pytest.param(lambda net, X, y: bp.gradcheck(net, X, y, eps=0), ValueError, r"eps must be > 0; got 0", id="gradcheck-eps-0"),
    pytest.param(lambda net, X, y: bp.gradcheck(net, X, y, eps=-1e-6), ValueError, r"eps must be > 0", id="gradcheck-eps-negative"),
    pytest.param(lambda net, X, y: bp.gradcheck(net, X, y, max_params=-1), ValueError, r"max_params", id="gradcheck-max_params-negative"),
    pytest.param(lambda net, X, y: bp.gradcheck(net, X, y, max_params=0), ValueError, r"max_params", id="gradcheck-max_params-0"),
    pytest.param(lambda net, X, y: setattr(net, "params", np.zeros(3)), ValueError, r"params must have shape \(\d+,\); got \(3,\)", id="params-wrong-shape"),
    pytest.param(lambda net, X, y: setattr(net, "params", np.full(net.n_params, np.nan)), ValueError, r"params contains NaN or Inf", id="params-NaN"),
    pytest.param(lambda net, X, y: setattr(net, "params", np.full(net.n_params, "a")), TypeError, r"params must hold real numbers", id="params-strings"),
    pytest.param(lambda net, X, y: net.unflatten(np.zeros(3)), ValueError, r"flat must have shape", id="unflatten-wrong-shape"),
]


@pytest.mark.parametrize("call, error, pattern", OTHER_CALLS)
def test_other_bad_arguments(call, error, pattern):
    net = make_net("ce")
    X, y = good_data("ce")
    _assert_raises_and_keeps_params(net, call, X, y, error, pattern)


def test_a_failed_call_leaves_the_network_usable():
    net = make_net("ce", "float64")
    X, y = good_data("ce")
    expected = net.loss_and_grad(X, y)
    with pytest.raises(ValueError):
        net.train_step(X, _with(y, 0, 10), sgd())
    with pytest.raises(ValueError):
        net.loss_and_grad(X[:, :3], y)
    value, grads = net.loss_and_grad(X, y)
    assert value == expected[0]
    assert grads.tobytes() == expected[1].tobytes()


@pytest.mark.parametrize("sizes", [[2**20, 2**20], [3, 2**17, 2**17, 2]])
def test_sizes_past_32_bit_counts_are_counted_exactly_and_refused_before_allocating(sizes):
    # 2**40 and 2**35 parameters: their counts overflow 32-bit indices; the 64-bit count is
    # reported, and nothing is allocated.
    expected = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    with pytest.raises(MemoryError, match=f"the layers need {expected:,} parameters"):
        bp.Network(sizes, dtype="float32")
