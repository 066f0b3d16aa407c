"""backprop: train fully connected neural networks by backpropagation on a CPU, fast.

    import backprop as bp
    X, y = bp.datasets.load_digits()
    net = bp.Network([64, 32, 10], activation="relu", loss="cross_entropy", seed=0)
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=20)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import callbacks, datasets, kernels, optim, schedules
from .callbacks import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from .fit import History, fit
from .gradcheck import GradcheckResult, gradcheck
from .io import load
from .layers import Dense
from .network import Network
from .threads import get_num_threads, set_num_threads

try:
    __version__ = version("backprop")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "Callback",
    "Dense",
    "EarlyStopping",
    "GradcheckResult",
    "History",
    "LambdaCallback",
    "ModelCheckpoint",
    "Network",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "callbacks",
    "datasets",
    "fit",
    "get_num_threads",
    "gradcheck",
    "kernels",
    "load",
    "optim",
    "schedules",
    "set_num_threads",
]
