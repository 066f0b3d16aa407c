"""scikit-learn's base classes, warnings and errors when it is installed, small stand-ins when it
is not: scikit-learn is an optional extra, and the estimators import and work without it."""

from __future__ import annotations

import inspect
from typing import Any

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

    class ConvergenceWarning(UserWarning):  # type: ignore[no-redef]
        """Training reached max_iter before it converged."""

    class DataConversionWarning(UserWarning):  # type: ignore[no-redef]
        """An input was reshaped or converted to what the estimator needs."""

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """The estimator was used before fit (an AttributeError too, so hasattr() is False)."""

    class BaseEstimator:  # type: ignore[no-redef]
        """Stand-in base: a repr listing the parameters that differ from their defaults."""

        def __repr__(self) -> str:
            signature = inspect.signature(type(self).__init__)
            defaults = {name: p.default for name, p in signature.parameters.items()}
            params = self.get_params(deep=False)  # type: ignore[attr-defined]
            changed = [f"{name}={value!r}" for name, value in params.items()
                       if not _same(value, defaults.get(name, inspect.Parameter.empty))]
            return f"{type(self).__name__}({', '.join(changed)})"

    class ClassifierMixin:  # type: ignore[no-redef]
        _estimator_type = "classifier"

    class RegressorMixin:  # type: ignore[no-redef]
        _estimator_type = "regressor"


class InvalidParameterError(ValueError, TypeError):
    """A hyper-parameter has a wrong type or value (raised by fit, never by __init__ or
    set_params, as the estimator protocol requires). Both a ValueError and a TypeError, like
    scikit-learn's own."""


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # an array or an object whose == is not a plain bool
        return False


__all__ = ["HAVE_SKLEARN", "BaseEstimator", "ClassifierMixin", "RegressorMixin",
           "ConvergenceWarning", "DataConversionWarning", "NotFittedError",
           "InvalidParameterError"]
