"""The objective scikit-learn's MLPs minimise, as a full-batch optimizer reads a network: the
network's mean loss plus alpha / (2 * weight total) * ||W||^2 on the weights only."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..network import Network


def squared_weight_norm(net: Network) -> float:
    """||W||^2 summed over the layers' weight matrices (biases excluded), in float64."""
    total = 0.0
    for layer in net.layers:
        weights = np.asarray(layer.W).ravel()
        total += float(np.dot(weights, weights.astype(np.float64)))
    return total


class PenalizedObjective:
    """What LBFGS.run_epoch uses of a network (params and loss_and_grad), with the L2 penalty
    of the weights, not the biases, added: the objective whose gradient scikit-learn's MLPs
    follow (its log-loss, and for regression 0.5 * the squared error summed over the outputs
    and averaged over the samples, as backprop's mse)."""

    def __init__(self, net: Network, alpha: float, weight_total: float) -> None:
        self.net = net
        self.params = net.params
        self.alpha = alpha
        self.weight_total = weight_total  # the number of samples, or the sum of their weights

    def penalty(self) -> float:
        return 0.5 * self.alpha * squared_weight_norm(self.net) / self.weight_total

    def loss_and_grad(self, X: np.ndarray, y: np.ndarray,
                      sample_weight: Optional[np.ndarray] = None) -> tuple[float, np.ndarray]:
        value, grads = self.net.loss_and_grad(X, y, sample_weight=sample_weight)
        if self.alpha:
            decay = self.alpha / self.weight_total
            for layer, (weight_grads, _) in zip(self.net.layers, self.net.unflatten(grads)):
                weight_grads += decay * np.asarray(layer.W)
            value += self.penalty()
        return value, grads

    def __getattr__(self, name: str) -> Any:
        # Anything else an optimizer may read (dtype, layers, ...) is the network's.
        if name == "net":
            raise AttributeError(name)
        return getattr(self.net, name)
