"""What MLPClassifier and MLPRegressor share: the parameters, the network they build, training
with the stochastic solvers (through backprop.fit) or L-BFGS, prediction, and pickling."""

from __future__ import annotations

import copy
import functools
import math
import numbers
import operator
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .._arrays import float_dtype
from .._names import ACTIVATIONS
from ..fit import fit as train
from ..network import Network
from ..optim import LBFGS, SGD, Adam, Optimizer
from ..threads import get_num_threads, set_num_threads
from ._compat import BaseEstimator, ConvergenceWarning, InvalidParameterError, NotFittedError
from ._holdout import holdout_split
from ._monitor import EpochMonitor, Plateau
from ._objective import PenalizedObjective, squared_weight_norm
from ._params import ParamsMixin
from ._validation import as_float_matrix, as_sample_weight, check_feature_names, feature_names

SOLVERS = ("adam", "sgd", "lbfgs")
STOCHASTIC_SOLVERS = ("adam", "sgd")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
# scikit-learn's activation names that differ from ours.
ACTIVATION_ALIASES = {"logistic": "sigmoid"}

# A batch_size of 'auto' is min(AUTO_BATCH_SIZE, n_samples), as in scikit-learn.
AUTO_BATCH_SIZE = 200
# L-BFGS: curvature pairs kept (scipy's default maxcor), the relative loss change scipy's
# L-BFGS-B stops at by default (factr 1e7 times the machine epsilon), and the iterations run
# between checks of max_fun (each call also evaluates its starting point once).
LBFGS_HISTORY = 10
LBFGS_TOLERANCE_CHANGE = 1e7 * np.finfo(np.float64).eps
LBFGS_ITERATIONS_PER_CALL = 25
# The random stream of the early-stopping split, apart from the network's (weights 0, shuffling
# 1, dropout 2): see Network.
SPLIT_STREAM = 3


@dataclass
class Target:
    """Training targets as the network reads them, and what fit records about them."""

    values: np.ndarray  # dense (rows, outputs) in the network's dtype
    n_outputs: int
    loss: str  # the network's loss
    out_activation: str  # scikit-learn's name of the output function
    report_scale: float = 1.0  # the network's loss times this is the loss scikit-learn reports
    ids: Optional[np.ndarray] = None  # class ids of single-label targets (stratify by them)
    info: dict[str, Any] = field(default_factory=dict)  # kept by the subclass after fit

    def take(self, rows: np.ndarray) -> "Target":
        return replace(self, values=self.values[rows], ids=None if self.ids is None else self.ids[rows])


def stochastic_only(method: Callable[..., Any]) -> Any:
    """partial_fit exists only for the stochastic solvers: for solver='lbfgs', reading the
    attribute raises AttributeError, so hasattr(estimator, 'partial_fit') is False."""

    class Available:
        def __get__(self, instance: Any, owner: Any = None) -> Any:
            if instance is None:
                return method
            if instance.solver not in STOCHASTIC_SOLVERS:
                raise AttributeError(f"partial_fit is only available for the stochastic solvers "
                                     f"{STOCHASTIC_SOLVERS}; solver={instance.solver!r} is not one")
            return types.MethodType(method, instance)

    available = Available()
    functools.update_wrapper(available, method)  # type: ignore[arg-type]
    return available


@contextmanager
def thread_count(n_threads: Optional[int]) -> Iterator[None]:
    """Run the native kernels on n_threads threads for the block (None: leave the count)."""
    if n_threads is None or n_threads == get_num_threads():
        yield
        return
    before = get_num_threads()
    set_num_threads(n_threads)
    try:
        yield
    finally:
        set_num_threads(before)


class BaseMLP(ParamsMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no types: its base is Any
    """The shared part of MLPClassifier and MLPRegressor (see their documentation)."""

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000,
                 dtype: Any = "float32", n_threads: Optional[int] = None) -> None:
        # Stored unchanged (the estimator protocol): fit checks them.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads

    # -- what the subclasses add -----------------------------------------------------------
    def _targets(self, y: Any, rows: int, first: bool, incremental: bool, classes: Any,
                 dtype: np.dtype) -> Target:
        raise NotImplementedError

    def _commit_targets(self, target: Target) -> None:
        """Record what a first fit learned about the targets (classes_, ...)."""

    def _validation_score(self, x: np.ndarray, target: Target, weights: Optional[np.ndarray]) -> float:
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "BaseMLP":
        """Train on (X, y) from new weights (or, with warm_start, from the fitted ones).

        sample_weight: one weight >= 0 per sample; the weighted mean loss is minimised.
        Returns self.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
             classes: Any = None) -> "BaseMLP":
        settings = self._settings()
        if incremental and settings.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not self.__sklearn_is_fitted__() or (not settings.warm_start and not incremental)
        dtype = settings.dtype if first else self._network.dtype
        names = feature_names(X)
        x = as_float_matrix(X, dtype, type(self).__name__)
        if not first:
            self._check_n_features(x)
            check_feature_names(self, X)
        target = self._targets(y, x.shape[0], first, incremental, classes, dtype)
        weights = as_sample_weight(sample_weight, x.shape[0])
        with thread_count(settings.n_threads):
            if first:
                self._initialize(x, names, target, settings)
            else:
                self._check_architecture(settings, target)
            if settings.solver == "lbfgs":
                self._fit_lbfgs(x, target, weights, settings)
            else:
                self._fit_stochastic(x, target, weights, settings, incremental)
        return self

    def _initialize(self, x: np.ndarray, names: Optional[np.ndarray], target: Target,
                    settings: Any) -> None:
        seed = _seed(self.random_state)
        sizes = [x.shape[1], *settings.hidden, target.n_outputs]
        self._network = Network(sizes, activation=settings.activation, loss=target.loss,
                                dtype=settings.dtype, seed=seed)
        _initialize_like_sklearn(self._network, settings.activation, seed)
        self._seed = seed
        self._optimizer: Optional[Optimizer] = None
        self._plateau: Optional[Plateau] = None
        self.n_features_in_ = x.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_
        self._commit_targets(target)
        self.n_outputs_ = target.n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = target.out_activation
        self.n_iter_ = 0
        self.t_ = 0
        # Per-epoch records start afresh; the stochastic solvers create them (scikit-learn's
        # L-BFGS keeps none).
        for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
            self.__dict__.pop(name, None)

    def _check_architecture(self, settings: Any, target: Target) -> None:
        """warm_start and partial_fit go on training the fitted network: it must be the one
        the parameters describe."""
        net = self._network
        wanted = [self.n_features_in_, *settings.hidden, target.n_outputs]
        activations = [layer.activation for layer in net.layers[:-1]]
        if (net.layer_sizes != wanted or any(a != settings.activation for a in activations)
                or net.dtype != settings.dtype):
            raise ValueError(f"warm_start and partial_fit continue the fitted network "
                             f"{net.layer_sizes} ({activations[0] if activations else 'no hidden layers'}, "
                             f"{net.dtype}), but the parameters now describe {wanted} "
                             f"({settings.activation}, {settings.dtype}); fit with "
                             "warm_start=False to start a new one")

    def _fit_stochastic(self, x: np.ndarray, target: Target, weights: Optional[np.ndarray],
                        settings: Any, incremental: bool) -> None:
        net = self._network
        self._ensure_records(settings)
        if not incremental or self._plateau is None:
            self._plateau = Plateau(settings.tol, maximize=settings.early_stopping)
            if settings.early_stopping:
                self.best_validation_score_: Optional[float] = -math.inf
        score = None
        if settings.early_stopping:
            rng = np.random.default_rng([self._seed, SPLIT_STREAM])
            train_rows, validation_rows = holdout_split(x.shape[0], settings.validation_fraction,
                                                        rng, target.ids)
            x_val, target_val = x[validation_rows], target.take(validation_rows)
            weights_val = None if weights is None else weights[validation_rows]
            x, target = x[train_rows], target.take(train_rows)
            weights = None if weights is None else weights[train_rows]
            score = functools.partial(self._validation_score, x_val, target_val, weights_val)
        rows = x.shape[0]
        batch_size = _batch_size(settings.batch_size, rows)
        # Weights are rescaled to mean 1, so the network's mean loss is the weighted mean (up
        # to each batch's own share of the weight) and the step size does not depend on them.
        mean_weight = 1.0 if weights is None else float(weights.sum()) / rows
        if mean_weight == 0.0:
            raise ValueError("Sample weights of the training samples are all zero")
        train_weights = None if weights is None else weights / mean_weight
        if train_weights is not None and (train_weights == 1.0).all():
            train_weights = None  # equal weights change nothing: take the unweighted path
        # scikit-learn adds alpha / (2 * batch weight) * ||W||^2 to each batch's mean loss:
        # this weight decay (which also decays the biases).
        decay = settings.alpha / (batch_size * mean_weight)
        if incremental and isinstance(self._optimizer, (SGD, Adam)):
            self._optimizer.weight_decay = decay  # the batch size may differ from the last call
        else:
            self._optimizer = _new_optimizer(settings, decay)
        optimizer = self._optimizer
        batches = math.ceil(rows / batch_size)
        penalty: float = 0.5 * settings.alpha * batches / (rows * mean_weight)

        def loss_of(epoch_loss: float, trained: Network) -> float:
            return epoch_loss * target.report_scale + penalty * squared_weight_norm(trained)

        monitor = EpochMonitor(self, settings, self._plateau, rows, loss_of, score)
        self.n_iter_ = 0
        try:
            train(net, x, target.values, optimizer=optimizer,
                  epochs=1 if incremental else settings.max_iter, batch_size=batch_size,
                  shuffle=settings.shuffle, verbose=0, callbacks=[monitor],
                  sample_weight=train_weights, metrics=[])
        except KeyboardInterrupt:  # as scikit-learn: keep the weights trained so far
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if monitor.best_params is not None:
            net.params = monitor.best_params
        if not incremental and not monitor.stopped and monitor.epochs == settings.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({settings.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=4)

    def _ensure_records(self, settings: Any) -> None:
        """The per-epoch records exist (a warm start may follow an 'lbfgs' fit or switch
        early_stopping on)."""
        if "loss_curve_" not in self.__dict__:
            self.loss_curve_: list[float] = []
        if settings.early_stopping:
            if getattr(self, "validation_scores_", None) is None:
                self.validation_scores_: Optional[list[float]] = []
            self.best_loss_: Optional[float] = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            if getattr(self, "best_loss_", None) is None:
                self.best_loss_ = math.inf

    def _fit_lbfgs(self, x: np.ndarray, target: Target, weights: Optional[np.ndarray],
                   settings: Any) -> None:
        net = self._network
        rows = x.shape[0]
        total = float(rows) if weights is None else float(weights.sum())
        train_weights = None if weights is None else weights * (rows / total)
        if train_weights is not None and (train_weights == 1.0).all():
            train_weights = None
        objective = PenalizedObjective(net, settings.alpha, total)
        optimizer = LBFGS(lr=1.0, history_size=LBFGS_HISTORY, tolerance_grad=settings.tol,
                          tolerance_change=LBFGS_TOLERANCE_CHANGE)
        self._optimizer = None
        while (not optimizer.converged and optimizer.steps < settings.max_iter
               and optimizer.evaluations < settings.max_fun):
            before = optimizer.steps
            optimizer.max_iter = min(LBFGS_ITERATIONS_PER_CALL, settings.max_iter - before)
            logs = optimizer.run_epoch(objective, x, target.values, train_weights)  # type: ignore[arg-type]
            if settings.verbose:
                print(f"L-BFGS iteration {before}, loss = {logs['loss']:.8f}", flush=True)
            if optimizer.steps == before and not optimizer.converged:
                break
        self.n_iter_ = optimizer.steps
        self.loss_ = (net.loss(x, target.values, train_weights) * target.report_scale
                      + objective.penalty())
        if settings.verbose:
            print(f"L-BFGS stopped after {self.n_iter_} iterations, loss = {self.loss_:.8f}", flush=True)
        if not optimizer.converged:
            limit = (f"max_fun={settings.max_fun} loss evaluations"
                     if optimizer.evaluations >= settings.max_fun
                     else f"max_iter={settings.max_iter} iterations")
            warnings.warn(f"lbfgs failed to converge: it reached {limit} (after "
                          f"{self.n_iter_} iterations). Increase the limit or scale the data.",
                          ConvergenceWarning, stacklevel=4)

    # -- predicting ------------------------------------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return "_network" in self.__dict__

    def _fitted_network(self) -> Network:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before using this estimator.")
        return self._network

    def _check_n_features(self, x: np.ndarray) -> None:
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")

    def _forward(self, X: Any) -> np.ndarray:
        """The network's outputs for X, in float64."""
        net = self._fitted_network()
        check_feature_names(self, X)
        x = as_float_matrix(X, net.dtype, type(self).__name__)
        self._check_n_features(x)
        with thread_count(_thread_setting(self.n_threads)):
            out = net.forward(x)
        return out.astype(np.float64)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, (fan_in, fan_out) per layer: views into the network, so
        writing into them changes the model."""
        return [layer.W for layer in self._fitted_network().layers]  # type: ignore[misc]

    @coefs_.setter
    def coefs_(self, values: list[Any]) -> None:
        self._assign([layer.W for layer in self._fitted_network().layers], values, "coefs_")

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, one per layer: views into the network."""
        return [layer.b for layer in self._fitted_network().layers]  # type: ignore[misc]

    @intercepts_.setter
    def intercepts_(self, values: list[Any]) -> None:
        self._assign([layer.b for layer in self._fitted_network().layers], values, "intercepts_")

    @staticmethod
    def _assign(targets: list[Any], values: list[Any], name: str) -> None:
        if len(values) != len(targets):
            raise ValueError(f"{name} needs {len(targets)} arrays, one per layer; got {len(values)}")
        arrays = [np.asarray(value) for value in values]
        for i, (target, array) in enumerate(zip(targets, arrays)):
            if array.shape != target.shape:
                raise ValueError(f"{name}[{i}] must have shape {target.shape}; got {array.shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"{name}[{i}] contains NaN or infinity")
        for target, array in zip(targets, arrays):
            target[...] = array

    @property
    def network_(self) -> Network:
        """The fitted backprop.Network (shared, not a copy)."""
        return self._fitted_network()

    # -- pickling --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # The network holds a native engine, which does not pickle: keep what rebuilds it.
        state = self.__dict__.copy()
        net = state.pop("_network", None)
        optimizer = state.pop("_optimizer", None)
        if net is not None:
            rng = net.shuffle_rng
            state["_network_record"] = {
                "layer_sizes": net.layer_sizes,
                "activations": [layer.activation for layer in net.layers[:-1]],
                "loss": net.loss_name,
                "dtype": str(net.dtype),
                "seed": net.seed,
                "params": net.params.copy(),
                "shuffle_rng": (rng.bit_generator.state
                                if isinstance(rng.bit_generator, np.random.PCG64) else None),
            }
        if optimizer is not None and not getattr(optimizer, "full_batch", False):
            # Its settings, step count and state buffers, detached from the network's params
            # (reset() on a shallow copy leaves the original untouched).
            detached = copy.copy(optimizer)
            detached.reset()
            state["_optimizer_record"] = {"optimizer": detached, "steps": optimizer.steps,
                                          "state": [buffer.copy() for buffer in optimizer.state]}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        record = state.pop("_network_record", None)
        optimizer_record = state.pop("_optimizer_record", None)
        self.__dict__.update(state)
        self._optimizer = None
        if record is None:
            return
        net = Network(record["layer_sizes"], activation=record["activations"], loss=record["loss"],
                      dtype=record["dtype"], seed=record["seed"])
        net.params = record["params"]
        if record["shuffle_rng"] is not None:
            generator = np.random.PCG64()
            generator.state = record["shuffle_rng"]
            net.shuffle_rng = np.random.Generator(generator)
        self._network = net
        if optimizer_record is not None:
            optimizer = optimizer_record["optimizer"]
            for buffer, saved in zip(optimizer.state_for(net.params), optimizer_record["state"]):
                buffer[...] = saved
            optimizer.steps = optimizer_record["steps"]
            net.optimizer = optimizer
            self._optimizer = optimizer

    # -- tags (scikit-learn >= 1.6 reads __sklearn_tags__, older versions _more_tags) --------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, and densified
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {}

    # -- parameters ------------------------------------------------------------------------
    def _settings(self) -> types.SimpleNamespace:
        """The hyper-parameters, checked, in the forms training uses."""
        owner = type(self).__name__
        s = types.SimpleNamespace()
        s.hidden = _hidden_sizes(self.hidden_layer_sizes)
        s.activation = _activation(self.activation, owner)
        s.solver = _choice(self.solver, "solver", SOLVERS, owner)
        s.alpha = _real(self.alpha, "alpha", owner)
        s.batch_size = ("auto" if isinstance(self.batch_size, str) and self.batch_size == "auto"
                        else _integer(self.batch_size, "batch_size", owner, low=1, auto=True))
        s.learning_rate = _choice(self.learning_rate, "learning_rate", LEARNING_RATES, owner)
        s.learning_rate_init = _real(self.learning_rate_init, "learning_rate_init", owner, low_open=True)
        s.power_t = _real(self.power_t, "power_t", owner)
        s.max_iter = _integer(self.max_iter, "max_iter", owner, low=1)
        s.shuffle = _boolean(self.shuffle, "shuffle", owner)
        s.tol = _real(self.tol, "tol", owner)
        s.verbose = _verbosity(self.verbose, owner)
        s.warm_start = _boolean(self.warm_start, "warm_start", owner)
        s.momentum = _real(self.momentum, "momentum", owner, high=1.0)
        s.nesterov = _boolean(self.nesterovs_momentum, "nesterovs_momentum", owner)
        s.early_stopping = _boolean(self.early_stopping, "early_stopping", owner)
        s.validation_fraction = _real(self.validation_fraction, "validation_fraction", owner,
                                      low_open=True, high=1.0)
        s.beta_1 = _real(self.beta_1, "beta_1", owner, high=1.0)
        s.beta_2 = _real(self.beta_2, "beta_2", owner, high=1.0)
        s.epsilon = _real(self.epsilon, "epsilon", owner, low_open=True)
        s.n_iter_no_change = _integer(self.n_iter_no_change, "n_iter_no_change", owner, low=1)
        s.max_fun = _integer(self.max_fun, "max_fun", owner, low=1)
        try:
            s.dtype = float_dtype(self.dtype)
        except TypeError as error:
            raise InvalidParameterError(f"The 'dtype' parameter of {owner} must be 'float32' or "
                                        f"'float64'; got {self.dtype!r}") from error
        s.n_threads = _thread_setting(self.n_threads, owner)
        return s


# -- helpers -----------------------------------------------------------------------------------


def _initialize_like_sklearn(net: Network, activation: str, seed: int) -> None:
    """scikit-learn's initialisation: weights and biases uniform in +-sqrt(f / (fan_in +
    fan_out)), f = 2 for logistic hidden units and 6 otherwise, drawn layer by layer (weights,
    then biases) from RandomState(seed): an int random_state starts where scikit-learn does."""
    rng = np.random.RandomState(seed)
    factor = 2.0 if activation == "sigmoid" else 6.0
    for layer in net.layers:
        bound = math.sqrt(factor / (layer.fan_in + layer.fan_out))
        layer.W[...] = rng.uniform(-bound, bound, (layer.fan_in, layer.fan_out))  # type: ignore[index]
        layer.b[...] = rng.uniform(-bound, bound, layer.fan_out)  # type: ignore[index]


def _new_optimizer(settings: Any, decay: float) -> Optimizer:
    if settings.solver == "adam":
        return Adam(lr=settings.learning_rate_init, betas=(settings.beta_1, settings.beta_2),
                    eps=settings.epsilon, weight_decay=decay)
    nesterov = settings.nesterov and settings.momentum > 0  # scikit-learn's default pairs it with momentum 0 too
    return SGD(lr=settings.learning_rate_init, momentum=settings.momentum,
               nesterov=nesterov, weight_decay=decay)


def _batch_size(batch_size: Any, rows: int) -> int:
    if batch_size == "auto":
        return min(AUTO_BATCH_SIZE, rows)
    if batch_size > rows:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to "
                      "be clipped", UserWarning, stacklevel=5)
        return rows
    return int(batch_size)


def _seed(random_state: Any) -> int:
    """The network's seed from random_state: an int as given; a RandomState or Generator draws
    one; None draws one from NumPy's global RandomState (so np.random.seed makes fits
    repeatable, as with scikit-learn)."""
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        value = int(random_state)
        if not 0 <= value < 2**32:
            raise InvalidParameterError(f"random_state must be in [0, 2**32 - 1]; got {value}")
        return value
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise InvalidParameterError(f"random_state must be None, an int, a numpy RandomState or "
                                f"Generator; got {random_state!r}")


def _hidden_sizes(value: Any) -> list[int]:
    items = list(value) if isinstance(value, (list, tuple, np.ndarray, range)) else [value]
    sizes = []
    for item in items:
        if isinstance(item, bool):
            raise InvalidParameterError(f"hidden_layer_sizes must hold ints; got {value!r}")
        try:
            sizes.append(operator.index(item))
        except TypeError:
            raise InvalidParameterError(f"hidden_layer_sizes must be an int or a sequence of "
                                        f"ints; got {value!r}") from None
    if any(size <= 0 for size in sizes):
        raise InvalidParameterError(f"hidden_layer_sizes must be > 0, got {sizes}.")
    return sizes


def _activation(value: Any, owner: str) -> str:
    names = tuple(ACTIVATION_ALIASES) + ACTIVATIONS
    if not isinstance(value, str) or value not in names:
        raise InvalidParameterError(f"The 'activation' parameter of {owner} must be one of "
                                    f"{', '.join(map(repr, names))}; got {value!r}.")
    return ACTIVATION_ALIASES.get(value, value)


def _choice(value: Any, name: str, allowed: tuple[str, ...], owner: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be one of "
                                    f"{', '.join(map(repr, allowed))}; got {value!r}.")
    return value


def _real(value: Any, name: str, owner: str, *, low: float = 0.0, low_open: bool = False,
          high: float = math.inf) -> float:
    """A finite real number in [low, high) (or (low, high) with low_open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be a number; "
                                    f"got {value!r}.")
    number = float(value)
    above = number > low if low_open else number >= low
    if not (math.isfinite(number) and above and number < high):
        left = "(" if low_open else "["
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be in "
                                    f"{left}{low}, {high}); got {value!r}.")
    return number


def _integer(value: Any, name: str, owner: str, *, low: int, auto: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        extra = " or 'auto'" if auto else ""
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be an int{extra}; "
                                    f"got {value!r}.")
    if value < low:
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be >= {low}; "
                                    f"got {value!r}.")
    return int(value)


def _boolean(value: Any, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must be True or False; "
                                    f"got {value!r}.")
    return bool(value)


def _verbosity(value: Any, owner: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (numbers.Integral, np.integer)) and int(value) >= 0:
        return int(value)
    raise InvalidParameterError(f"The 'verbose' parameter of {owner} must be a bool or an int "
                                f">= 0; got {value!r}.")


def _thread_setting(value: Any, owner: str = "the estimator") -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or int(value) < 1:
        raise InvalidParameterError(f"The 'n_threads' parameter of {owner} must be None or an "
                                    f"int >= 1; got {value!r}.")
    return int(value)
