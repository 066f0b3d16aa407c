"""Optimizers: first-order rules that run as one native update over the flat parameter buffer
(SGD, Adagrad, RMSprop, Adam, AdamW, Rprop, Quickprop), and full-batch second-order methods
(LBFGS, LevenbergMarquardt) that train a whole epoch themselves."""

from .first_order import SGD, Adagrad, Adam, AdamW, Optimizer, Quickprop, RMSprop, Rprop
from .lbfgs import LBFGS
from .levenberg_marquardt import LevenbergMarquardt

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Rprop", "Quickprop",
           "LBFGS", "LevenbergMarquardt"]

# Shared argument check, used by callbacks and schedules; `as` marks it a deliberate re-export.
from .first_order import _number as _number  # noqa: E402
