"""fit's sample_weight, class_weight and metrics, and accuracy for multi-label outputs."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _digits(rows=300):
    X, y = bp.datasets.load_digits()
    return X[:rows], y[:rows]


def _fit(X, y, **options):
    net = bp.Network([64, 16, 10], seed=0, dtype="float64")
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.05), epochs=2, batch_size=None,
                      verbose=0, **options)
    return net, history


def test_sample_weights_in_fit_equal_repeated_rows_for_full_batch_sum():
    X, y = _digits(50)
    weights = np.random.default_rng(0).integers(0, 3, len(X))
    rows = np.repeat(np.arange(len(X)), weights)
    weighted = bp.Network([64, 8, 10], seed=1, dtype="float64", reduction="sum")
    repeated = bp.Network([64, 8, 10], seed=1, dtype="float64", reduction="sum")
    for net, data, w in ((weighted, (X, y), weights), (repeated, (X[rows], y[rows]), None)):
        net.fit(*data, optimizer=bp.optim.SGD(lr=0.01), epochs=3, batch_size=None, verbose=0,
                sample_weight=w, shuffle=False)
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-10, atol=1e-12)


def test_class_weight_dict_equals_the_sample_weights_it_implies():
    X, y = _digits()
    table = {0: 3.0, 7: 0.5}
    per_row = np.array([table.get(int(c), 1.0) for c in y])
    by_class, _ = _fit(X, y, class_weight=table)
    by_row, _ = _fit(X, y, sample_weight=per_row)
    assert by_class.params.tobytes() == by_row.params.tobytes()


def test_balanced_class_weight_gives_each_class_the_same_total_weight():
    X, y = _digits()
    y = y.copy()
    y[y == 3] = 2  # make class 2 twice as common and class 3 absent
    counts = np.bincount(y, minlength=10)
    present = counts > 0
    expected = np.zeros(10)
    expected[present] = len(y) / (present.sum() * counts[present])
    balanced, _ = _fit(X, y, class_weight="balanced")
    manual, _ = _fit(X, y, sample_weight=expected[y])
    assert balanced.params.tobytes() == manual.params.tobytes()


def test_weights_follow_the_validation_split():
    X, y = _digits()
    weights = np.linspace(0.5, 1.5, len(X))
    split, _ = _fit(X, y, sample_weight=weights, validation_split=0.25)
    explicit, _ = _fit(X[:225], y[:225], sample_weight=weights[:225],
                       validation_data=(X[225:], y[225:]))
    assert split.params.tobytes() == explicit.params.tobytes()


def test_metrics_are_logged_for_training_and_validation():
    X, y = _digits()
    net, history = _fit(X, y, validation_data=(X[:50], y[:50]), metrics=["accuracy", "mse", "mae"])
    assert set(history.history) == {"loss", "accuracy", "mse", "mae", "val_loss", "val_accuracy",
                                    "val_mse", "val_mae"}
    y_hat = net.forward(X)
    one_hot = np.eye(10)[y]
    assert history["mse"][-1] == pytest.approx(np.mean((y_hat - one_hot) ** 2), rel=1e-12)
    assert history["mae"][-1] == pytest.approx(np.mean(np.abs(y_hat - one_hot)), rel=1e-12)


def test_regressors_log_mse_and_refuse_accuracy():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    net = bp.Network([3, 4, 2], loss="mse", seed=0)
    history = net.fit(X, y, epochs=2, verbose=0, metrics=["mae"])
    assert set(history.history) == {"loss", "mae"}
    with pytest.raises(ValueError, match="metric 'accuracy' needs a classifier"):
        net.fit(X, y, epochs=1, verbose=0, metrics=["accuracy"])


def test_multilabel_accuracy_counts_entries():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 5))
    Y = (X[:, :3] > 0).astype(float)  # three independent labels per row
    net = bp.Network([5, 8, 3], loss="binary_cross_entropy", seed=0)
    history = net.fit(X, Y, epochs=1, batch_size=None, verbose=0, optimizer=bp.optim.SGD(lr=1e-12))
    before = np.mean((net.forward(X) > 0.5) == (Y > 0.5))  # lr ~ 0: the weights barely move
    assert history["accuracy"][0] == pytest.approx(before)
    assert net.evaluate(X, Y)["accuracy"] == pytest.approx(before)


@pytest.mark.parametrize("options, error, match", [
    ({"class_weight": "even"}, ValueError, "class_weight must be a dict or 'balanced'"),
    ({"class_weight": {10: 1.0}}, ValueError, r"class_weight keys must be class ids 0\.\.9"),
    ({"class_weight": {1: -1.0}}, ValueError, r"class_weight\[1\] must be a finite number >= 0"),
    ({"class_weight": [1.0]}, TypeError, "class_weight must be a dict or 'balanced'"),
    ({"sample_weight": np.ones(3)}, ValueError, r"sample_weight must have shape \(300,\)"),
    ({"metrics": "accuracy"}, TypeError, "metrics must be a list of names"),
    ({"metrics": ["f1"]}, ValueError, "metrics must name some of"),
])
def test_bad_weights_and_metrics_are_refused(options, error, match):
    X, y = _digits()
    net = bp.Network([64, 16, 10], seed=0)
    before = net.params.tobytes()
    with pytest.raises(error, match=match):
        net.fit(X, y, epochs=1, verbose=0, **options)
    assert net.params.tobytes() == before


def test_partial_fit_continues_with_the_same_optimizer_state():
    X, y = _digits(200)
    whole = bp.Network([64, 16, 10], seed=0)
    whole.fit(X, y, optimizer=bp.optim.Adam(lr=0.01), epochs=3, batch_size=32, verbose=0, seed=5)
    parts = bp.Network([64, 16, 10], seed=0)
    rng = np.random.default_rng(5)
    first = True
    for _ in range(3):
        # the same shuffles fit draws from seed 5, one epoch at a time
        order = rng.permutation(len(X))
        if first:
            parts.partial_fit(X[order], y[order], optimizer=bp.optim.Adam(lr=0.01), batch_size=32,
                              verbose=0, shuffle=False)
            first = False
        else:
            parts.partial_fit(X[order], y[order], batch_size=32, verbose=0, shuffle=False)
    assert parts.optimizer is not None and parts.optimizer.steps == whole.optimizer.steps == 21
    np.testing.assert_allclose(parts.params, whole.params, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="partial_fit trains one epoch"):
        parts.partial_fit(X, y, epochs=2)
