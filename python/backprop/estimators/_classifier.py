"""MLPClassifier: scikit-learn's multi-layer perceptron classifier, trained by backprop."""

from __future__ import annotations

from typing import Any, Optional, cast

import numpy as np

from ._base import BaseMLP, Target, stochastic_only
from ._compat import ClassifierMixin
from ._docs import ATTRIBUTES, DIFFERENCES, PARAMETERS
from ._labels import (BINARY, MULTICLASS, MULTILABEL, class_ids, kind_of, label_values,
                      require_two_classes, unique_labels)
from ._scores import accuracy
from ._validation import as_array, check_rows


class MLPClassifier(ClassifierMixin, BaseMLP):  # type: ignore[misc]  # scikit-learn ships no types: its base is Any
    """A multi-layer perceptron classifier with scikit-learn's interface, trained by backprop's
    native kernels.

        clf = bp.MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)
        clf.predict(X_new); clf.predict_proba(X_new); clf.score(X_test, y_test)

    Targets: labels of any sortable kind (ints, strings, ...) for binary and multiclass
    problems, mapped through classes_; or a 2-D 0/1 indicator matrix for multilabel problems.
    Two classes train one sigmoid output with binary cross-entropy; more, a softmax output
    with cross-entropy; multilabel, one sigmoid output per label with binary cross-entropy.
    The loss is the mean over the samples (scikit-learn's log-loss).
    """

    # -- targets ---------------------------------------------------------------------------
    def _targets(self, y: Any, rows: int, first: bool, incremental: bool, classes: Any,
                 dtype: np.dtype) -> Target:
        owner = type(self).__name__
        labels = label_values(y, rows, owner)
        if first:
            if labels.ndim == 2:
                found = unique_labels(labels)
            elif incremental:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit.")
                found = unique_labels(as_array(classes).ravel())
            else:
                found = unique_labels(labels)
            if labels.ndim == 1:
                require_two_classes(found, owner)
            kind = kind_of(labels, len(found))
        else:
            found, kind = self.classes_, self._label_kind
            if incremental and classes is not None and not _same_classes(classes, found):
                raise ValueError(f"`classes={classes!r}` is not the same as on the first call to "
                                 f"partial_fit, which was {found.tolist()!r}")
            if (labels.ndim == 2) != (kind == MULTILABEL) or (
                    kind == MULTILABEL and labels.shape[1] != self.n_outputs_):
                fitted = (f"a {self.n_outputs_}-label indicator matrix" if kind == MULTILABEL
                          else "1-D class labels")
                raise ValueError(f"y must have the form of the y the classifier was fitted on "
                                 f"({fitted}); got shape {labels.shape}")
        if kind == MULTILABEL:
            values = np.ascontiguousarray(labels, dtype=dtype)
            return Target(values, labels.shape[1], "binary_cross_entropy", "logistic",
                          info={"classes": found, "kind": kind, "label_dtype": labels.dtype})
        ids = class_ids(labels, found)
        if kind == BINARY:
            values = ids.astype(dtype).reshape(-1, 1)
            loss, output, outputs = "binary_cross_entropy", "logistic", 1
        else:
            values = np.zeros((rows, len(found)), dtype=dtype)
            values[np.arange(rows), ids] = 1
            loss, output, outputs = "cross_entropy", "softmax", len(found)
        return Target(values, outputs, loss, output, ids=ids,
                      info={"classes": found, "kind": kind, "label_dtype": labels.dtype})

    def _commit_targets(self, target: Target) -> None:
        self.classes_ = target.info["classes"]
        self._label_kind = target.info["kind"]
        self._label_dtype = target.info["label_dtype"]

    def _validation_score(self, x: np.ndarray, target: Target, weights: Optional[np.ndarray]) -> float:
        out = self._network.forward(x)
        if self._label_kind == MULTILABEL:
            correct = ((out > 0.5) == (target.values > 0.5)).all(axis=1)
        elif self._label_kind == BINARY:
            correct = (out[:, 0] > 0.5) == (target.ids == 1)
        else:
            correct = out.argmax(axis=1) == target.ids
        return accuracy(correct, weights)

    # -- training --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPClassifier":
        """Train on samples X (n_samples, n_features) and labels y: 1-D labels, or a 2-D 0/1
        indicator matrix (multilabel). sample_weight: one weight >= 0 per sample. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @stochastic_only
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> "MLPClassifier":
        """One epoch on (X, y), from the current weights and optimizer state: the way to train
        on data that arrives in parts ('sgd' and 'adam' only). The first call needs `classes`,
        every label that will ever appear (not needed for multilabel y); later calls may
        repeat it. Returns self."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # -- predicting ------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes) in the order of classes_ (multilabel:
        each label's probability, (n_samples, n_labels)), float64."""
        out = self._forward(X)
        if self._label_kind == BINARY:
            positive = out[:, 0]
            return np.column_stack([1.0 - positive, positive])
        if self._label_kind == MULTICLASS:
            out /= out.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 only to ~1e-7
        return out

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of predict_proba."""
        with np.errstate(divide="ignore"):
            return cast(np.ndarray, np.log(self.predict_proba(X)))  # numpy types ufuncs as Any

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, from classes_ (multilabel: the 0/1 indicator
        matrix of labels with probability > 0.5, in the dtype of the y fitted on)."""
        probabilities = self.predict_proba(X)
        if self._label_kind == MULTILABEL:
            return (probabilities > 0.5).astype(self._label_dtype)
        # numpy types argmax(axis=...) and fancy indexing as Any.
        return cast(np.ndarray, self.classes_[probabilities.argmax(axis=1)])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy on (X, y), weighted by sample_weight; for multilabel y, the share of
        samples with every label right (subset accuracy)."""
        predicted = self.predict(X)
        truth = as_array(y)
        if truth.ndim == 2 and truth.shape[1] == 1 and predicted.ndim == 1:
            truth = truth.ravel()
        check_rows(len(predicted), len(truth))
        if truth.shape != predicted.shape:
            raise ValueError(f"y has shape {truth.shape}; the classifier predicts {predicted.shape}")
        correct = predicted == truth
        if correct.ndim == 2:
            correct = correct.all(axis=1)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return accuracy(correct, weights)

    # -- tags ------------------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {"multilabel": True}


def _same_classes(given: Any, classes: np.ndarray) -> bool:
    try:
        return bool(np.array_equal(unique_labels(as_array(given).ravel()), classes))
    except (TypeError, ValueError):
        return False


MLPClassifier.__doc__ = (MLPClassifier.__doc__ or "") + PARAMETERS + """
    Attributes (besides those below)
    ----------
    classes_ : ndarray
        The class labels, sorted (multilabel: the label column numbers 0..n_labels-1).
""" + ATTRIBUTES + DIFFERENCES
