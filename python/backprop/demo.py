"""The demo: train a network on the bundled handwritten digits and report held-out accuracy."""

from __future__ import annotations

import time
from typing import Sequence

from . import datasets
from .network import Network
from .optim import SGD


def run_demo(hidden: Sequence[int] = (128,), epochs: int = 40, batch_size: int = 32,
             lr: float = 0.05, momentum: float = 0.9, seed: int = 0, verbose: int = 1) -> float:
    """Train on 75% of the digits, print per-epoch metrics, return the accuracy on the rest."""
    X, y = datasets.load_digits(dtype="float32")
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_size=0.25, seed=seed)
    net = Network([X.shape[1], *hidden, 10], activation="relu", loss="cross_entropy", seed=seed)
    print(f"digits: {len(X_train)} training and {len(X_test)} held-out images of 8x8 pixels")
    print(f"model:  {net}")
    started = time.perf_counter()
    net.fit(X_train, y_train, optimizer=SGD(lr=lr, momentum=momentum), epochs=epochs,
            batch_size=batch_size, validation_data=(X_test, y_test), verbose=verbose)
    seconds = time.perf_counter() - started
    accuracy = float((net.predict(X_test) == y_test).mean())
    print(f"held-out accuracy: {accuracy:.4f} ({int(round(accuracy * len(y_test)))}/{len(y_test)}) "
          f"after {epochs} epochs in {seconds:.2f} s")
    return accuracy
