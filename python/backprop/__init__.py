"""backprop: train fully connected neural networks by backpropagation on a CPU, fast.

    import backprop as bp
    X, y = bp.datasets.load_digits()
    net = bp.Network([64, 32, 10], activation="relu", loss="cross_entropy", seed=0)
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=20)
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

# GNU OpenMP spins about 300,000 rounds at every barrier before it sleeps. When another process
# holds a core, that spinning starves the thread it waits for, and a step can take 10-100x
# longer (measured: 2.5 ms alone, 30-220 ms beside one busy process). A short spin keeps the
# speed on an idle machine and bounds the loss on a shared one. It must be set before the
# OpenMP runtime loads with our extension; an explicit user setting wins.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

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
from .float_mode import get_flush_denormals, set_flush_denormals
from .gradcheck import GradcheckResult, gradcheck
from .io import load
from .layers import Dense
from .network import Network
from .threads import get_num_threads, set_num_threads

# The estimators import scikit-learn when it is installed (slow, ~1 s): load them on first use.
_LAZY = {"MLPClassifier": "estimators", "MLPRegressor": "estimators", "estimators": None}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        module = import_module(".estimators", __name__)
        value = module if _LAZY[name] is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "MLPClassifier",
    "MLPRegressor",
    "ModelCheckpoint",
    "Network",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "callbacks",
    "datasets",
    "estimators",
    "fit",
    "get_flush_denormals",
    "get_num_threads",
    "gradcheck",
    "kernels",
    "load",
    "optim",
    "schedules",
    "set_flush_denormals",
    "set_num_threads",
]
