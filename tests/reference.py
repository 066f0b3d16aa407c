"""Plain NumPy oracle for backprop: every kernel and whole training runs are checked against it.

Written straight from the mathematics in DESIGN.md, for clarity rather than speed. Conventions:

* Row-major: a batch of m samples is the m rows of X; layer l computes
  ``U_l = X_{l-1} @ W_l + b_l`` and ``X_l = f_l(U_l)`` with W_l of shape (fan_in, fan_out).
* Arithmetic happens in the dtype it is given (float32 or float64); other inputs are cast to it.
  The one exception is erfc (for gelu), which ``math.erfc`` evaluates in double and which is
  then rounded to the working dtype.  Loss *values* are always computed in float64.
* The parameters of a network are one flat array: W_1 (row-major), b_1, W_2, b_2, ...
"""

import math

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")
OUTPUTS = ACTIVATIONS + ("softmax",)
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")
REDUCTIONS = ("mean", "sum")

DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}

# The output each cross-entropy is defined for (mse works with every output).
_REQUIRED_OUTPUT = {"binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


# --------------------------------------------------------------------------------------------
# small helpers


def _as_float_array(x, dtype=None):
    """x as an array of `dtype`, or of its own float dtype (non-floats become float64)."""
    x = np.asarray(x)
    if dtype is None:
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    return x.astype(dtype, copy=False)


def _split_activation(activation):
    """'name' or ('name', alpha) -> (name, alpha-or-None)."""
    if isinstance(activation, (tuple, list)):
        if len(activation) != 2:
            raise ValueError(f"activation must be a name or (name, alpha), got {activation!r}")
        return activation[0], activation[1]
    return activation, None


def _alpha_for(name, alpha, dtype):
    """The activation's parameter as a scalar of `dtype` (None when it has none)."""
    if name not in DEFAULT_ALPHA:
        return None
    value = DEFAULT_ALPHA[name] if alpha is None else alpha
    return np.dtype(dtype).type(value)


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_loss_output(loss, output):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    output_name, _ = _split_activation(output)
    if output_name not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    required = _REQUIRED_OUTPUT.get(loss)
    if required is not None and output_name != required:
        raise ValueError(f"loss {loss!r} requires output {required!r}, got {output!r}")


def _check_targets(u, y):
    if u.ndim != 2:
        raise ValueError(f"u must be 2-D (m, n), got shape {u.shape}")
    if y.shape != u.shape:
        raise ValueError(f"y must have the shape of u {u.shape}, got {y.shape}")


# --------------------------------------------------------------------------------------------
# GEMM


def gemm(A, B, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, C=None):
    """alpha * op(A) @ op(B) + beta * C as a new array; C is not read at all when beta == 0."""
    A = _as_float_array(A)
    B = _as_float_array(B)
    dtype = np.result_type(A, B)
    op_a = (A.T if trans_a else A).astype(dtype, copy=False)
    op_b = (B.T if trans_b else B).astype(dtype, copy=False)
    if op_a.ndim != 2 or op_b.ndim != 2:
        raise ValueError("gemm needs 2-D A and B")
    if op_a.shape[1] != op_b.shape[0]:
        raise ValueError(f"inner dimensions differ: op(A) {op_a.shape}, op(B) {op_b.shape}")
    scalar = dtype.type
    out = scalar(alpha) * (op_a @ op_b)
    if beta != 0:
        if C is None:
            raise ValueError("C is required when beta != 0")
        C = np.asarray(C, dtype=dtype)
        if C.shape != out.shape:
            raise ValueError(f"C must have shape {out.shape}, got {C.shape}")
        out = out + scalar(beta) * C
    return out


# --------------------------------------------------------------------------------------------
# activations


def _sigmoid(u):
    # exp of a non-positive number only, so nothing overflows for any u.
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


def _std_normal_cdf(u):
    # erfc(-x) rather than 1 + erf(x), which cancels in the lower tail.
    return (0.5 * _erfc(-u.astype(np.float64) / math.sqrt(2.0))).astype(u.dtype)


def _std_normal_pdf(u):
    return (np.exp(-0.5 * u.astype(np.float64) ** 2) / math.sqrt(2.0 * math.pi)).astype(u.dtype)


def activation_forward(name, u, alpha=None):
    """f(u) elementwise. alpha: negative slope of leaky_relu, alpha of elu; ignored otherwise."""
    u = _as_float_array(u)
    a = _alpha_for(name, alpha, u.dtype)
    if name == "identity":
        return u.copy()
    if name == "sigmoid":
        return _sigmoid(u)
    if name == "tanh":
        return np.tanh(u)
    if name == "relu":
        return np.maximum(u, 0)
    if name == "leaky_relu":
        return np.where(u > 0, u, a * u)
    if name == "elu":
        # expm1 of min(u, 0): the branch not taken must not overflow either.
        return np.where(u > 0, u, a * np.expm1(np.minimum(u, 0)))
    if name == "softplus":
        return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))
    if name == "gelu":
        with np.errstate(invalid="ignore"):
            value = u * _std_normal_cdf(u)
        return np.where(np.isneginf(u), 0, value).astype(u.dtype)  # the limit at -inf
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def activation_derivative(name, u, alpha=None):
    """f'(u) elementwise; at a kink (u == 0) the left-hand (u <= 0) derivative is used."""
    u = _as_float_array(u)
    a = _alpha_for(name, alpha, u.dtype)
    one = u.dtype.type(1)
    if name == "identity":
        return np.ones_like(u)
    if name == "sigmoid":
        s = _sigmoid(u)
        return s * (1 - s)
    if name == "tanh":
        t = np.tanh(u)
        return 1 - t * t
    if name == "relu":
        return np.where(u > 0, one, 0).astype(u.dtype)
    if name == "leaky_relu":
        return np.where(u > 0, one, a)
    if name == "elu":
        return np.where(u > 0, one, a * np.exp(np.minimum(u, 0)))
    if name == "softplus":
        return _sigmoid(u)
    if name == "gelu":
        # d/du [u * Phi(u)] = Phi(u) + u * phi(u), whose second term tends to 0 at +-inf
        with np.errstate(invalid="ignore"):
            tail = u * _std_normal_pdf(u)
        return _std_normal_cdf(u) + np.where(np.isinf(u), 0, tail).astype(u.dtype)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def softmax(u):
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    u = _as_float_array(u)
    e = np.exp(u - u.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(u):
    shifted = u - u.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def output_forward(output, u):
    """The output layer's function: "softmax" or an activation name (or (name, alpha))."""
    name, alpha = _split_activation(output)
    if name == "softmax":
        return softmax(u)
    return activation_forward(name, u, alpha)


# --------------------------------------------------------------------------------------------
# losses


def loss_value(loss, output, u, y, reduction="mean"):
    """Loss of pre-activations u (m, n) against dense targets y (m, n), as a float64 Python float.

    A sample's loss sums over its outputs; "mean" averages samples, "sum" adds them.
    """
    _check_loss_output(loss, output)
    _check_reduction(reduction)
    u = _as_float_array(u, np.float64)
    y = _as_float_array(y, np.float64)
    _check_targets(u, y)
    if loss == "mse":
        per_sample = 0.5 * ((output_forward(output, u) - y) ** 2).sum(axis=1)
    elif loss == "binary_cross_entropy":
        # -[y log s(u) + (1 - y) log(1 - s(u))], rewritten so that no log or exp overflows
        per_element = np.maximum(u, 0) - u * y + np.log1p(np.exp(-np.abs(u)))
        per_sample = per_element.sum(axis=1)
    else:  # cross_entropy
        per_sample = -(y * _log_softmax(u)).sum(axis=1)
    total = per_sample.sum()
    if reduction == "mean":
        total = total / u.shape[0]
    return float(total)


def loss_grad(loss, output, u, y, reduction="mean"):
    """dLoss/du with shape (m, n) and u's dtype (the matching loss is loss_value)."""
    _check_loss_output(loss, output)
    _check_reduction(reduction)
    u = _as_float_array(u)
    y = _as_float_array(y, u.dtype)
    _check_targets(u, y)
    m = u.shape[0]
    scale = m if reduction == "mean" else 1
    if loss == "binary_cross_entropy":
        return (_sigmoid(u) - y) / scale
    if loss == "cross_entropy":
        # -sum(y * log p) has gradient p * sum(y) - y; for one-hot rows that is p - y
        p = softmax(u)
        return (p * y.sum(axis=1, keepdims=True) - y) / scale
    # mse: the output's Jacobian-transpose applied to dLoss/dy_hat = (y_hat - y) / m
    g = (output_forward(output, u) - y) / scale
    name, alpha = _split_activation(output)
    if name == "softmax":
        # J = diag(p) - p p^T (symmetric), so J^T g = p * (g - <g, p>)
        p = softmax(u)
        return p * (g - (g * p).sum(axis=1, keepdims=True))
    return activation_derivative(name, u, alpha) * g


def one_hot(labels, n_classes, dtype=np.float64):
    """Integer labels (m,) -> (m, n_classes) rows of zeros with a one at the label."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels must be integers")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.size, n_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


# --------------------------------------------------------------------------------------------
# the flat parameter layout


def n_params(layer_sizes):
    """Number of weights and biases of a network with these layer sizes."""
    sizes = list(layer_sizes)
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def unflatten(params, layer_sizes):
    """[(W_1, b_1), (W_2, b_2), ...] as views into the flat params (W_l is fan_in x fan_out)."""
    params = np.asarray(params)
    if params.ndim != 1 or params.size != n_params(layer_sizes):
        raise ValueError(
            f"params must be 1-D with {n_params(layer_sizes)} entries for layer sizes "
            f"{list(layer_sizes)}, got shape {params.shape}"
        )
    sizes = list(layer_sizes)
    layers = []
    offset = 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = params[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
        offset += fan_in * fan_out
        b = params[offset:offset + fan_out]
        offset += fan_out
        layers.append((W, b))
    return layers


def flatten(layers):
    """Inverse of unflatten: [(W_1, b_1), ...] -> one flat array."""
    pieces = []
    for W, b in layers:
        pieces.append(np.asarray(W).ravel())
        pieces.append(np.asarray(b).ravel())
    return np.concatenate(pieces)


# --------------------------------------------------------------------------------------------
# the network


def _hidden_activations(activations, n_layers):
    """One (name, alpha) per hidden layer from a single activation or a list of them."""
    n_hidden = n_layers - 1
    if isinstance(activations, str) or (
        isinstance(activations, tuple) and len(activations) == 2 and isinstance(activations[0], str)
        and not isinstance(activations[1], (str, tuple, list))
    ):
        chosen = [activations] * n_hidden
    else:
        chosen = list(activations)
        if len(chosen) != n_hidden:
            raise ValueError(f"need {n_hidden} hidden activations, got {len(chosen)}")
    split = [_split_activation(a) for a in chosen]
    for name, _ in split:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")
    return split


def _dense_targets(loss, Y, n_out, dtype):
    """Targets as a dense (m, n_out) array: integer class ids are one-hot encoded for
    cross_entropy, and a 1-D vector is a column when there is a single output."""
    Y = np.asarray(Y)
    if Y.ndim == 1:
        if loss == "cross_entropy" and np.issubdtype(Y.dtype, np.integer):
            return one_hot(Y, n_out, dtype)
        if n_out == 1:
            return Y.reshape(-1, 1).astype(dtype)
    if Y.ndim != 2 or Y.shape[1] != n_out:
        raise ValueError(f"targets must have shape (m, {n_out}), got {Y.shape}")
    return Y.astype(dtype, copy=False)


def mlp_forward(params, layer_sizes, activations, output, X):
    """Forward pass in the params' dtype. Returns (pre, post): pre[l] = U_{l+1} and
    post[l] = X_{l+1} for each of the L layers (the input is not included), so post[-1] is
    y_hat = output_forward(output, U_L)."""
    params = _as_float_array(params)
    layers = unflatten(params, layer_sizes)
    hidden = _hidden_activations(activations, len(layers))
    X = _as_float_array(X, params.dtype)
    if X.ndim != 2 or X.shape[1] != layer_sizes[0]:
        raise ValueError(f"X must have shape (m, {layer_sizes[0]}), got {X.shape}")
    pre, post = [], []
    x = X
    for l, (W, b) in enumerate(layers):
        u = x @ W + b
        if l < len(hidden):
            name, alpha = hidden[l]
            x = activation_forward(name, u, alpha)
        else:
            x = output_forward(output, u)
        pre.append(u)
        post.append(x)
    return pre, post


def mlp_loss(params, layer_sizes, activations, output, loss, X, Y, reduction="mean"):
    """The network's loss on (X, Y) as a float."""
    _check_loss_output(loss, output)
    params = _as_float_array(params)
    Y = _dense_targets(loss, Y, layer_sizes[-1], params.dtype)
    pre, _ = mlp_forward(params, layer_sizes, activations, output, X)
    return loss_value(loss, output, pre[-1], Y, reduction)


def mlp_grad(params, layer_sizes, activations, output, loss, X, Y, reduction="mean"):
    """(loss, flat gradient) by backpropagation; the gradient has the params' layout and dtype."""
    _check_loss_output(loss, output)
    params = _as_float_array(params)
    layers = unflatten(params, layer_sizes)
    hidden = _hidden_activations(activations, len(layers))
    Y = _dense_targets(loss, Y, layer_sizes[-1], params.dtype)
    pre, post = mlp_forward(params, layer_sizes, activations, output, X)
    inputs = [_as_float_array(X, params.dtype)] + post[:-1]  # X_{l-1} for each layer l

    value = loss_value(loss, output, pre[-1], Y, reduction)
    grads = [None] * len(layers)
    D = loss_grad(loss, output, pre[-1], Y, reduction)  # D_L
    for l in range(len(layers) - 1, -1, -1):
        W, _ = layers[l]
        grads[l] = (inputs[l].T @ D, D.sum(axis=0))
        if l > 0:
            name, alpha = hidden[l - 1]
            D = (D @ W.T) * activation_derivative(name, pre[l - 1], alpha)
    return value, flatten(grads).astype(params.dtype, copy=False)


def numerical_grad(f, params, eps=1e-6):
    """Central differences (f(p + eps e_i) - f(p - eps e_i)) / (2 eps) of a scalar function,
    evaluated in float64 on a copy of params (the caller's array is never touched)."""
    p = np.array(params, dtype=np.float64)  # a copy
    flat = p.reshape(-1)  # a view of the copy
    grad = np.empty_like(flat)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = float(f(p))
        flat[i] = original - eps
        f_minus = float(f(p))
        flat[i] = original
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(p.shape)


# --------------------------------------------------------------------------------------------
# optimizer and training loop


def sgd_step(params, grads, velocity, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """One step of SGD as torch.optim.SGD with dampening 0; returns (new_params, new_velocity).

    velocity None means zeros (torch's first step, buf = g, is the same as 0 * mu + g).
    """
    if nesterov and momentum <= 0:
        raise ValueError("nesterov momentum requires momentum > 0")
    params = _as_float_array(params)
    dtype = params.dtype
    scalar = dtype.type
    grads = _as_float_array(grads, dtype)
    if grads.shape != params.shape:
        raise ValueError(f"grads must have shape {params.shape}, got {grads.shape}")
    if velocity is None:
        velocity = np.zeros_like(params)
    velocity = _as_float_array(velocity, dtype)
    if velocity.shape != params.shape:
        raise ValueError(f"velocity must have shape {params.shape}, got {velocity.shape}")

    g = grads + scalar(weight_decay) * params if weight_decay != 0 else grads.copy()
    if momentum != 0:
        mu = scalar(momentum)
        new_velocity = mu * velocity + g
        step = g + mu * new_velocity if nesterov else new_velocity
    else:
        new_velocity = velocity.copy()
        step = g
    new_params = params - scalar(lr) * step
    return new_params, new_velocity


def train_sgd(params, layer_sizes, activations, output, loss, X, Y, *, lr, momentum=0.0,
              nesterov=False, weight_decay=0.0, batch_size, epochs, orders, reduction="mean"):
    """Mini-batch SGD over `epochs` epochs, epoch e visiting rows in the order orders[e].

    Returns (params, per-epoch losses); each batch's loss is taken before its update and an
    epoch's loss is the row-weighted mean of its batch losses ("mean") or their sum ("sum").
    """
    _check_loss_output(loss, output)
    _check_reduction(reduction)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(orders) != epochs:
        raise ValueError(f"need one order per epoch: {epochs} epochs, {len(orders)} orders")
    params = np.array(_as_float_array(params))  # our own copy
    X = _as_float_array(X, params.dtype)
    Y = _dense_targets(loss, Y, layer_sizes[-1], params.dtype)
    m = X.shape[0]
    if Y.shape[0] != m:
        raise ValueError(f"X has {m} rows but Y has {Y.shape[0]}")

    velocity = np.zeros_like(params)
    epoch_losses = []
    for order in orders:
        order = np.asarray(order)
        if order.shape != (m,) or not np.array_equal(np.sort(order), np.arange(m)):
            raise ValueError("each order must be a permutation of range(number of rows)")
        total = 0.0
        for start in range(0, m, batch_size):
            rows = order[start:start + batch_size]
            batch_loss, grads = mlp_grad(params, layer_sizes, activations, output, loss,
                                         X[rows], Y[rows], reduction)
            total += batch_loss * len(rows) if reduction == "mean" else batch_loss
            params, velocity = sgd_step(params, grads, velocity, lr=lr, momentum=momentum,
                                        nesterov=nesterov, weight_decay=weight_decay)
        epoch_losses.append(total / m if reduction == "mean" else total)
    return params, epoch_losses
