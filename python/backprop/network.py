"""Network: a fully connected network whose weights and biases live in one flat buffer."""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union, cast

import numpy as np

from . import _core
from ._arrays import as_sample_weight, as_samples, float_dtype, zeros_on_cache_lines
from ._names import (
    DEFAULT_OUTPUT,
    activation_alpha,
    activation_code,
    check_init,
    check_loss_output,
    check_output,
    loss_code,
    reduction_code,
)
from ._targets import as_targets
from .initializers import default_init, init_limit, initialize
from .layers import Dense
from .metrics import check_metrics, metric_values
from .optim import Optimizer

if TYPE_CHECKING:
    from .fit import History

# Rows per native call when predicting or evaluating many samples: bounds the workspace.
_ROWS_PER_CHUNK_ELEMENTS = 1 << 20


class Network:
    """A fully connected network trained by backpropagation.

    layers: layer sizes [n_inputs, hidden..., n_outputs], or a list of Dense layers.
    activation: the hidden layers' activation (one name, or one per hidden layer).
    output: what the last layer applies: 'softmax' or an activation name; by default the loss's
        own (softmax for cross_entropy, sigmoid for binary_cross_entropy, identity for mse).
    loss: 'cross_entropy' | 'binary_cross_entropy' | 'mse'; reduction: 'mean' | 'sum'.
    init: 'glorot' | 'he' | 'lecun' | 'uniform' (with init_scale=r); by default He for ReLU-like
        hidden units and Glorot otherwise. Biases start at 0.
    dtype: 'float32' or 'float64'. seed: the weights and the default shuffling order.
    shortcuts: with layer sizes, every layer also reads the input and all earlier layers
        (shortcut connections, as in the 1986 paper); with Dense layers use Dense(inputs=...).
    dropout: with layer sizes, the dropout rate of every hidden layer (Dense(dropout=...) per
        layer otherwise); applied in train_step and fit only, with masks drawn from the seed
        and the optimizer's step count.
    """

    def __init__(self, layers: Sequence[Union[int, Dense]], activation: Union[str, Sequence[str]] = "relu",
                 output: Optional[str] = None, loss: str = "cross_entropy",
                 reduction: str = "mean", init: Optional[str] = None,
                 init_scale: Optional[float] = None, dtype: Any = "float32",
                 seed: Optional[int] = 0, shortcuts: bool = False, dropout: float = 0.0) -> None:
        loss_id = loss_code(loss)
        self._loss_name = loss
        reduction_id = reduction_code(reduction)
        self._reduction = reduction
        self.dtype = float_dtype(dtype)
        self.layers = _build_layers(layers, activation, output, loss, bool(shortcuts), dropout)
        self.output = self.layers[-1].activation or DEFAULT_OUTPUT[loss]
        check_loss_output(loss, self.output)
        self.seed = seed
        hidden = [layer for layer in self.layers[:-1]]
        self.init = default_init([str(layer.activation) for layer in hidden]) if init is None else check_init(init)
        self.init_scale = init_scale

        # Separate streams of the seed: weights, shuffling order, dropout masks.
        rng = np.random.default_rng(seed)
        masks = np.random.default_rng(None if seed is None else [seed, 2])
        self.dropout_seed = int(masks.integers(0, 2**63 - 1))
        self._build_engine(loss_id, reduction_id)
        _check_size(self._engine.n_params, self.dtype)
        self._params = zeros_on_cache_lines(self._engine.n_params, self.dtype)
        self._grads = zeros_on_cache_lines(self._engine.n_params, self.dtype)
        self._attach_views()
        for layer in self.layers:
            limit = init_limit(self.init, layer.fan_in, layer.fan_out, init_scale)
            assert layer.W is not None and layer.b is not None
            initialize(layer.W, layer.b, limit, rng)
        self.shuffle_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.optimizer: Optional[Optimizer] = None  # the last fit's, which partial_fit goes on with

    def _build_engine(self, loss_id: int, reduction_id: int) -> None:
        """The native engine: the network's shape, its dropout seed and its workspace."""
        hidden = self.layers[:-1]
        engine_class = _core.Engine32 if self.dtype == np.float32 else _core.Engine64
        softmax_output = self.output == "softmax"
        self._engine = engine_class(
            self.layers[0].fan_in,
            [layer.fan_in for layer in self.layers],
            [layer.fan_out for layer in self.layers],
            [layer.inputs or [] for layer in self.layers],
            [activation_code(layer.activation) for layer in hidden],
            [layer.resolved_alpha() for layer in hidden],
            [layer.dropout for layer in hidden],
            self.dropout_seed,
            softmax_output,
            0 if softmax_output else activation_code(self.output, "output"),
            self.layers[-1].resolved_alpha(),
            loss_id,
            reduction_id,
        )

    # -- structure -------------------------------------------------------------------------
    @property
    def loss_name(self) -> str:
        """The loss (fixed at construction: the native engine is built for it)."""
        return self._loss_name

    @property
    def reduction(self) -> str:
        """'mean' or 'sum' (fixed at construction)."""
        return self._reduction

    @property
    def layer_sizes(self) -> list[int]:
        return [self.layers[0].fan_in] + [layer.fan_out for layer in self.layers]

    @property
    def n_inputs(self) -> int:
        return self.layers[0].fan_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].fan_out

    @property
    def n_params(self) -> int:
        return int(self._params.size)

    @property
    def params(self) -> np.ndarray:
        """The flat parameter buffer: W_1, b_1, W_2, b_2, ... (layer views point into it)."""
        return self._params

    @params.setter
    def params(self, values: Any) -> None:
        array = np.asarray(values)
        if array.shape != self._params.shape:
            raise ValueError(f"params must have shape {self._params.shape}; got {array.shape}")
        if array.dtype.kind not in "biuf":
            raise TypeError(f"params must hold real numbers; got dtype {array.dtype}")
        if not np.isfinite(array).all():
            raise ValueError("params contains NaN or Inf")
        self._params[...] = array

    def unflatten(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views (W, b) per layer into a flat array of the parameters' layout (e.g. gradients)."""
        if flat.shape != self._params.shape:
            raise ValueError(f"flat must have shape {self._params.shape}; got {flat.shape}")
        views = []
        offset = 0
        for layer in self.layers:
            size = layer.fan_in * layer.fan_out
            w = flat[offset:offset + size].reshape(layer.fan_in, layer.fan_out)
            b = flat[offset + size:offset + size + layer.fan_out]
            views.append((w, b))
            offset += size + layer.fan_out
        return views

    def _attach_views(self) -> None:
        for layer, (w, b) in zip(self.layers, self.unflatten(self._params)):
            layer.W, layer.b = w, b

    # -- inference -------------------------------------------------------------------------
    def _chunks(self, rows: int) -> Iterator[slice]:
        widest = max(self.layer_sizes)
        step = max(256, min(4096, _ROWS_PER_CHUNK_ELEMENTS // widest))
        for start in range(0, rows, step):
            yield slice(start, min(rows, start + step))

    def forward(self, X: Any) -> np.ndarray:
        """The network's output for each row of X: probabilities for softmax/sigmoid outputs."""
        x = as_samples(X, "X", self.n_inputs, self.dtype)
        out = np.empty((x.shape[0], self.n_outputs), dtype=self.dtype)
        for rows in self._chunks(x.shape[0]):
            self._engine.forward(self._params, x[rows], out[rows])
        return out

    __call__ = forward

    @property
    def is_classifier(self) -> bool:
        return self.loss_name in ("cross_entropy", "binary_cross_entropy")

    def predict(self, X: Any) -> np.ndarray:
        """Class ids for cross_entropy, 0/1 labels for binary_cross_entropy, values for mse."""
        y_hat = self.forward(X)
        if self.loss_name == "cross_entropy":
            return cast(np.ndarray, y_hat.argmax(axis=1))  # numpy types argmax(axis=...) as Any
        if self.loss_name == "binary_cross_entropy":
            labels = (y_hat > 0.5).astype(np.int64)
            return labels.ravel() if self.n_outputs == 1 else labels
        return y_hat

    def _data(self, X: Any, y: Any, names: tuple[str, str] = ("X", "y")) -> tuple[np.ndarray, np.ndarray]:
        x = as_samples(X, names[0], self.n_inputs, self.dtype)
        t = as_targets(y, self.loss_name, self.n_outputs, x.shape[0], self.dtype, names[1])
        return x, t

    def _weights(self, sample_weight: Any, rows: int) -> Optional[np.ndarray]:
        return None if sample_weight is None else as_sample_weight(sample_weight, rows, self.dtype)

    def loss(self, X: Any, y: Any, sample_weight: Any = None,
             dropout_step: Optional[int] = None) -> float:
        """The loss on (X, y) with the network's reduction; sample_weight scales each sample's
        loss (the mean still divides by the number of samples). dropout_step: apply dropout
        with the masks training step `dropout_step` draws (by default no dropout)."""
        x, t = self._data(X, y)
        w = self._weights(sample_weight, x.shape[0])
        if dropout_step is not None:  # one call: the masks depend on the row within the batch
            return float(self._engine.loss(self._params, x, t, w, _step(dropout_step)))
        total = 0.0
        for rows in self._chunks(x.shape[0]):
            value = self._engine.loss(self._params, x[rows], t[rows], None if w is None else w[rows])
            total += value * (rows.stop - rows.start) if self.reduction == "mean" else value
        return total / x.shape[0] if self.reduction == "mean" else total

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None,
                 metrics: Optional[Sequence[str]] = None) -> dict[str, float]:
        """{'loss': ..., metric: ...}: the loss and the named metrics ('accuracy', 'mse',
        'mae'); by default accuracy for classifiers and no metric otherwise."""
        names = check_metrics(metrics, self.is_classifier)
        x, t = self._data(X, y)
        result = {"loss": self.loss(x, t, sample_weight)}
        if names:
            result.update(metric_values(names, self.forward(x), t, self.multilabel_accuracy))
        return result

    @property
    def multilabel_accuracy(self) -> bool:
        """Whether accuracy counts entries (binary and multi-label outputs) rather than rows."""
        return self.loss_name == "binary_cross_entropy" or self.n_outputs == 1

    def loss_and_grad(self, X: Any, y: Any, sample_weight: Any = None,
                      dropout_step: Optional[int] = None) -> tuple[float, np.ndarray]:
        """The loss and its gradient, a new flat array in the layout of params. dropout_step:
        as in loss (train_step uses the optimizer's step count)."""
        x, t = self._data(X, y)
        w = self._weights(sample_weight, x.shape[0])
        step = -1 if dropout_step is None else _step(dropout_step)
        value = self._engine.loss_and_grad(self._params, x, t, self._grads, w, step)
        return float(value), self._grads.copy()

    # -- training --------------------------------------------------------------------------
    def train_step(self, X: Any, y: Any, optimizer: Optimizer, sample_weight: Any = None) -> float:
        """Forward, loss, backward and one update on the batch (X, y), in one native call.

        Returns the batch loss before the update. A NaN or Inf loss, or an update that would
        make a weight NaN or Inf, raises FloatingPointError and leaves the weights as they were.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a backprop.optim.Optimizer; got {type(optimizer).__name__}")
        result = None
        # A batch as training loops pass it (this dtype, C order, int64 class ids) goes straight
        # to the core, which checks it, once the optimizer holds this network's state (so a
        # refused first batch binds it to nothing); anything else (None back) is converted or
        # refused here first.
        if sample_weight is None and optimizer._holds_state_for(self._params):
            spec = optimizer._step_record()
            result = self._engine.train_step_on_class_ids(
                self._params, self._grads, optimizer.state_for(self._params, spec), spec, X, y)
        if result is None:
            x, t = self._data(X, y)
            w = self._weights(sample_weight, x.shape[0])
            spec = optimizer._step_record()
            result = self._engine.train_step(self._params, self._grads,
                                             optimizer.state_for(self._params, spec), spec, x, t, w)
        if not result["finite"]:
            what = (f"the loss is {result['loss']}" if not np.isfinite(result["loss"])
                    else "the update would make the weights or optimizer state NaN or Inf")
            raise FloatingPointError(f"{what}; no update was made and the weights are unchanged")
        optimizer.steps += 1
        return float(result["loss"])

    def fit(self, X: Any, y: Any, **options: Any) -> "History":
        """Train on (X, y); see backprop.fit.fit for the options. Returns the History."""
        from .fit import fit

        return fit(self, X, y, **options)

    def partial_fit(self, X: Any, y: Any, optimizer: Optional[Optimizer] = None,
                    **options: Any) -> "History":
        """One more epoch on (X, y), from the current weights and, unless another is given,
        with the optimizer (and its state) of the last fit or partial_fit: the way to train on
        data that arrives in parts. Takes fit's other options."""
        if "epochs" in options:
            raise TypeError("partial_fit trains one epoch; use fit for more")
        return self.fit(X, y, optimizer=optimizer or self.optimizer, epochs=1, **options)

    # -- files -----------------------------------------------------------------------------
    def save(self, path: Any, optimizer: Optional[Optimizer] = None) -> None:
        """Write the model (and the optimizer's state when given) to a versioned .npz file,
        atomically: a crash never leaves a half-written file. See backprop.io."""
        from .io import save

        save(self, path, optimizer=optimizer)

    # -- copies ----------------------------------------------------------------------------
    def astype(self, dtype: Any) -> "Network":
        """A copy of this network computing in another dtype (float64 for gradient checks)."""
        twin = Network([Dense(l.fan_in, l.fan_out, l.activation, alpha=l.alpha, inputs=l.inputs,
                              dropout=l.dropout) for l in self.layers],
                       loss=self.loss_name, reduction=self.reduction, init=self.init,
                       init_scale=self.init_scale, dtype=dtype, seed=self.seed)
        if twin.dropout_seed != self.dropout_seed:  # seed None draws a fresh one: keep ours
            twin.dropout_seed = self.dropout_seed
            twin._build_engine(loss_code(self.loss_name), reduction_code(self.reduction))
        twin.params = self._params
        return twin

    def copy(self) -> "Network":
        return self.astype(self.dtype)

    def __repr__(self) -> str:
        hidden = [layer.activation for layer in self.layers[:-1]]
        act = hidden[0] if len(set(hidden)) == 1 else hidden
        return (f"Network({self.layer_sizes}, activation={act!r}, output={self.output!r}, "
                f"loss={self.loss_name!r}, reduction={self.reduction!r}, dtype='{self.dtype}', "
                f"params={self.n_params})")


def _check_size(n_params: int, dtype: np.dtype) -> None:
    """Refuse a network whose parameters and gradients cannot fit in this machine's memory,
    before allocating them (counts are 64-bit throughout, so sizes past 2**31 are exact)."""
    needed = 2 * n_params * dtype.itemsize  # parameters and gradients
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: leave it to the allocator
        return
    if needed > memory:
        raise MemoryError(f"the layers need {n_params:,} parameters ({needed / 2**30:.1f} GiB with "
                          f"their gradients), more than this machine's {memory / 2**30:.1f} GiB")


def _step(value: Any) -> int:
    try:
        step = operator.index(value)
    except TypeError:
        raise TypeError(f"dropout_step must be an int; got {type(value).__name__}") from None
    if step < 0:
        raise ValueError(f"dropout_step must be >= 0; got {step}")
    return step


def _build_layers(layers: Sequence[Union[int, Dense]], activation: Union[str, Sequence[str]],
                  output: Optional[str], loss: str, shortcuts: bool, dropout: float) -> list[Dense]:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise TypeError("layers must be a list of layer sizes or of Dense layers")
    if all(isinstance(item, Dense) for item in layers):
        if shortcuts:
            raise ValueError("shortcuts=True goes with layer sizes; give Dense layers inputs=[...]")
        if dropout:
            raise ValueError("dropout= goes with layer sizes; give Dense layers dropout=...")
        built = [Dense(l.fan_in, l.fan_out, l.activation, alpha=l.alpha, inputs=l.inputs,  # type: ignore[union-attr]
                       dropout=l.dropout) for l in layers]  # type: ignore[union-attr]
        _check_wiring(built)
    elif any(isinstance(item, Dense) for item in layers):
        raise TypeError("layers must be all sizes or all Dense layers, not a mix")
    else:
        sizes = []
        for i, item in enumerate(layers):
            try:
                sizes.append(operator.index(item))  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(f"layers[{i}] must be an int size; got {type(item).__name__}") from None
        if len(sizes) < 2:
            raise ValueError("layers needs at least 2 sizes: inputs and outputs")
        if shortcuts:  # every layer reads the input and every earlier layer
            built = [Dense(sum(sizes[:i + 1]), sizes[i + 1], inputs=list(range(i + 1)))
                     for i in range(len(sizes) - 1)]
        else:
            built = [Dense(a, b) for a, b in zip(sizes, sizes[1:])]
        for layer in built[:-1]:
            layer.dropout = Dense(1, 1, dropout=dropout).dropout  # checked like Dense's
    hidden = built[:-1]
    names = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    if len(names) != len(hidden):
        raise ValueError(f"activation lists {len(names)} names for {len(hidden)} hidden layers")
    for layer, name in zip(hidden, names):
        if layer.activation is None:
            layer.activation = name
        activation_code(layer.activation, "activation")  # softmax is for outputs only
        activation_alpha(layer.activation, layer.alpha)
    last = built[-1]
    if last.dropout:
        raise ValueError("dropout applies to hidden layers; the output layer must have dropout 0")
    if output is not None:
        last.activation = check_output(output)
    elif last.activation is None:
        last.activation = DEFAULT_OUTPUT[loss] if loss in DEFAULT_OUTPUT else None
    return built


def _check_wiring(layers: list[Dense]) -> None:
    """Each layer's sources exist, come earlier, and add up to its fan_in."""
    first = layers[0]
    if first.inputs not in (None, [0]):
        raise ValueError("layer 1 can only read the network's input: give it inputs=[0] or none")
    widths = [first.fan_in]  # widths[s]: 0 the input, s >= 1 layer s's output
    for number, layer in enumerate(layers, start=1):
        sources = layer.inputs if layer.inputs is not None else [number - 1]
        late = [s for s in sources if s >= number]
        if late:
            raise ValueError(f"layer {number} reads {late}; inputs must be 0 (the network's input) "
                             f"or earlier layers 1..{number - 1}")
        total = sum(widths[s] for s in sources)
        if total != layer.fan_in and layer.inputs is None:
            raise ValueError(f"layers do not chain: {layers[number - 2]!r} gives {total} outputs "
                             f"but {layer!r} takes {layer.fan_in}")
        if total != layer.fan_in:
            raise ValueError(f"layer {number} ({layer!r}) takes {layer.fan_in} values but its "
                             f"inputs {sources} give {total}")
        widths.append(layer.fan_out)
