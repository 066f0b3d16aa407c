"""MLPRegressor: scikit-learn's multi-layer perceptron regressor, trained by backprop."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._base import BaseMLP, Target, stochastic_only
from ._compat import RegressorMixin
from ._docs import ATTRIBUTES, DIFFERENCES, PARAMETERS
from ._scores import r2_score
from ._validation import (as_array, check_rows, column_to_1d, reject_complex, require_finite,
                          require_y)


class MLPRegressor(RegressorMixin, BaseMLP):  # type: ignore[misc]  # scikit-learn ships no types: its base is Any
    """A multi-layer perceptron regressor with scikit-learn's interface, trained by backprop's
    native kernels.

        reg = bp.MLPRegressor(hidden_layer_sizes=(64,), random_state=0).fit(X, y)
        reg.predict(X_new); reg.score(X_test, y_test)          # R^2

    Targets: 1-D (one output) or 2-D (n_samples, n_outputs) real values; identity outputs,
    squared error. Training follows the gradient scikit-learn's MLPRegressor follows, that of
    0.5 * the squared error summed over the outputs and averaged over the samples (backprop's
    'mse'); loss_ and loss_curve_ report what scikit-learn reports, which also averages over
    the outputs (the data term divided by n_outputs_). With several outputs scikit-learn's
    L-BFGS is handed that averaged loss with the summed gradient; here L-BFGS minimises the
    summed loss, the one its gradient belongs to.
    """

    # -- targets ---------------------------------------------------------------------------
    def _targets(self, y: Any, rows: int, first: bool, incremental: bool, classes: Any,
                 dtype: np.dtype) -> Target:
        require_y(y, type(self).__name__)
        array = as_array(y)
        reject_complex(array, "y")
        if array.ndim == 0 or array.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D (n_samples, n_outputs); got shape {array.shape}")
        check_rows(rows, array.shape[0])
        array = column_to_1d(array)
        exact = np.asarray(array, dtype=np.float64)  # strings or objects that are not numbers raise here
        require_finite(exact, "y")
        with np.errstate(over="ignore"):
            values = np.ascontiguousarray(exact.reshape(rows, -1), dtype=dtype)
        require_finite(values, "y")
        outputs = values.shape[1]
        if not first and outputs != self.n_outputs_:
            raise ValueError(f"y has {outputs} outputs, but the regressor was fitted with "
                             f"{self.n_outputs_}")
        return Target(values, outputs, "mse", "identity", report_scale=1.0 / outputs)

    def _validation_score(self, x: np.ndarray, target: Target, weights: Optional[np.ndarray]) -> float:
        return r2_score(target.values, self._network.forward(x), weights)

    # -- training --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """Train on samples X (n_samples, n_features) and targets y, (n_samples,) or
        (n_samples, n_outputs). sample_weight: one weight >= 0 per sample. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @stochastic_only
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch on (X, y), from the current weights and optimizer state ('sgd' and
        'adam' only). Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    # -- predicting ------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Predictions, float64: (n_samples,) for one output, else (n_samples, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of the predictions for X against y (averaged uniformly over outputs),
        weighted by sample_weight."""
        predicted = self.predict(X)
        truth = np.asarray(as_array(y), dtype=np.float64)
        check_rows(len(predicted), len(truth))
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return r2_score(truth, predicted, weights)

    # -- tags ------------------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {"multioutput": True}


MLPRegressor.__doc__ = (MLPRegressor.__doc__ or "") + PARAMETERS + ATTRIBUTES + DIFFERENCES
