"""Train the same MLPs with backprop and its peers (PyTorch, JAX, NumPy, scikit-learn), side by side.

Each contender runs in its own fresh process (this script with --worker NAME, printing one JSON
line), rounds alternate A B A B ..., and the table gives the median samples/s with the min-max
spread, our ratio to each peer taken round by round, and the fraction of the FLOP bound. The
method is the one in shared/BENCH.md.

    python bench/peers.py                       # tiny, mnist, deep; 3 rounds; all cores
    python bench/peers.py --networks wide       # or --full for all four
    python bench/peers.py --quick               # 1 round, short timings (smoke test)
    python bench/peers.py --activation tanh     # hidden layers tanh (or sigmoid), not relu
    python bench/peers.py --data pixels         # inputs in [0, 1), as images have, not N(0, 1)
    python bench/peers.py --ieee                # ours without flushing subnormals to zero
    python bench/peers.py --busy 1              # with one other process spinning on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

# -- what is measured ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    sizes: tuple[int, ...]
    batch: int
    # Batches in the shared data set: one pass is the unit of the epoch-style contenders, so it is
    # kept near 2048 samples, except for wide, where one pass of ours takes seconds.
    n_batches: int
    label: str
    activation: str = "relu"  # of the hidden layers: one of HIDDEN_ACTIVATIONS
    data: str = "normal"  # the inputs: one of INPUT_DATA
    ours_ieee: bool = False  # ours in IEEE arithmetic rather than flushing subnormals (--ieee)

    @property
    def n_samples(self) -> int:
        return self.batch * self.n_batches

    @property
    def weights(self) -> int:
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def first_layer_weights(self) -> int:
        return self.sizes[0] * self.sizes[1]

    @property
    def flops_per_sample(self) -> int:
        # Forward 2·fan_in·fan_out per layer, backward the same for dW and again for dX, except
        # the first layer, which needs no dX (shared/BENCH.md).
        p1 = self.first_layer_weights
        return 4 * p1 + 6 * (self.weights - p1)


NETWORKS = {
    "tiny": NetworkSpec("tiny", (784, 128, 10), 32, 64, "784-128-10"),
    "mnist": NetworkSpec("mnist", (784, 512, 512, 10), 128, 16, "784-512-512-10"),
    "deep": NetworkSpec("deep", (256,) + (256,) * 8 + (10,), 64, 32, "256-(8x256)-10"),
    "wide": NetworkSpec("wide", (1024, 4096, 4096, 1024), 256, 2, "1024-4096-4096-1024"),
}
DEFAULT_NETWORKS = ("tiny", "mnist", "deep")
# Hidden activations every contender has; the names are backprop's (sklearn calls sigmoid
# "logistic").
HIDDEN_ACTIVATIONS = ("relu", "tanh", "sigmoid")

LEARNING_RATE = 0.01
MOMENTUM = 0.9
DATA_SEED = 0  # inputs and integer labels, the same arrays in every worker
# The inputs: N(0, 1), or "pixels" in [0, 1) like an image's intensities. On pixels, ReLU units
# die, and under momentum their weights' velocities decay into the subnormal numbers, which
# cost an Intel CPU a microcode assist per operation unless flushed to zero (--ieee).
INPUT_DATA = ("normal", "pixels")
INIT_SEED = 1  # the shared He-uniform starting weights (biases 0)

# Contenders in the order each round runs them. "Ours" are the first two.
CONTENDERS = ("bp_step", "bp_epoch", "torch", "jax", "numpy", "sklearn")
OURS = ("bp_step", "bp_epoch")
TITLES = {
    "bp_step": "backprop train_step",
    "bp_epoch": "backprop train_epoch",
    "torch": "PyTorch eager",
    "jax": "JAX jit",
    "numpy": "NumPy by hand",
    "sklearn": "sklearn MLPClassifier",
}
# The NumPy and scikit-learn peers run on NumPy's OpenBLAS; these two variables, set on some
# machines for old OpenBLAS builds, slow a current one (shared/BENCH.md), so those workers drop them.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BLAS_CONTENDERS = ("numpy", "sklearn")


# -- shared data and weights (built identically in every worker) -------------------------------


def make_data(spec: NetworkSpec) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(DATA_SEED)
    shape = (spec.n_samples, spec.sizes[0])
    if spec.data == "pixels":
        X = rng.random(shape, dtype=np.float32)
    else:
        X = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, spec.sizes[-1], size=spec.n_samples).astype(np.int64)
    return X, y


def make_batches(spec: NetworkSpec, X: Any, y: Any) -> list[tuple[Any, Any]]:
    import numpy as np

    B = spec.batch
    return [(np.ascontiguousarray(X[i * B:(i + 1) * B]), np.ascontiguousarray(y[i * B:(i + 1) * B]))
            for i in range(spec.n_batches)]


def make_weights(spec: NetworkSpec) -> list[tuple[Any, Any]]:
    """He-uniform (fan_in, fan_out) weights and zero biases, float32: every contender starts here,
    so the loss of the first batch must agree across contenders (the cross-check in the table)."""
    import numpy as np

    rng = np.random.default_rng(INIT_SEED)
    layers = []
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        limit = math.sqrt(6.0 / fan_in)
        W = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        layers.append((W, np.zeros(fan_out, dtype=np.float32)))
    return layers


# -- contenders (each built inside its own worker process) -------------------------------------


@dataclass
class Contender:
    """One way of training. `run` processes one unit (a step, or a whole pass over the data) and
    returns something `loss` can turn into the last loss; `warm` is a short run of the same code
    path; `sync` waits for queued work (JAX dispatches asynchronously)."""

    run: Callable[[], Any]
    unit_samples: int
    warm: Callable[[], Any]
    loss0: float  # loss of batch 0 at the shared starting weights, before any update
    loss: Callable[[Any], float]
    info: dict[str, Any]
    sync: Callable[[], None] = lambda: None
    # sklearn: a one-batch call, timed after the main run to show the fixed cost per call.
    per_call_probe: Optional[Callable[[], Any]] = None


def cycling(batches: list[Any]) -> Callable[[], Any]:
    """The next pre-sliced batch on each call, round and round."""
    state = {"i": 0}

    def next_batch() -> Any:
        i = state["i"]
        state["i"] = (i + 1) % len(batches)
        return batches[i]

    return next_batch


def build_bp(spec: NetworkSpec, threads: int, per_epoch: bool) -> Contender:
    import backprop as bp

    bp.set_num_threads(threads)
    bp.set_flush_denormals(not spec.ours_ieee)
    X, y = make_data(spec)
    net = bp.Network(list(spec.sizes), activation=spec.activation, loss="cross_entropy", reduction="mean",
                     dtype="float32", seed=0)
    for layer, (W, b) in zip(net.layers, make_weights(spec)):
        layer.W[...] = W
        layer.b[...] = b
    opt = bp.optim.SGD(lr=LEARNING_RATE, momentum=MOMENTUM)
    info = {"version": bp.__version__, "gemm_isa": bp.kernels.gemm_isa(),
            "flush_denormals": bp.get_flush_denormals(),
            "threads": bp.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    batches = make_batches(spec, X, y)
    if not per_epoch:
        next_batch = cycling(batches)

        def step() -> float:
            xb, yb = next_batch()
            return net.train_step(xb, yb, opt)

        loss0 = step()
        return Contender(run=step, unit_samples=spec.batch, warm=step, loss0=loss0,
                         loss=float, info=info)

    loss0 = net.loss(*batches[0])
    B = spec.batch

    def epoch() -> Any:
        return net.fit(X, y, optimizer=opt, epochs=1, batch_size=B, verbose=0, shuffle=True)

    def warm() -> Any:
        # Same batch size, so the same native workspaces as a full pass; just shorter.
        return net.fit(X[:B], y[:B], optimizer=opt, epochs=1, batch_size=B, verbose=0)

    return Contender(run=epoch, unit_samples=spec.n_samples, warm=warm, loss0=loss0,
                     loss=lambda history: float(history["loss"][-1]), info=info)


def build_torch(spec: NetworkSpec, threads: int) -> Contender:
    import torch

    torch.set_num_threads(threads)
    X, y = make_data(spec)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        if i:
            layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                           "sigmoid": torch.nn.Sigmoid}[spec.activation]())
        layers.append(torch.nn.Linear(fan_in, fan_out))
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for linear, (W, b) in zip(linears, make_weights(spec)):
            linear.weight.copy_(torch.from_numpy(W.T.copy()))  # torch keeps (fan_out, fan_in)
            linear.bias.copy_(torch.from_numpy(b))
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in make_batches(spec, X, y)]
    next_batch = cycling(batches)

    def step() -> Any:
        xb, yb = next_batch()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    loss0 = float(step().item())
    info = {"version": torch.__version__, "threads": torch.get_num_threads(),
            "mkl": bool(torch.backends.mkl.is_available()),
            "mkldnn": bool(torch.backends.mkldnn.is_available())}
    return Contender(run=step, unit_samples=spec.batch, warm=step, loss0=loss0,
                     loss=lambda loss: float(loss.item()), info=info)


def build_jax(spec: NetworkSpec, threads: int) -> Contender:
    import jax
    import jax.numpy as jnp
    import jaxlib

    X, y = make_data(spec)
    tree_map = jax.tree_util.tree_map
    hidden = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[spec.activation]

    def loss_fn(params: Any, xb: Any, yb: Any) -> Any:
        a = xb
        for W, b in params[:-1]:
            a = hidden(a @ W + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(a @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def train_step(params: Any, velocity: Any, xb: Any, yb: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        velocity = tree_map(lambda v, g: MOMENTUM * v + g, velocity, grads)
        params = tree_map(lambda p, v: p - LEARNING_RATE * v, params, velocity)
        return params, velocity, loss

    # Donating params and velocity lets XLA update them in place, as its best users would.
    step_jit = jax.jit(train_step, donate_argnums=(0, 1))
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in make_weights(spec)]
    velocity = tree_map(jnp.zeros_like, params)
    batches = [(jax.device_put(xb), jax.device_put(yb.astype("int32")))
               for xb, yb in make_batches(spec, X, y)]
    next_batch = cycling(batches)
    state = {"params": params, "velocity": velocity}

    def step() -> Any:
        xb, yb = next_batch()
        state["params"], state["velocity"], loss = step_jit(state["params"], state["velocity"], xb, yb)
        return loss

    def sync() -> None:
        jax.block_until_ready(state["params"])

    loss0 = float(step())  # the first call compiles
    sync()
    info = {"version": jax.__version__, "jaxlib": jaxlib.__version__,
            "device": str(jax.devices()[0]), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "schedulable_cpus": len(os.sched_getaffinity(0))}
    return Contender(run=step, unit_samples=spec.batch, warm=step, loss0=loss0,
                     loss=float, info=info, sync=sync)


def blas_info(threads: int) -> tuple[dict[str, Any], Any]:
    """Limit NumPy's BLAS to `threads` and describe the library and kernel OpenBLAS chose.
    Returns the info and the threadpoolctl limiter (kept alive for the worker's lifetime)."""
    import numpy as np

    info: dict[str, Any] = {"numpy": np.__version__,
                            "unset": [k for k in OPENBLAS_OVERRIDES if k not in os.environ]}
    try:
        from threadpoolctl import __version__ as tpc_version
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        info["threadpoolctl"] = None
        info["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS")
        return info, None
    limiter = threadpool_limits(limits=threads)
    info["threadpoolctl"] = tpc_version
    info["pools"] = [{key: pool.get(key) for key in ("internal_api", "prefix", "version",
                                                     "architecture", "num_threads")}
                     for pool in threadpool_info()]
    return info, limiter


def build_numpy(spec: NetworkSpec, threads: int) -> Contender:
    import numpy as np

    info, limiter = blas_info(threads)
    X, y = make_data(spec)
    init = make_weights(spec)
    sizes = spec.sizes
    n_layers = len(sizes) - 1
    B = spec.batch

    # One flat buffer for the parameters, one for the gradients, one for the momentum; the layers'
    # W and b are views, so the update is three passes over one array.
    shapes = [((fan_in, fan_out), (fan_out,)) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    total = sum(a * b + b for (a, b), _ in shapes)
    params = np.empty(total, dtype=np.float32)
    grads = np.zeros_like(params)
    velocity = np.zeros_like(params)
    scratch = np.empty_like(params)

    def views(flat: Any) -> list[tuple[Any, Any]]:
        out, offset = [], 0
        for (fan_in, fan_out), _ in shapes:
            W = flat[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            b = flat[offset:offset + fan_out]
            offset += fan_out
            out.append((W, b))
        return out

    P, G = views(params), views(grads)
    for (W, b), (W0, b0) in zip(P, init):
        W[...] = W0
        b[...] = b0
    acts = [np.empty((B, n), dtype=np.float32) for n in sizes[1:]]        # activated; last: logits
    deltas = [np.empty((B, n), dtype=np.float32) for n in sizes[1:-1]]    # dLoss/dU of hidden layers
    masks = [np.empty((B, n), dtype=bool) for n in sizes[1:-1]]              # relu's derivative
    slopes = [np.empty((B, n), dtype=np.float32) for n in sizes[1:-1]]      # the others'

    # In place, from the activated values a = f(z): relu's derivative is the mask a > 0,
    # tanh's 1 - a^2, sigmoid's a (1 - a).
    def activate(z: Any) -> None:
        if spec.activation == "relu":
            np.maximum(z, 0, out=z)
        elif spec.activation == "tanh":
            np.tanh(z, out=z)
        else:
            np.negative(z, out=z)
            np.exp(z, out=z)
            z += 1
            np.reciprocal(z, out=z)

    def multiply_by_derivative(d: Any, a: Any, layer: int) -> None:
        if spec.activation == "relu":
            np.greater(a, 0, out=masks[layer])
            np.multiply(d, masks[layer], out=d)
            return
        slope = slopes[layer]
        if spec.activation == "tanh":
            np.multiply(a, a, out=slope)
            np.subtract(1, slope, out=slope)
        else:
            np.subtract(1, a, out=slope)
            slope *= a
        d *= slope
    row_stat = np.empty((B, 1), dtype=np.float32)
    rows = np.arange(B)
    batches = make_batches(spec, X, y)
    next_batch = cycling(batches)

    def step() -> float:
        xb, yb = next_batch()
        a = xb
        for l in range(n_layers):
            z = acts[l]
            np.matmul(a, P[l][0], out=z)
            z += P[l][1]
            if l < n_layers - 1:
                activate(z)
            a = z
        # Softmax cross-entropy (mean): shift by the row max, loss from log-sum-exp, then the
        # logits buffer becomes p and then the output error (p - onehot) / B.
        logits = acts[-1]
        np.max(logits, axis=1, keepdims=True, out=row_stat)
        logits -= row_stat
        picked = logits[rows, yb]
        np.exp(logits, out=logits)
        np.sum(logits, axis=1, keepdims=True, out=row_stat)
        loss = float(np.mean(np.log(row_stat[:, 0]) - picked))
        logits /= row_stat
        logits[rows, yb] -= 1.0
        logits *= np.float32(1.0 / B)
        d = logits
        for l in range(n_layers - 1, -1, -1):
            a_prev = xb if l == 0 else acts[l - 1]
            np.matmul(a_prev.T, d, out=G[l][0])
            np.sum(d, axis=0, out=G[l][1])
            if l:
                d_prev = deltas[l - 1]
                np.matmul(d, P[l][0].T, out=d_prev)
                multiply_by_derivative(d_prev, a_prev, l - 1)
                d = d_prev
        # SGD with momentum, PyTorch's form: v = mu v + g; p -= lr v.
        np.multiply(velocity, np.float32(MOMENTUM), out=velocity)
        np.add(velocity, grads, out=velocity)
        np.multiply(velocity, np.float32(LEARNING_RATE), out=scratch)
        np.subtract(params, scratch, out=params)
        return loss

    loss0 = step()
    info["limiter"] = limiter is not None
    return Contender(run=step, unit_samples=B, warm=step, loss0=loss0, loss=float, info=info)


def build_sklearn(spec: NetworkSpec, threads: int) -> Contender:
    import warnings

    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore")
    info, limiter = blas_info(threads)
    info["version"] = sklearn.__version__
    X, y = make_data(spec)
    B = spec.batch
    classes = np.arange(spec.sizes[-1])
    activation = {"sigmoid": "logistic"}.get(spec.activation, spec.activation)
    model = MLPClassifier(hidden_layer_sizes=spec.sizes[1:-1], activation=activation, solver="sgd",
                          momentum=MOMENTUM, nesterovs_momentum=False,
                          learning_rate_init=LEARNING_RATE, learning_rate="constant", alpha=0.0,
                          batch_size=B, shuffle=True, random_state=0)
    # partial_fit creates the weights on its first call; then they are overwritten with the shared
    # starting point (in place, keeping sklearn's own arrays) before the loss cross-check.
    model.partial_fit(X[:B], y[:B], classes=classes)
    for W, b, (W0, b0) in zip(model.coefs_, model.intercepts_, make_weights(spec)):
        W[...] = W0
        b[...] = b0
    proba = model.predict_proba(X[:B])
    loss0 = float(-np.mean(np.log(np.clip(proba[np.arange(B), y[:B]], 1e-30, None))))
    info["coef_dtype"] = str(model.coefs_[0].dtype)

    def one_pass() -> Any:
        # One partial_fit call is one pass over all the batches (shuffled, batch_size=B), so its
        # per-call cost (validation, label binarizing, bookkeeping) is paid once per pass.
        model.partial_fit(X, y)
        return model

    def warm() -> Any:
        model.partial_fit(X[:B], y[:B])
        return model

    info["limiter"] = limiter is not None
    return Contender(run=one_pass, unit_samples=spec.n_samples, warm=warm, loss0=loss0,
                     loss=lambda m: float(m.loss_), info=info, per_call_probe=warm)


BUILDERS: dict[str, Callable[[NetworkSpec, int], Contender]] = {
    "bp_step": lambda spec, threads: build_bp(spec, threads, per_epoch=False),
    "bp_epoch": lambda spec, threads: build_bp(spec, threads, per_epoch=True),
    "torch": build_torch,
    "jax": build_jax,
    "numpy": build_numpy,
    "sklearn": build_sklearn,
}


# -- the worker: one contender, one network, one timed run -------------------------------------


def measure(c: Contender, min_time: float, warmup_time: float,
            events: Optional[Callable[[], int]] = None) -> dict[str, Any]:
    """Warms up, then times runs for min_time; `events`, if given, is a counter read around the
    timed runs (backprop's late-thread pauses)."""
    clock = time.perf_counter
    # Warm-up: at least two short runs and warmup_time seconds (the build already ran one step).
    start, warm_calls = clock(), 0
    while warm_calls < 2 or clock() - start < warmup_time:
        c.warm()
        c.sync()
        warm_calls += 1
    warm_time = (clock() - start) / warm_calls
    # Sync every ~50 ms rather than every step: JAX may queue steps, as in real training. (A
    # pass-style unit is many steps already.)
    chunk = max(1, int(0.05 / max(warm_time, 1e-9))) if c.warm is c.run else 1
    events_before = events() if events is not None else 0
    units, start, cpu_start = 0, clock(), os.times()
    while True:
        for _ in range(chunk):
            last = c.run()
        c.sync()
        units += chunk
        elapsed = clock() - start
        if elapsed >= min_time:
            break
    cpu_end = os.times()
    # CPU seconds per wall second: about the thread count when the worker had its cores, less
    # when other jobs on the machine took them (spinning threads count as busy, too).
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    samples = units * c.unit_samples
    result = {"samples_per_s": samples / elapsed, "elapsed_s": elapsed, "samples": samples,
              "calls": units, "warm_calls": warm_calls, "cpu_per_wall": cpu / elapsed,
              "loss_last": c.loss(last)}
    if events is not None:
        result["timed_events"] = events() - events_before
    return result


def probe(name: str) -> dict[str, Any]:
    """Is this contender installed here, and which versions? (No training.)"""
    modules = {"bp_step": ["backprop"], "bp_epoch": ["backprop"], "torch": ["torch"],
               "jax": ["jax", "jaxlib"], "numpy": ["numpy"], "sklearn": ["sklearn", "numpy"]}[name]
    versions = {}
    for module in modules:
        try:
            imported = __import__(module)
        except ImportError as error:
            return {"available": False, "reason": f"{module} is not installed ({error})"}
        versions[module] = getattr(imported, "__version__", "?")
    return {"available": True, "versions": versions}


def worker(args: argparse.Namespace) -> None:
    name = args.worker
    if args.probe:
        print(json.dumps(probe(name)))
        return
    spec = dataclasses.replace(NETWORKS[args.network_spec], activation=args.activation,
                               data=args.data, ours_ieee=args.ieee)
    if name == "jax" and args.threads < (os.cpu_count() or 1):
        # XLA's CPU pool sizes itself from the schedulable CPUs; pinning is its thread knob.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
    contender = BUILDERS[name](spec, args.threads)
    pauses = None
    if name in OURS:
        import backprop as bp

        pauses = getattr(bp._core, "late_thread_pauses", None)  # (a build before the rule has none)
    result = measure(contender, args.min_time, args.warmup, pauses)
    probe_call = contender.per_call_probe
    if probe_call is not None:
        # sklearn: the time of a one-batch partial_fit against a batch's share of a full pass
        # gives the fixed cost of each partial_fit call.
        clock, calls, start = time.perf_counter, 0, time.perf_counter()
        while calls < 3 or clock() - start < min(0.3, args.min_time):
            probe_call()
            calls += 1
        result["one_batch_call_s"] = (clock() - start) / calls
        result["batch_in_pass_s"] = spec.batch / result["samples_per_s"]
    result.update({"contender": name, "network": spec.name, "loss0": contender.loss0,
                   "info": contender.info, "pid": os.getpid()})
    if pauses is not None:
        # Each pause ran the steps after it on one thread (another process held a core).
        result["late_thread_pauses"] = pauses()
    print(json.dumps(result))


# -- the parent: probes, FMA peak, alternating rounds, tables ----------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "fma", "avx512f") if f in flags]
    except OSError:
        pass
    return []


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def worker_env(name: str, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONHASHSEED"] = "0"
    if name in BLAS_CONTENDERS:
        for key in OPENBLAS_OVERRIDES:
            env.pop(key, None)
        env["OPENBLAS_NUM_THREADS"] = str(threads)  # threadpoolctl limits it too, when installed
    if name == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1").strip()
    return env


def run_worker(name: str, argv: list[str], threads: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", name,
               "--threads", str(threads)] + argv
    try:
        done = subprocess.run(command, env=worker_env(name, threads), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def find_bench() -> Optional[str]:
    beside = Path(sys.executable).parent / "backprop-bench"
    if beside.exists():
        return str(beside)
    return shutil.which("backprop-bench")


PEAK_LINE = " peak (the denominator of every"


def parse_peak(text: str) -> Optional[tuple[float, str]]:
    """The float32 FMA peak at all threads, and its vector path, from backprop-bench's line
    "<path> peak (the denominator of every %peak ...)", the peak of the path its GEMM runs; it
    reads "f32 116.6 (1 thr), 227.7 (2 thr); ..." or, on one thread, "f32 117.2, f64 ..."."""
    for line in text.splitlines():
        if PEAK_LINE not in line:
            continue
        path = line.strip().split(" ", 1)[0]
        match = re.search(r"f32\s+([\d.]+)(?:\s*\(1 thr\),\s*([\d.]+)\s*\(\d+ thr\))?", line)
        if match:
            return float(match.group(2) or match.group(1)), path
    return None


def measure_peak(threads: int) -> tuple[Optional[float], str]:
    bench = find_bench()
    if bench is None:
        return None, "backprop-bench not found (beside sys.executable or on PATH); give --peak"
    command = [bench, "--quick", "--threads", str(threads), "--dtype", "f32"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env=worker_env("bp_step", threads))
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(command)} timed out"
    parsed = parse_peak(done.stdout)
    if parsed is None:
        return None, f"no '<path>{PEAK_LINE}' line in the output of {' '.join(command)}"
    peak, path = parsed
    return peak, f"{path} FMA peak f32, {threads} threads, from `{' '.join(command)}`"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def summarize(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def ratio_per_round(ours: list[Optional[float]], theirs: list[Optional[float]]) -> list[float]:
    return [a / b for a, b in zip(ours, theirs) if a is not None and b is not None]


def describe_versions(probes: dict[str, dict[str, Any]]) -> str:
    seen: dict[str, str] = {"python": platform.python_version()}
    for result in probes.values():
        for module, version in result.get("versions", {}).items():
            seen[module] = version
    return ", ".join(f"{module} {version}" for module, version in seen.items())


def describe_worker_info(name: str, info: dict[str, Any]) -> str:
    if name in OURS:
        arithmetic = "subnormals flushed to zero" if info.get("flush_denormals") else "IEEE"
        return (f"backprop threads {info.get('threads')} (OMP_NUM_THREADS={info.get('OMP_NUM_THREADS')}), "
                f"GEMM path {info.get('gemm_isa')}, {arithmetic}")
    if name == "torch":
        return f"torch threads {info.get('threads')}, MKL {info.get('mkl')}, oneDNN {info.get('mkldnn')}"
    if name == "jax":
        flags = info.get("XLA_FLAGS") or "<unset>"
        return (f"jax on {info.get('device')}, {info.get('schedulable_cpus')} schedulable CPUs "
                f"(XLA sizes its pool from them), XLA_FLAGS={flags}, JAX_PLATFORMS=cpu")
    pools = info.get("pools")
    if pools is None:
        blas = f"no threadpoolctl: OPENBLAS_NUM_THREADS={info.get('OPENBLAS_NUM_THREADS')}"
    else:
        blas = "; ".join(f"{p['prefix']} {p['version']} kernel {p.get('architecture')} "
                         f"threads {p['num_threads']}" for p in pools if p["internal_api"] == "openblas")
        omp = [p for p in pools if p["internal_api"] == "openmp"]
        if omp:
            blas += f"; OpenMP pools at {', '.join(str(p['num_threads']) for p in omp)} threads"
    extra = f", coefs {info['coef_dtype']}" if "coef_dtype" in info else ""
    return f"{name}: {blas} ({' and '.join(OPENBLAS_OVERRIDES)} unset in this worker){extra}"


def start_busy_processes(count: int, started: list[subprocess.Popen]) -> None:
    """Adds to `started` (one at a time, for the caller to stop) processes that each keep a CPU
    busy, as other users' jobs do on a shared machine."""
    for _ in range(count):
        started.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))


def run_rounds(args: argparse.Namespace, networks: list[NetworkSpec], contenders: list[str],
               per_round_argv: list[str], threads: int,
               runs: dict[str, dict[str, list[Optional[dict[str, Any]]]]],
               worker_notes: dict[str, str], round_loads: list[str]) -> None:
    """Every contender once per network and round, each in a fresh process; fills runs."""
    for round_index in range(args.rounds):
        round_loads.append(load_text())
        print(f"round {round_index + 1}/{args.rounds} ({round_loads[-1]})", flush=True)
        for spec in networks:
            timeout = 1800 if spec.name == "wide" else 300
            for name in contenders:
                result = run_worker(name, per_round_argv + ["--network-spec", spec.name],
                                    threads, timeout)
                if "error" in result:
                    print(f"  {spec.name:6s} {TITLES[name]:22s} FAILED: {result['error']}", flush=True)
                    runs[spec.name][name].append(None)
                    continue
                runs[spec.name][name].append(result)
                worker_notes.setdefault(name, describe_worker_info(name, result["info"]))
                pauses = result.get("late_thread_pauses")
                paused = ("" if pauses is None else
                          f", {pauses} late-thread pauses, {result.get('timed_events', '?')} "
                          "in the timed runs")
                print(f"  {spec.name:6s} {TITLES[name]:22s} {fmt_rate(result['samples_per_s']):>10s} "
                      f"samples/s  ({result['calls']} calls in {result['elapsed_s']:.2f} s, "
                      f"{result['cpu_per_wall']:.2f} CPU s per s{paused})", flush=True)


def parent(args: argparse.Namespace) -> int:
    threads = args.threads
    networks = [dataclasses.replace(NETWORKS[name], activation=args.activation, data=args.data,
                                    ours_ieee=args.ieee)
                for name in args.networks]
    started = datetime.now(timezone.utc)
    load_before = load_text()
    print(f"bench/peers.py  {started:%Y-%m-%d %H:%M} UTC  {load_before} (before)", flush=True)

    probes: dict[str, dict[str, Any]] = {}
    contenders = []
    for name in CONTENDERS:
        result = run_worker(name, ["--probe"], threads, timeout=120)
        probes[name] = result
        if result.get("available"):
            contenders.append(name)
        else:
            print(f"note: skipping {TITLES[name]}: {result.get('reason') or result.get('error')}")
    if not any(name in contenders for name in OURS):
        print("error: backprop is not importable by this Python; nothing to compare")
        return 1

    peaks_measured: list[float] = []
    if args.peak is not None:
        peak, peak_source = args.peak, f"--peak {args.peak} (given)"
    else:
        peak, peak_source = measure_peak(threads)
        if peak is None:
            print(f"note: {peak_source}; no FLOP bound")
        else:
            peaks_measured.append(peak)
    print(f"machine: {cpu_model()} | {os.cpu_count()} logical CPUs | flags {' '.join(cpu_flags())} | "
          f"threads {threads} for every contender")
    print(f"versions: {describe_versions(probes)}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '<unset>')} in the parent; "
          f"unset in the {' and '.join(BLAS_CONTENDERS)} workers only")
    if peak is not None:
        again = "; measured again after the rounds" if peaks_measured else ""
        print(f"FMA peak: {peak:.1f} GFLOP/s ({peak_source}){again}")
    print(f"method: {args.rounds} round(s), each running every contender once per network in "
          f"a fresh process, in the order {' '.join(contenders)}; warm-up >= {args.warmup} s, "
          f"timed run >= {args.min_time} s; median of rounds [min - max]; ratios round by round, "
          f"then the median", flush=True)

    per_round_argv = ["--min-time", str(args.min_time), "--warmup", str(args.warmup),
                      "--activation", args.activation, "--data", args.data]
    if args.ieee:
        per_round_argv.append("--ieee")
    runs: dict[str, dict[str, list[Optional[dict[str, Any]]]]] = {
        spec.name: {name: [] for name in contenders} for spec in networks}
    worker_notes: dict[str, str] = {}
    round_loads: list[str] = []
    if args.busy:
        print(f"busy: {args.busy} other process(es) spin on the CPUs during the rounds, as other "
              f"jobs would on a shared machine", flush=True)
    busy: list[subprocess.Popen] = []
    try:
        start_busy_processes(args.busy, busy)
        run_rounds(args, networks, contenders, per_round_argv, threads, runs, worker_notes,
                   round_loads)
    finally:
        for process in busy:
            process.kill()
            process.wait()

    if peaks_measured:
        # The FMA peak is a property of the hardware that other jobs on a shared machine can only
        # lower, so it is measured again after the rounds and the larger value is the bound.
        again, _ = measure_peak(threads)
        if again is not None:
            peaks_measured.append(again)
            peak = max(peaks_measured)
        print(f"FMA peak measured before and after the rounds: "
              f"{', '.join(f'{value:.1f}' for value in peaks_measured)} GFLOP/s; the bound uses {peak:.1f}")
    print()
    print("threads and libraries as each worker reported them:")
    for name in contenders:
        if name in worker_notes:
            print(f"  {TITLES[name]}: {worker_notes[name]}")
    report: dict[str, Any] = {
        "date_utc": started.isoformat(timespec="seconds"), "machine": cpu_model(),
        "logical_cpus": os.cpu_count(), "threads": threads, "peak_gflops": peak,
        "peak_source": peak_source, "peaks_measured": peaks_measured, "versions": describe_versions(probes),
        "rounds": args.rounds, "min_time_s": args.min_time, "warmup_s": args.warmup,
        "load_before": load_before, "round_loads": round_loads, "workers": worker_notes,
        "busy_processes": args.busy,
        "networks": {},
    }
    for spec in networks:
        print_table(spec, contenders, runs[spec.name], peak, threads, report)
    load_after = load_text()
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    print(f"\ntotal {elapsed:.0f} s; {load_after} (after)")
    report["load_after"] = load_after
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0


def print_table(spec: NetworkSpec, contenders: list[str], runs: dict[str, list[Optional[dict[str, Any]]]],
                peak: Optional[float], threads: int, report: dict[str, Any]) -> None:
    bound = peak * 1e9 / spec.flops_per_sample if peak else None
    print()
    print(f"{spec.name}  {spec.label}  {spec.activation}  {spec.data} inputs  batch {spec.batch}  {spec.weights:,} weights  "
          f"{spec.flops_per_sample / 1e6:.3f} MFLOP/sample"
          + (f"  bound {bound:,.0f} samples/s" if bound else ""))
    rates = {name: [r["samples_per_s"] if r else None for r in runs[name]] for name in contenders}
    ours = [name for name in OURS if name in contenders]
    header = f"  {'contender':22s} {'samples/s':>10s}  {'[min - max]':>21s}"
    header += "".join(f" {short:>10s}" for short in (["step/this"] if "bp_step" in ours else [])
                      + (["epoch/this"] if "bp_epoch" in ours else []))
    header += f" {'%bound':>7s} {'CPU/s':>5s} {'short':>5s}  {'loss0':>7s}  loss last"
    print(header)
    table: dict[str, Any] = {}
    loss0s = {}
    for name in contenders:
        values = [v for v in rates[name] if v is not None]
        if not values:
            print(f"  {TITLES[name]:22s} {'failed':>10s}")
            continue
        median, low, high = summarize(values)
        entry: dict[str, Any] = {"median": median, "min": low, "max": high, "rounds": rates[name]}
        line = f"  {TITLES[name]:22s} {fmt_rate(median):>10s}  [{fmt_rate(low):>9s} - {fmt_rate(high):>9s}]"
        for our in ours:
            ratios = ratio_per_round(rates[our], rates[name])
            ratio = statistics.median(ratios) if ratios else None
            entry[f"{our}_over_this"] = ratio
            line += f" {ratio:>9.2f}x" if ratio is not None else f" {'-':>10s}"
        if bound:
            entry["fraction_of_bound"] = median / bound
            line += f" {100 * median / bound:>6.1f}%"
        else:
            line += f" {'-':>7s}"
        finished = [r for r in runs[name] if r]
        cpu = statistics.median(r["cpu_per_wall"] for r in finished)
        # Runs that got under 3/4 of their threads' CPU time: another job held a core. Spinning
        # thread pools can lose far more than that share when it happens.
        short = sum(r["cpu_per_wall"] < 0.75 * threads for r in finished)
        entry["cpu_per_wall"] = cpu
        entry["cpu_short_runs"] = short
        last_run = finished[-1]
        loss0s[name] = last_run["loss0"]
        line += f" {cpu:5.2f} {short:2d}/{len(finished):<2d}  {last_run['loss0']:7.4f}  {last_run['loss_last']:.4f}"
        if "one_batch_call_s" in last_run:
            entry["one_batch_call_s"] = statistics.median(r["one_batch_call_s"] for r in finished)
            entry["batch_in_pass_s"] = statistics.median(r["batch_in_pass_s"] for r in finished)
        print(line)
        table[name] = entry
    summary: dict[str, Any] = {}
    peers = [name for name in table if name not in OURS]
    if peers and any(name in table for name in ours):
        best = max(peers, key=lambda name: table[name]["median"])
        parts = [f"{TITLES[our]} {table[best][f'{our}_over_this']:.2f}x" for our in ours
                 if table[best].get(f"{our}_over_this") is not None]
        print(f"  best peer: {TITLES[best]}; ours/best: {', '.join(parts)}")
        summary["best_peer"] = best
        # On a noisy machine the fastest median and the lowest round-by-round ratio can belong
        # to different peers: name the one we do worst against too.
        for our in ours:
            ratios = {name: table[name].get(f"{our}_over_this") for name in peers}
            ratios = {name: value for name, value in ratios.items() if value is not None}
            if ratios:
                hardest = min(ratios, key=ratios.__getitem__)
                print(f"  lowest ratio for {TITLES[our]}: {ratios[hardest]:.2f}x, against {TITLES[hardest]}")
                summary[f"{our}_lowest_ratio"] = {"peer": hardest, "ratio": ratios[hardest]}
    if "sklearn" in table and "one_batch_call_s" in table["sklearn"]:
        entry = table["sklearn"]
        print(f"  sklearn: timed as one partial_fit call per pass of {spec.n_batches} batches, "
              f"{1e3 * entry['batch_in_pass_s']:.2f} ms a batch; a partial_fit call on one batch "
              f"takes {1e3 * entry['one_batch_call_s']:.2f} ms (medians): the difference is its per-call cost")
    if loss0s:
        reference = loss0s.get("numpy", next(iter(loss0s.values())))
        worst = max(abs(v - reference) for v in loss0s.values())
        verdict = "ok" if worst <= 1e-4 * max(1.0, abs(reference)) else "MISMATCH"
        print(f"  cross-check: loss of batch 0 at the shared starting weights, largest difference "
              f"from {'NumPy' if 'numpy' in loss0s else 'the first'} {worst:.2e} ({verdict})")
        summary["loss0_max_diff"] = worst
    report["networks"][spec.name] = {"sizes": spec.sizes, "batch": spec.batch,
                                     "flops_per_sample": spec.flops_per_sample,
                                     "bound_samples_per_s": bound, "contenders": table, **summary}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def network_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in NETWORKS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"networks are {', '.join(NETWORKS)}; got {text!r}")
    return names


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=None, help="alternating rounds (default 3)")
    parser.add_argument("--networks", type=network_list, default=None,
                        help=f"comma-separated, from {','.join(NETWORKS)} (default {','.join(DEFAULT_NETWORKS)})")
    parser.add_argument("--full", action="store_true", help="all networks, including the slow 'wide'")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                        help="threads for every contender (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="1 round, short timings (smoke test)")
    parser.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu",
                        help="of the hidden layers (default relu)")
    parser.add_argument("--data", choices=INPUT_DATA, default="normal",
                        help="inputs N(0, 1) (default) or pixels in [0, 1)")
    parser.add_argument("--ieee", action="store_true",
                        help="ours in IEEE arithmetic, not flushing subnormals to zero")
    parser.add_argument("--peak", type=float, default=None,
                        help="FMA peak in GFLOP/s (default: measured with backprop-bench --quick)")
    parser.add_argument("--busy", type=positive_int, default=0, metavar="N",
                        help="keep N other processes spinning on the CPUs during the rounds")
    parser.add_argument("--json", default=None, help="also save the results here")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per timed run (default 0.6)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (default 0.3)")
    parser.add_argument("--worker", choices=CONTENDERS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--network-spec", choices=list(NETWORKS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.min_time is None:
        args.min_time = 0.15 if args.quick else 0.6
    if args.warmup is None:
        args.warmup = 0.05 if args.quick else 0.3
    if args.worker:
        worker(args)
        return 0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.networks is None:
        args.networks = list(NETWORKS) if args.full else list(DEFAULT_NETWORKS)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
