"""bp.optim.LBFGS: its strong Wolfe line search, the least-squares solution of a linear network,
digits against scikit-learn's L-BFGS, sample weights, and weights that never become NaN."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import backprop as bp
from backprop.optim.lbfgs import strong_wolfe_line_search

C1, C2 = 1e-4, 0.9


# -- settings -----------------------------------------------------------------------------------


def test_defaults_repr_and_export():
    opt = bp.optim.LBFGS()
    assert "LBFGS" in bp.optim.__all__ and isinstance(opt, bp.optim.Optimizer)
    assert opt.full_batch is True and opt.converged is False
    assert opt._settings() == {"lr": 1.0, "history_size": 10, "max_iter": 20,
                               "tolerance_grad": 1e-7, "tolerance_change": 1e-9,
                               "line_search": "strong_wolfe", "c1": 1e-4, "c2": 0.9}
    assert repr(bp.optim.LBFGS(lr=0.5, history_size=3, line_search=None)) == (
        "LBFGS(lr=0.5, history_size=3, max_iter=20, tolerance_grad=1e-07, "
        "tolerance_change=1e-09, line_search=None, c1=0.0001, c2=0.9)")


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"lr": -1.0}, ValueError, r"lr must be"),
    ({"history_size": 0}, ValueError, r"history_size must be >= 1; got 0"),
    ({"history_size": 2.5}, TypeError, r"history_size must be an int"),
    ({"max_iter": 0}, ValueError, r"max_iter must be >= 1; got 0"),
    ({"tolerance_grad": -1.0}, ValueError, r"tolerance_grad must be"),
    ({"tolerance_change": math.nan}, ValueError, r"tolerance_change must be"),
    ({"line_search": "backtracking"}, ValueError, r"line_search must be 'strong_wolfe' or None"),
    ({"c1": 0.0}, ValueError, r"c1 must be"),
    ({"c1": 0.5, "c2": 0.4}, ValueError, r"c2 must be"),
    ({"c2": 1.0}, ValueError, r"c2 must be"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_rejects_bad_settings(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        bp.optim.LBFGS(**kwargs)


def test_lr_zero_takes_no_step():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 2, 1], activation="tanh", output="sigmoid", loss="mse", seed=0)
    kept = net.params.copy()
    opt = bp.optim.LBFGS(lr=0)
    opt.run_epoch(net, *net._data(X, y))
    assert np.array_equal(net.params, kept) and opt.steps == 0 and not opt.converged


def test_has_no_per_step_update():
    opt = bp.optim.LBFGS()
    params = np.zeros(3)
    with pytest.raises(TypeError, match="trains whole epochs"):
        opt.native_spec()
    with pytest.raises(TypeError, match="needs the network and data"):
        opt.step(params, params)
    assert opt.state_for(params) == []


def test_belongs_to_one_network():
    X, y = bp.datasets.xor()
    first = bp.Network([2, 2, 1], activation="tanh", output="sigmoid", loss="mse", seed=0)
    second = bp.Network([2, 2, 1], activation="tanh", output="sigmoid", loss="mse", seed=1)
    opt = bp.optim.LBFGS(max_iter=2)
    opt.run_epoch(first, *first._data(X, y))
    with pytest.raises(ValueError, match="another network"):
        opt.run_epoch(second, *second._data(X, y))
    opt.reset()
    opt.run_epoch(second, *second._data(X, y))


# -- the line search ----------------------------------------------------------------------------


def _rosenbrock(p):
    x, y = p
    value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    return value, grad


def _along(fun, point, direction):
    def phi(step):
        value, grad = fun(point + step * direction)
        return value, float(grad @ direction), None
    return phi


def _rosenbrock_cases():
    cases = []
    for point in ([-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 1.5], [1.5, 0.5]):
        point = np.array(point)
        _, grad = _rosenbrock(point)
        x, y = point
        hessian = np.array([[2 - 400 * (y - 3 * x * x), -400 * x], [-400 * x, 200.0]])
        newton = -np.linalg.solve(hessian, grad)
        directions = [-grad, -grad / np.linalg.norm(grad)]
        if grad @ newton < 0:
            directions.append(newton)
        for direction in directions:
            for first in (1e-4, 1e-2, 1.0, 10.0, 1e3):
                cases.append((point, direction, first))
    return cases


@pytest.mark.parametrize("point, direction, first", _rosenbrock_cases())
def test_line_search_meets_the_strong_wolfe_conditions_on_rosenbrock(point, direction, first):
    f0, g0 = _rosenbrock(point)
    slope0 = float(g0 @ direction)
    found = strong_wolfe_line_search(_along(_rosenbrock, point, direction), f0, slope0, first,
                                     c1=C1, c2=C2)
    assert found is not None
    step, f, slope, _, wolfe = found
    assert wolfe
    assert step > 0
    f_check, g_check = _rosenbrock(point + step * direction)
    assert f == f_check and slope == pytest.approx(float(g_check @ direction))
    assert f <= f0 + C1 * step * slope0
    assert abs(slope) <= C2 * abs(slope0)


def test_line_search_with_a_small_c2_lands_near_the_exact_minimizer():
    # phi(a) = (a - 3)^2: a tight curvature condition forces a step next to 3.
    def phi(step):
        return (step - 3.0) ** 2, 2.0 * (step - 3.0), None
    step, _, slope, _, wolfe = strong_wolfe_line_search(phi, 9.0, -6.0, 0.01, c1=C1, c2=1e-3)
    assert wolfe and abs(slope) <= 6e-3 and step == pytest.approx(3.0, abs=3e-3)


def test_line_search_backs_off_from_steps_where_the_function_is_not_finite():
    def phi(step):
        if step > 2.0:
            return math.inf, math.nan, None
        return (step - 1.5) ** 2, 2.0 * (step - 1.5), None
    step, f, slope, _, wolfe = strong_wolfe_line_search(phi, 2.25, -3.0, 1e6, c1=C1, c2=C2)
    assert wolfe and 0 < step <= 2.0 and math.isfinite(f)
    assert f <= 2.25 - C1 * 3.0 * step and abs(slope) <= C2 * 3.0


def test_line_search_reports_failure_when_nothing_decreases():
    # A slope that claims descent on a function that only rises.
    def phi(step):
        return 1.0 + step, 1.0, None
    assert strong_wolfe_line_search(phi, 1.0, -1.0, 1.0, c1=C1, c2=C2) is None
    with pytest.raises(ValueError, match="downhill"):
        strong_wolfe_line_search(phi, 1.0, 1.0, 1.0)


def test_every_accepted_step_meets_the_strong_wolfe_conditions():
    # One iteration per epoch, so each epoch's weights are the accepted point of one search.
    X, y = bp.datasets.parity(4)
    net = bp.Network([4, 6, 1], activation="tanh", output="sigmoid", loss="mse", dtype="float64",
                     seed=0)
    opt = bp.optim.LBFGS(max_iter=1)
    x, t = net._data(X, y)
    points = [net.params.copy()]
    for _ in range(60):
        opt.run_epoch(net, x, t)
        if opt.converged:
            break
        points.append(net.params.copy())
    assert len(points) > 30
    probe = net.copy()
    for before, after in zip(points, points[1:]):
        probe.params = before
        f0, g0 = probe.loss_and_grad(x, t)
        probe.params = after
        f1, g1 = probe.loss_and_grad(x, t)
        s = after - before
        assert g0 @ s < 0
        assert f1 <= f0 + C1 * (g0 @ s)
        assert abs(g1 @ s) <= C2 * abs(g0 @ s)


# -- what it converges to -----------------------------------------------------------------------


def _least_squares_problem(rows=60, columns=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, columns)) * rng.uniform(0.2, 3.0, columns)
    y = X @ rng.standard_normal(columns) - 0.7 + 0.1 * rng.standard_normal(rows)
    return X, y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_network_reaches_the_least_squares_solution(reduction):
    X, y = _least_squares_problem()
    net = bp.Network([X.shape[1], 1], output="identity", loss="mse", reduction=reduction,
                     dtype="float64", seed=0)
    opt = bp.optim.LBFGS(tolerance_grad=1e-13, tolerance_change=0.0)
    x, t = net._data(X, y)
    for _ in range(10):
        opt.run_epoch(net, x, t)
    solution = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    np.testing.assert_allclose(net.layers[0].W.ravel(), solution[:-1], rtol=0, atol=1e-8)
    np.testing.assert_allclose(net.layers[0].b, solution[-1:], rtol=0, atol=1e-8)
    assert opt.converged and opt.steps <= 60


def test_float32_network_reaches_the_least_squares_solution_to_float32_precision():
    X, y = _least_squares_problem(seed=1)
    net = bp.Network([X.shape[1], 1], output="identity", loss="mse", dtype="float32", seed=0)
    opt = bp.optim.LBFGS()
    x, t = net._data(X, y)
    for _ in range(10):
        opt.run_epoch(net, x, t)
    assert net.params.dtype == np.float32
    solution = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    np.testing.assert_allclose(net.params, solution, rtol=0, atol=1e-4)


def test_converged_optimizer_leaves_the_weights_alone_until_reset():
    X, y = _least_squares_problem(seed=2)
    net = bp.Network([X.shape[1], 1], output="identity", loss="mse", dtype="float64", seed=0)
    opt = bp.optim.LBFGS(max_iter=100)
    x, t = net._data(X, y)
    opt.run_epoch(net, x, t)
    assert opt.converged
    kept = net.params.copy()
    steps = opt.steps
    loss = opt.run_epoch(net, x, t)["loss"]
    assert loss == pytest.approx(net.loss(x, t), rel=1e-15)
    assert np.array_equal(net.params, kept) and opt.steps == steps
    opt.reset()
    assert not opt.converged and opt.steps == 0 and opt.history == []


def test_curvature_pairs_carry_over_between_epochs_up_to_history_size():
    X, y = bp.datasets.parity(4)
    net = bp.Network([4, 6, 1], activation="tanh", output="sigmoid", loss="mse", dtype="float64",
                     seed=0)
    opt = bp.optim.LBFGS(max_iter=2, history_size=5)
    x, t = net._data(X, y)
    opt.run_epoch(net, x, t)
    assert len(opt.history) == 2
    first_s = opt.history[0][0]
    opt.run_epoch(net, x, t)
    assert len(opt.history) == 4 and np.array_equal(opt.history[0][0], first_s)
    for _ in range(5):
        opt.run_epoch(net, x, t)
    assert len(opt.history) == 5
    assert all(float(s @ y_) > 1e-10 for s, y_ in opt.history)
    assert all(s.dtype == np.float64 for s, _ in opt.history)


def test_run_epoch_returns_the_loss_before_the_epoch():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 3, 1], activation="tanh", output="sigmoid", loss="mse", dtype="float64")
    opt = bp.optim.LBFGS(max_iter=5)
    x, t = net._data(X, y)
    before = net.loss(x, t)
    assert opt.run_epoch(net, x, t)["loss"] == pytest.approx(before, rel=1e-12)
    assert net.loss(x, t) < before


# -- digits, against scikit-learn ---------------------------------------------------------------

DIGITS_ITERATIONS = 200


@pytest.fixture(scope="module")
def digits_run():
    """Our L-BFGS on all of digits, 64-32-10 ReLU, for DIGITS_ITERATIONS iterations."""
    X, y = bp.datasets.load_digits()
    net = bp.Network([64, 32, 10], activation="relu", loss="cross_entropy", dtype="float64",
                     seed=0)
    opt = bp.optim.LBFGS(max_iter=DIGITS_ITERATIONS)
    start = time.perf_counter()
    opt.run_epoch(net, *net._data(X, y))
    seconds = time.perf_counter() - start
    return {"X": X, "y": y, "loss": net.loss(X, y), "iterations": opt.steps,
            "evaluations": opt.evaluations, "seconds": seconds}


def test_digits_training_loss_after_200_iterations(digits_run):
    print(f"\nbackprop LBFGS on digits: loss {digits_run['loss']:.3g} after "
          f"{digits_run['iterations']} iterations, {digits_run['evaluations']} evaluations, "
          f"{digits_run['seconds']:.2f} s")
    assert digits_run["iterations"] <= DIGITS_ITERATIONS
    assert digits_run["loss"] < 0.01


def test_digits_training_loss_at_most_scikit_learns_lbfgs(digits_run):
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        print("\nscikit-learn is not installed: skipping the comparison with its L-BFGS")
        pytest.skip("scikit-learn is not installed: no L-BFGS to compare with")
    import warnings

    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", solver="lbfgs", alpha=0,
                        max_iter=DIGITS_ITERATIONS, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(digits_run["X"], digits_run["y"])
    seconds = time.perf_counter() - start
    print(f"\nscikit-learn lbfgs on digits: loss {clf.loss_:.3g} after {clf.n_iter_} iterations, "
          f"{seconds:.2f} s; backprop: {digits_run['loss']:.3g}")
    # loss_ is the mean cross-entropy plus alpha * ||W||^2 / (2 m), and alpha is 0.
    assert digits_run["loss"] <= clf.loss_


# -- robustness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_a_huge_lr_never_makes_the_weights_nan(dtype, line_search):
    X, y = bp.datasets.load_digits()
    X, y = X[:200], y[:200]
    net = bp.Network([64, 16, 10], activation="relu", loss="cross_entropy", dtype=dtype, seed=0)
    opt = bp.optim.LBFGS(lr=1e30, max_iter=10, line_search=line_search)
    x, t = net._data(X, y)
    start = net.loss(x, t)
    for _ in range(5):
        opt.run_epoch(net, x, t)
        assert np.isfinite(net.params).all()
    end = net.loss(x, t)
    assert math.isfinite(end)
    if line_search is not None:  # a fixed step (as torch's default) may raise the loss
        assert end <= start


def test_a_loss_that_is_not_finite_at_the_start_raises_and_keeps_the_weights():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 2, 1], activation="relu", output="identity", loss="mse",
                     dtype="float32", seed=0)
    net.params = np.full(net.n_params, 1e30)
    kept = net.params.copy()
    x, t = net._data(X, y)
    with pytest.raises(FloatingPointError, match="not finite"):
        bp.optim.LBFGS().run_epoch(net, x, t)
    assert np.array_equal(net.params, kept)


@pytest.mark.parametrize("reduction, weights", [
    ("sum", [0, 1, 2, 3, 1, 0, 2, 1, 1, 4, 0, 1, 2, 1, 1, 3]),
    ("mean", [2, 0, 1, 1, 0, 3, 1, 1, 1, 0, 2, 1, 1, 1, 0, 1]),  # adds up to the 16 rows
])
def test_integer_sample_weights_equal_repeating_the_rows(reduction, weights):
    X, y = bp.datasets.parity(4)
    weights = np.array(weights)
    repeated = np.repeat(np.arange(len(X)), weights)

    def train(X_, y_, sample_weight):
        net = bp.Network([4, 5, 1], activation="tanh", output="sigmoid", loss="mse",
                         reduction=reduction, dtype="float64", seed=3)
        opt = bp.optim.LBFGS(max_iter=5)
        x, t = net._data(X_, y_)
        w = None if sample_weight is None else sample_weight.astype(np.float64)
        losses = [opt.run_epoch(net, x, t, sample_weight=w)["loss"] for _ in range(3)]
        return net.params.copy(), losses

    weighted, weighted_losses = train(X, y, weights)
    plain, plain_losses = train(X[repeated], y[repeated], None)
    unweighted, _ = train(X, y, None)
    np.testing.assert_allclose(weighted_losses, plain_losses, rtol=1e-9)
    np.testing.assert_allclose(weighted, plain, rtol=1e-6, atol=1e-8)
    assert not np.allclose(weighted, unweighted, rtol=1e-3)


def test_saved_with_the_model_and_loaded_with_its_settings(tmp_path):
    X, y = bp.datasets.xor()
    net = bp.Network([2, 2, 1], activation="tanh", output="sigmoid", loss="mse")
    opt = bp.optim.LBFGS(lr=0.5, history_size=4, max_iter=3, line_search=None)
    opt.run_epoch(net, *net._data(X, y))
    net.save(tmp_path / "model.npz", optimizer=opt)
    _, loaded = bp.load(tmp_path / "model.npz", with_optimizer=True)
    assert isinstance(loaded, bp.optim.LBFGS)
    assert loaded._settings() == opt._settings()
