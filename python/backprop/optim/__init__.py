"""Optimizers: first-order rules that run as one native update over the flat parameter buffer
(SGD, Adagrad, RMSprop, Adam, AdamW, Rprop, Quickprop), and full-batch second-order methods
(LBFGS, LevenbergMarquardt) that train a whole epoch themselves."""

from .first_order import SGD, Adagrad, Adam, AdamW, Optimizer, Quickprop, RMSprop, Rprop
from .lbfgs import LBFGS
from .levenberg_marquardt import LevenbergMarquardt

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Rprop", "Quickprop",
           "LBFGS", "LevenbergMarquardt"]

from .first_order import _number  # noqa: E402,F401  (shared argument check, used by callbacks)
