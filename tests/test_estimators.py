"""bp.MLPClassifier and bp.MLPRegressor: scikit-learn's estimator checks, its MLPs' semantics
(initial weights, loss scale, L2 penalty, stopping rule) compared with scikit-learn itself, and
the estimators' own behaviour (labels, multilabel, multi-output, partial_fit, warm_start, early
stopping, pickling, use without scikit-learn)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.estimators import ConvergenceWarning, NotFittedError

try:
    import sklearn

    SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
except ImportError:
    SKLEARN_VERSION = None
HAVE_SKLEARN = SKLEARN_VERSION is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")

# One thread: the results do not depend on it, and the small problems here run fastest on one.
FAST = {"n_threads": 1}

# Short runs that stop at max_iter are the point of many tests here.
pytestmark = pytest.mark.filterwarnings(
    f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__qualname__}")


@pytest.fixture(scope="module")
def digits():
    """The digits split 75/25 (X already in [0, 1])."""
    X, y = bp.datasets.load_digits()
    return bp.datasets.train_test_split(X, y, test_size=0.25, seed=0)


def blobs(n=240, n_features=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_classes, n_features))
    y = np.arange(n) % n_classes
    return centers[y] + rng.normal(size=(n, n_features)), y


def regression(n=200, n_features=5, n_outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    W = rng.normal(size=(n_features, n_outputs))
    y = np.tanh(X @ W) + 0.1 * X[:, :1] ** 2
    return X, (y.ravel() if n_outputs == 1 else y)


# -- scikit-learn's estimator checks -----------------------------------------------------------

# The default float32 estimators, and float64 ones on which the checks that want float64
# agreement pass too; max_iter 50 keeps the suite quick (as scikit-learn's own uses 100).
CHECKED = [
    bp.MLPClassifier(max_iter=50, **FAST),
    bp.MLPRegressor(max_iter=50, **FAST),
    bp.MLPClassifier(max_iter=50, dtype="float64", **FAST),
    bp.MLPRegressor(max_iter=50, dtype="float64", **FAST),
    bp.MLPClassifier(max_iter=50, solver="lbfgs", dtype="float64", **FAST),
    bp.MLPRegressor(max_iter=50, solver="sgd", dtype="float64", **FAST),
]

FLOAT32_SAMPLE_WEIGHT = (
    "float32 arithmetic: fitting with integer sample weights and fitting on the repeated "
    "samples agree to ~1e-7 relative (rounding), while the check asks rtol=1e-7, atol=1e-9; "
    "the same check passes with dtype='float64'")


def expected_failures(estimator):
    if np.dtype(estimator.dtype) == np.float32:
        return {"check_sample_weight_equivalence_on_dense_data": FLOAT32_SAMPLE_WEIGHT,
                "check_sample_weight_equivalence_on_sparse_data": FLOAT32_SAMPLE_WEIGHT}
    return {}


if HAVE_SKLEARN and SKLEARN_VERSION >= (1, 6):
    from sklearn.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks(CHECKED, expected_failed_checks=expected_failures)
    def test_sklearn_estimator_checks(estimator, check):
        check(estimator)
else:
    @pytest.mark.skip(reason="scikit-learn >= 1.6 (expected_failed_checks) is not installed")
    def test_sklearn_estimator_checks():
        pass


# -- use with scikit-learn ---------------------------------------------------------------------


@needs_sklearn
def test_pipeline_with_standard_scaler_on_digits(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(StandardScaler(), bp.MLPClassifier(random_state=0, max_iter=100, **FAST))
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.95


@needs_sklearn
def test_grid_search_over_alpha_and_hidden_layer_sizes(digits):
    from sklearn.model_selection import GridSearchCV

    X_train, X_test, y_train, y_test = digits
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(16,), (64,)]}
    search = GridSearchCV(bp.MLPClassifier(max_iter=40, random_state=0, **FAST), grid, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_["hidden_layer_sizes"] == (64,)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ > 0.9
    assert search.score(X_test, y_test) > 0.9


@needs_sklearn
def test_clone_keeps_the_parameters_and_drops_the_fit():
    from sklearn.base import clone, is_classifier, is_regressor

    clf = bp.MLPClassifier(hidden_layer_sizes=(7, 5), alpha=0.01, random_state=3, max_iter=500,
                           **FAST)
    clf.fit(*blobs())
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "coefs_") and hasattr(clf, "coefs_")
    assert is_classifier(clf) and is_regressor(bp.MLPRegressor())


@needs_sklearn
def test_same_initial_weights_as_sklearn():
    from sklearn.neural_network import MLPClassifier as SkClassifier

    X, y = blobs()
    ours = bp.MLPClassifier((6, 4), activation="logistic", solver="sgd", learning_rate_init=1e-300,
                            momentum=0.0, max_iter=1, random_state=5, dtype="float64", **FAST)
    theirs = SkClassifier((6, 4), activation="logistic", solver="sgd", learning_rate_init=1e-300,
                          momentum=0.0, max_iter=1, random_state=5)
    ours.fit(X, y)
    theirs.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_array_equal(a, b)


@needs_sklearn
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_full_batch_training_follows_sklearn_step_for_step(solver):
    """Same start, whole-batch updates, alpha 0: the loss curves and results agree (with 2
    outputs, whose reported loss scikit-learn averages over the outputs)."""
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, y = regression(n_outputs=2)
    settings = dict(hidden_layer_sizes=(8,), solver=solver, alpha=0.0, batch_size=len(X),
                    learning_rate_init=0.01, max_iter=30, random_state=1, shuffle=False)
    ours = bp.MLPRegressor(dtype="float64", **settings, **FAST)
    theirs = SkRegressor(**settings)
    ours.fit(X, y)
    theirs.fit(X, y)
    # Adam places epsilon differently (torch's form); SGD with momentum is the same update.
    rtol = 1e-9 if solver == "sgd" else 1e-5
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol * 10, atol=rtol)


@needs_sklearn
def test_similar_accuracy_to_sklearn_on_digits(digits):
    from sklearn.neural_network import MLPClassifier as SkClassifier

    X_train, X_test, y_train, y_test = digits
    settings = dict(hidden_layer_sizes=(64,), max_iter=60, random_state=0)
    ours = bp.MLPClassifier(**settings, **FAST).fit(X_train, y_train)
    theirs = SkClassifier(**settings).fit(X_train, y_train)
    ours_score, theirs_score = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    assert ours_score >= 0.95 and theirs_score >= 0.95
    assert abs(ours_score - theirs_score) <= 0.02
    assert abs(ours.loss_ - theirs.loss_) <= 0.2 * theirs.loss_


# -- scikit-learn's objective ------------------------------------------------------------------


def test_lbfgs_minimises_sklearn_objective_with_l2_on_weights_only():
    X, y = regression(n_outputs=3)
    alpha = 0.5
    reg = bp.MLPRegressor((10,), solver="lbfgs", alpha=alpha, max_iter=1000, tol=1e-6,
                          random_state=0, dtype="float64", **FAST).fit(X, y)
    weights = sum(float((W ** 2).sum()) for W in reg.coefs_)
    objective = 0.5 * np.mean((reg.predict(X) - y) ** 2) + alpha / (2 * len(X)) * weights
    assert reg.loss_ == pytest.approx(objective, rel=1e-12)
    # The biases feel no penalty, so at the optimum the output bias zeroes the mean residual; a
    # penalised bias b would leave it near n_outputs * alpha / n * |b| (stationarity). L-BFGS
    # stops on a loss change of ~2e-9, so "zero" is judged against that penalised value.
    residual_mean = np.abs((reg.predict(X) - y).mean(axis=0))
    penalised = y.shape[1] * alpha / len(X) * np.abs(reg.intercepts_[-1])
    assert np.all(residual_mean < 0.1 * penalised), (residual_mean, penalised)
    assert not hasattr(reg, "loss_curve_") and reg.t_ == 0 and 1 <= reg.n_iter_ < 1000


def test_stochastic_loss_includes_the_penalty():
    X, y = regression()
    plain = bp.MLPRegressor((8,), alpha=0.0, max_iter=5, random_state=0, **FAST)
    heavy = bp.MLPRegressor((8,), alpha=100.0, max_iter=5, random_state=0, **FAST)
    plain.fit(X, y)
    heavy.fit(X, y)
    assert heavy.loss_curve_[0] > plain.loss_curve_[0] + 1.0
    assert heavy.loss_ == heavy.loss_curve_[-1] and heavy.best_loss_ == min(heavy.loss_curve_)


# -- targets -----------------------------------------------------------------------------------


def test_string_labels_map_through_classes():
    X, ids = blobs()
    names = np.array(["owl", "cat", "emu"])
    y = names[ids]
    clf = bp.MLPClassifier((16,), random_state=0, max_iter=300, **FAST).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["cat", "emu", "owl"])
    predicted = clf.predict(X)
    assert predicted.dtype.kind == "U" and set(predicted) <= set(names)
    assert clf.score(X, y) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], predicted)
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3


def test_binary_labels_use_one_logistic_output():
    X, ids = blobs(n_classes=2)
    y = np.where(ids == 1, "yes", "no")
    clf = bp.MLPClassifier((8,), random_state=0, max_iter=300, **FAST).fit(X, y)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert clf.coefs_[-1].shape == (8, 1)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_array_equal(clf.predict(X), np.where(proba[:, 1] > 0.5, "yes", "no"))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) > 0.95


def test_multilabel_indicator_targets():
    X, ids = blobs(n=300, n_classes=3)
    Y = np.column_stack([ids == 0, ids != 1, X[:, 0] > np.median(X[:, 0])]).astype(np.int64)
    clf = bp.MLPClassifier((32,), random_state=0, max_iter=400, **FAST).fit(X, Y)
    assert clf.n_outputs_ == 3 and clf.out_activation_ == "logistic"
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    predicted = clf.predict(X)
    assert predicted.shape == Y.shape and predicted.dtype == Y.dtype
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    assert clf.score(X, Y) > 0.85  # every label of a sample right
    boolean = bp.MLPClassifier((32,), random_state=0, max_iter=5, **FAST)
    assert boolean.fit(X, Y.astype(bool)).predict(X).dtype == bool


def test_multi_output_regression():
    X, Y = regression(n=300, n_outputs=2)
    settings = dict(solver="lbfgs", random_state=0, max_iter=100, **FAST)
    reg = bp.MLPRegressor((32,), **settings).fit(X, Y)
    single = bp.MLPRegressor((8,), **settings).fit(X, Y[:, 0])
    assert reg.n_outputs_ == 2 and reg.out_activation_ == "identity"
    predicted = reg.predict(X)
    assert predicted.shape == (300, 2) and predicted.dtype == np.float64
    assert reg.score(X, Y) > 0.95
    assert single.predict(X).shape == (300,) and single.n_outputs_ == 1


def test_classifier_rejects_continuous_targets_and_a_single_class():
    X, _ = blobs()
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        bp.MLPClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="only 1 class"):
        bp.MLPClassifier(**FAST).fit(X, np.zeros(len(X)))


# -- partial_fit, warm_start, early stopping, convergence --------------------------------------


def test_partial_fit_learns_from_batches():
    X, y = blobs(n=600)
    clf = bp.MLPClassifier((16,), learning_rate_init=0.01, random_state=0, **FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:100], y[:100])
    for epoch in range(5):
        for start in range(0, len(X), 100):
            clf.partial_fit(X[start:start + 100], y[start:start + 100], classes=[0, 1, 2])
    assert clf.n_iter_ == 1 and clf.t_ == 5 * len(X) and len(clf.loss_curve_) == 30
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:10], np.full(10, 7))
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X[:10], y[:10], classes=[0, 1, 2, 3])
    assert not hasattr(bp.MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(bp.MLPRegressor(solver="sgd"), "partial_fit")


def test_partial_fit_regressor_continues_the_optimizer():
    X, y = regression()
    reg = bp.MLPRegressor((16,), learning_rate_init=0.01, random_state=0, **FAST)
    for _ in range(20):
        reg.partial_fit(X, y)
    assert reg.t_ == 20 * len(X) and len(reg.loss_curve_) == 20
    assert reg.loss_curve_[-1] < 0.7 * reg.loss_curve_[0]


def test_warm_start_continues_from_the_fitted_weights():
    X, y = regression()
    settings = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0, **FAST)
    warm = bp.MLPRegressor(warm_start=True, **settings).fit(X, y)
    first = [W.copy() for W in warm.coefs_]
    warm.fit(X, y)
    cold = bp.MLPRegressor(**settings).fit(X, y)
    assert len(warm.loss_curve_) == 20 and warm.n_iter_ == 10 and warm.t_ == 20 * len(X)
    assert warm.loss_curve_[10] < warm.loss_curve_[0]
    np.testing.assert_array_equal(cold.coefs_[0], first[0])  # cold restarts from the seed
    assert not np.array_equal(warm.coefs_[0], first[0])
    warm.set_params(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="warm_start"):
        warm.fit(X, y)


def test_early_stopping_records_validation_scores():
    X, y = blobs(n=400)
    clf = bp.MLPClassifier((16,), early_stopping=True, validation_fraction=0.2,
                           learning_rate_init=0.01, max_iter=500, random_state=0, **FAST).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ < 500 and all(0 <= s <= 1 for s in scores)
    assert clf.best_validation_score_ == max(scores) and clf.best_loss_ is None
    assert len(clf.loss_curve_) == clf.n_iter_
    reg = bp.MLPRegressor((16,), early_stopping=True, max_iter=500, random_state=0,
                          **FAST).fit(*regression(n=300))
    assert len(reg.validation_scores_) == reg.n_iter_ and reg.best_validation_score_ > 0.5
    with pytest.raises(ValueError, match="early_stopping"):
        bp.MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="too small"):
        bp.MLPClassifier(early_stopping=True, **FAST).fit(X[:10], y[:10])


def test_stopping_rule_and_convergence_warning():
    X, y = blobs()
    # A tol larger than any improvement: epoch 1 sets the best, then n_iter_no_change + 1
    # epochs without improvement stop training, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = bp.MLPClassifier((8,), tol=100.0, n_iter_no_change=3, random_state=0, **FAST).fit(X, y)
    assert clf.n_iter_ == 5
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        bp.MLPClassifier((8,), max_iter=3, random_state=0, **FAST).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        bp.MLPClassifier((8,), solver="lbfgs", max_iter=2, random_state=0, **FAST).fit(X, y)
    # 'adaptive' divides the rate by 5 instead of stopping, while it is above 1e-6: from 1e-3,
    # five times (epochs 3, 5, 7, 9, 11, after every 2 epochs without improvement), then the
    # stop after epoch 13.
    adaptive = bp.MLPClassifier((8,), solver="sgd", learning_rate="adaptive", tol=100.0,
                                n_iter_no_change=1, random_state=0, **FAST).fit(X, y)
    assert adaptive.n_iter_ == 13
    assert issubclass(ConvergenceWarning, UserWarning)


# -- pickling and the rest of the protocol -----------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: (bp.MLPClassifier((12,), random_state=0, max_iter=30, **FAST), blobs()),
    lambda: (bp.MLPRegressor((12,), solver="sgd", random_state=0, max_iter=30, **FAST),
             regression(n_outputs=2)),
    lambda: (bp.MLPClassifier((12,), solver="lbfgs", random_state=0, max_iter=30, **FAST), blobs()),
], ids=["adam-classifier", "sgd-regressor", "lbfgs-classifier"])
def test_pickle_round_trip_predicts_the_same_and_trains_on_the_same(make):
    model, (X, y) = make()
    model.fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    deep = copy.deepcopy(model)
    for twin in (restored, deep):
        np.testing.assert_array_equal(twin.predict(X), model.predict(X))
        assert twin.get_params() == model.get_params()
        assert twin.loss_ == model.loss_ and twin.n_features_in_ == model.n_features_in_
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    if hasattr(model, "partial_fit"):  # the optimizer state and shuffling order came along
        kwargs = {"classes": model.classes_} if hasattr(model, "classes_") else {}
        model.partial_fit(X, y, **kwargs)
        restored.partial_fit(X, y, **kwargs)
        np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_unfitted_estimator_and_parameters():
    clf = bp.MLPClassifier()
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((1, 3)))
    assert not hasattr(clf, "coefs_") and not hasattr(clf, "classes_")
    assert clf.get_params()["hidden_layer_sizes"] == (100,)
    assert clf.set_params(alpha=0.5, hidden_layer_sizes=(3,)) is clf
    assert clf.alpha == 0.5
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        clf.set_params(nope=1)
    assert repr(bp.MLPRegressor(alpha=0.5)) == "MLPRegressor(alpha=0.5)"


@pytest.mark.parametrize("params, match", [
    ({"alpha": -1.0}, "alpha"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
    ({"activation": "softmax"}, "activation"),
    ({"solver": "newton"}, "solver"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": "cyclic"}, "learning_rate"),
    ({"momentum": 1.5}, "momentum"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"max_iter": 0}, "max_iter"),
    ({"dtype": "float16"}, "dtype"),
    ({"n_threads": 0}, "n_threads"),
    ({"random_state": "seed"}, "random_state"),
])
def test_bad_parameters_raise_at_fit_not_at_construction(params, match):
    clf = bp.MLPClassifier(**params)  # never raises: the protocol stores parameters as given
    with pytest.raises(ValueError, match=match):
        clf.fit(*blobs(n=30))


def test_weights_are_views_and_can_be_assigned():
    X, y = blobs()
    clf = bp.MLPClassifier((5,), max_iter=20, random_state=0, **FAST)
    clf.fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(4, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (3,)]
    assert clf.n_layers_ == 3 and clf.coefs_[0].dtype == np.float32
    assert np.shares_memory(clf.coefs_[0], clf.network_.params)
    clf.intercepts_[-1][:] = [0.0, 0.0, 100.0]  # writing into a view changes the model
    assert (clf.predict(X) == 2).all()
    clf.coefs_ = [np.zeros((4, 5)), np.zeros((5, 3))]
    assert (clf.coefs_[1] == 0).all()
    with pytest.raises(ValueError, match="shape"):
        clf.coefs_ = [np.zeros((4, 5)), np.zeros((3, 3))]


def test_sample_weights():
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(8,), max_iter=20, alpha=0.0, random_state=0, **FAST)
    plain = bp.MLPClassifier(**settings).fit(X, y)
    doubled = bp.MLPClassifier(**settings).fit(X, y, sample_weight=np.full(len(X), 2.0))
    skewed = bp.MLPClassifier(**settings).fit(X, y, sample_weight=(y == 0) * 10.0 + 0.01)
    # The loss is the weighted mean: doubling every weight changes nothing (but the L2 penalty,
    # alpha / (2 * the weight total) * ||W||^2, which is off here).
    np.testing.assert_array_equal(doubled.predict_proba(X), plain.predict_proba(X))
    assert (skewed.predict(X) == 0).mean() > (plain.predict(X) == 0).mean()
    weights = np.where(y == 0, 0.0, 1.0)
    assert plain.score(X, y, sample_weight=weights) == pytest.approx(
        (plain.predict(X) == y)[y != 0].mean())
    with pytest.raises(ValueError, match="zero"):
        bp.MLPClassifier(**settings).fit(X, y, sample_weight=np.zeros(len(X)))


def test_threads_do_not_change_the_result_and_are_restored():
    X, y = blobs()
    before = bp.get_num_threads()
    settings = dict(hidden_layer_sizes=(32,), max_iter=15, random_state=0)
    one = bp.MLPClassifier(n_threads=1, **settings).fit(X, y)
    two = bp.MLPClassifier(n_threads=2, **settings).fit(X, y)
    assert bp.get_num_threads() == before
    for a, b in zip(one.coefs_, two.coefs_):
        np.testing.assert_array_equal(a, b)


def test_feature_names_of_data_frames():
    class Frame:  # the parts of a pandas DataFrame the estimators read
        def __init__(self, values, columns):
            self.values, self.columns = np.asarray(values), list(columns)

        def __array__(self, dtype=None, copy=None):
            return self.values if dtype is None else self.values.astype(dtype)

    X, y = blobs()
    reg = bp.MLPRegressor((4,), max_iter=3, **FAST)
    reg.fit(Frame(X, list("abcd")), y.astype(float))
    np.testing.assert_array_equal(reg.feature_names_in_, list("abcd"))
    reg.predict(Frame(X, list("abcd")))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        reg.predict(X)
    with pytest.raises(ValueError, match="feature names should match"):
        reg.predict(Frame(X, list("abdc")))
    with pytest.raises(ValueError, match="X has 3 features, but MLPRegressor is expecting 4"), \
            pytest.warns(UserWarning, match="does not have valid feature names"):
        reg.predict(X[:, :3])


def test_verbose_prints_the_epochs(capsys):
    X, y = blobs()
    bp.MLPClassifier((4,), max_iter=2, verbose=True, **FAST).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and lines[1].startswith("Iteration 2, loss = ")


def test_estimators_work_and_import_lazily_without_sklearn():
    """In a fresh interpreter where scikit-learn cannot be imported: `import backprop` does
    not try, and the estimators fit, predict, score, pickle and warn with stand-ins."""
    code = textwrap.dedent("""
        import pickle, sys, warnings
        sys.modules["sklearn"] = None  # any import of scikit-learn now fails
        import numpy as np
        import backprop as bp
        assert "backprop.estimators" not in sys.modules
        from backprop.estimators import HAVE_SKLEARN, ConvergenceWarning, NotFittedError
        assert not HAVE_SKLEARN and issubclass(ConvergenceWarning, UserWarning)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(120, 3)); y = np.where(X[:, 0] > 0, "pos", "neg")
        clf = bp.MLPClassifier((8,), max_iter=5, random_state=0, n_threads=1)
        try:
            clf.predict(X)
        except NotFittedError:
            pass
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(X, y)
        assert any(issubclass(w.category, ConvergenceWarning) for w in caught)
        clf.set_params(max_iter=200, learning_rate_init=0.01).fit(X, y)
        assert clf.score(X, y) > 0.9 and set(clf.predict(X)) <= {"pos", "neg"}
        again = pickle.loads(pickle.dumps(clf))
        assert (again.predict_proba(X) == clf.predict_proba(X)).all()
        assert repr(clf) == ("MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, "
                             "n_threads=1, random_state=0)")
        reg = bp.MLPRegressor((8,), solver="lbfgs", random_state=0).fit(X, X[:, 0] ** 2)
        assert reg.score(X, X[:, 0] ** 2) > 0.9
        assert reg.get_params()["solver"] == "lbfgs"
        assert "sklearn" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
