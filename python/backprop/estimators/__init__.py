"""scikit-learn compatible estimators: MLPClassifier and MLPRegressor, with scikit-learn's
MLP parameters and attributes, trained by backprop's native kernels.

scikit-learn is optional: with it installed the estimators are its BaseEstimator and mixins
(so clone, Pipeline, GridSearchCV and check_estimator work); without it they still fit,
predict, score, get_params/set_params and pickle.
"""

from ._classifier import MLPClassifier
from ._compat import HAVE_SKLEARN, ConvergenceWarning, DataConversionWarning, NotFittedError
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "ConvergenceWarning", "DataConversionWarning",
           "NotFittedError", "HAVE_SKLEARN"]
