"""Bad input to the scikit-learn estimators: each case raises naming what was wrong, and a
fitted estimator is left as it was."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

X = np.random.default_rng(0).random((30, 3))
Y = np.array([0, 1, 2] * 10)


@pytest.fixture(scope="module")
def fitted():
    # Five epochs are enough for a model to check input against; they do not converge.
    with pytest.warns(bp.estimators.ConvergenceWarning):
        return bp.MLPClassifier(max_iter=5, random_state=0).fit(X, Y)


CASES = [
    ("labels-not-seen-in-training", lambda c: c.partial_fit(X[:3], np.array([0, 1, 5])),
     ValueError, r"y contains labels not in classes_ \[0, 1, 2\]: \[5\]"),
    ("wrong-columns", lambda c: c.predict(X[:, :2]), ValueError, "X has 2 features"),
    ("NaN-in-X", lambda c: c.predict(np.full((2, 3), np.nan)), ValueError, "NaN"),
    ("empty-X", lambda c: c.predict(X[:0]), ValueError, "0 sample"),
    ("strings", lambda c: c.predict([["a", "b", "c"]]), ValueError, "strings"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_and_keeps_the_model(fitted, call, error, match):
    before = [w.copy() for w in fitted.coefs_]
    with pytest.raises(error, match=match):
        call(fitted)
    assert all(np.array_equal(a, b) for a, b in zip(before, fitted.coefs_))


@pytest.mark.parametrize("params, match", [({"batch_size": 0}, "batch_size"),
                                            ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
                                            ({"learning_rate_init": -1.0}, "learning_rate_init")])
def test_bad_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        bp.MLPClassifier(max_iter=2, **params).fit(X, Y)
