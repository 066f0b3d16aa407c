"""scikit-learn's per-epoch rules for the stochastic solvers, as a fit callback: record the loss
(and validation score), stop after n_iter_no_change epochs without a tol improvement, and adapt
the SGD learning rate ('invscaling', 'adaptive')."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from ..callbacks import Callback
from ..network import Network

# 'adaptive' stops dividing the learning rate by 5 once it is at or below this (as scikit-learn).
_MIN_ADAPTIVE_LR = 1e-6


class Plateau:
    """Counts the epochs in a row that failed to beat the best value by more than tol."""

    def __init__(self, tol: float, maximize: bool) -> None:
        self.tol = tol
        self.maximize = maximize
        self.best = -math.inf if maximize else math.inf
        self.count = 0

    def update(self, value: float) -> bool:
        """Count the epoch; True when it set a new best (improved at all, tol or not)."""
        if math.isnan(value):
            self.count += 1
            return False
        if self.maximize:
            self.count = self.count + 1 if value < self.best + self.tol else 0
            improved = value > self.best
        else:
            self.count = self.count + 1 if value > self.best - self.tol else 0
            improved = value < self.best
        if improved:
            self.best = value
        return improved


class EpochMonitor(Callback):
    """Ends each epoch of an estimator's training the way scikit-learn's MLPs do.

    loss_of(epoch_loss, net) turns the network's epoch loss into the one scikit-learn reports
    (its scale and the L2 penalty); score(), when early stopping, is the validation score.
    """

    changes_lr = True

    def __init__(self, estimator: Any, settings: Any, plateau: Plateau, n_train: int,
                 loss_of: Callable[[float, Network], float],
                 score: Optional[Callable[[], float]]) -> None:
        self.estimator = estimator
        self.settings = settings  # the estimator's checked hyper-parameters
        self.plateau = plateau
        self.n_train = n_train
        self.loss_of = loss_of
        self.score = score
        self.epochs = 0
        self.stopped = False
        self.best_params: Optional[np.ndarray] = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], net: Network) -> Optional[bool]:
        est, s = self.estimator, self.settings
        loss = self.loss_of(logs["loss"], net)
        self.epochs += 1
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if s.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}", flush=True)
        if self.score is not None:
            value = float(self.score())
            est.validation_scores_.append(value)
            if s.verbose:
                print(f"Validation score: {value:f}", flush=True)
            if self.plateau.update(value):
                est.best_validation_score_ = value
                self.best_params = net.params.copy()
        else:
            self.plateau.update(loss)
            if est.best_loss_ is None or loss < est.best_loss_:
                est.best_loss_ = loss

        sgd = s.solver == "sgd"
        if sgd and s.learning_rate == "invscaling":
            self._set_lr(s.learning_rate_init / (est.t_ + 1) ** s.power_t)
        if self.plateau.count > s.n_iter_no_change:
            what = "Validation score" if self.score is not None else "Training loss"
            message = (f"{what} did not improve more than tol={s.tol:f} for "
                       f"{s.n_iter_no_change} consecutive epochs.")
            lr = self._lr()
            if sgd and s.learning_rate == "adaptive" and lr > _MIN_ADAPTIVE_LR:
                self._set_lr(lr / 5.0)
                self.plateau.count = 0
                if s.verbose:
                    print(f"{message} Setting learning rate to {lr / 5.0:f}", flush=True)
                return None
            if s.verbose:
                print(f"{message} Stopping.", flush=True)
            self.stopped = True
            return True
        return None

    def _lr(self) -> float:
        assert self.optimizer is not None
        return self.optimizer.lr

    def _set_lr(self, lr: float) -> None:
        assert self.optimizer is not None
        self.optimizer.lr = lr


__all__ = ["EpochMonitor", "Plateau"]
