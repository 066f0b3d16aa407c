"""Model files: save a Network (and optionally its optimizer) to a versioned .npz, and load it back.

A model file is an uncompressed .npz (a zip of .npy arrays, so a C++ reader needs no zlib) that
holds no pickled data. Its members:

    format              0-d unicode array, "backprop-model"
    version             0-d int64 array, FORMAT_VERSION
    architecture        0-d unicode array: JSON with everything needed to rebuild the Network:
                        layers [{fan_in, fan_out, activation, alpha, inputs, dropout}], output, loss,
                        reduction, dtype, init, init_scale, seed, n_params, shuffle_rng
    params              the flat parameter buffer: W_1 (fan_in x fan_out, row-major), b_1, W_2, ...
    optimizer           (only when saved with one) 0-d unicode array: JSON
                        {"class", "settings", "steps", "n_state"}
    optimizer_state_<i> (i < n_state) the optimizer's state buffers, laid out like params

The file is written to a temporary file in the target's folder, synced, and moved into place with
os.replace, so a crash or an error never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import operator
import os
import secrets
import stat
import zipfile
import zlib
from typing import Any, Mapping, Optional, Union, cast

import numpy as np

from . import optim
from ._arrays import FLOAT_DTYPES
from ._names import activation_alpha
from .layers import Dense
from .network import Network

FORMAT_NAME = "backprop-model"
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]

_REQUIRED_KEYS = ("format", "version", "architecture", "params")
_ZIP_MAGIC = b"PK\x03\x04"
# What numpy and zipfile raise on a damaged archive or member (RuntimeError and its
# NotImplementedError: a damaged header that reads as encryption or an unknown compression).
_CORRUPT_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, zlib.error)


# -- saving ------------------------------------------------------------------------------------


def save(net: Network, path: PathLike, *, optimizer: Optional[optim.Optimizer] = None) -> None:
    """Write `net` (and `optimizer`'s hyper-parameters, step count and state when given) to
    `path` as a model file. The path is used exactly as given: no '.npz' is appended.

    The write is atomic: on any error the temporary file is removed and an existing file at
    `path` is left as it was.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a backprop.Network; got {type(net).__name__}")
    target = _as_path(path)
    arrays = _model_arrays(net, optimizer)
    _write_atomically(target, arrays)


def _as_path(path: Any) -> str:
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}") from None


def _text(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.str_)


def _json_text(document: dict[str, Any]) -> np.ndarray:
    return _text(json.dumps(document, allow_nan=False, sort_keys=True))


def _model_arrays(net: Network, optimizer: Optional[optim.Optimizer]) -> dict[str, np.ndarray]:
    # load() rejects non-finite buffers, so refuse to write a file that could not be read back.
    if not np.isfinite(net.params).all():
        raise ValueError("the network's params contain NaN or Inf; not saving a model that "
                         "could not be loaded")
    arrays = {
        "format": _text(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "architecture": _json_text(_architecture(net)),
        "params": np.ascontiguousarray(net.params).copy(),
    }
    if optimizer is not None:
        description, states = _optimizer_record(net, optimizer)
        arrays["optimizer"] = _json_text(description)
        for i, state in enumerate(states):
            arrays[f"optimizer_state_{i}"] = np.ascontiguousarray(state).copy()
    return arrays


def _architecture(net: Network) -> dict[str, Any]:
    # inputs: the layers a layer reads (shortcut connections); null for the previous one.
    layers = [{"fan_in": layer.fan_in, "fan_out": layer.fan_out,
               "activation": layer.activation, "alpha": layer.resolved_alpha(),
               "inputs": getattr(layer, "inputs", None), "dropout": layer.dropout}
              for layer in net.layers]
    return {
        "layers": layers,
        "output": net.output,
        "loss": net.loss_name,
        "reduction": net.reduction,
        "dtype": str(net.dtype),
        "init": net.init,
        "init_scale": None if net.init_scale is None else float(net.init_scale),
        "seed": _json_seed(net.seed),
        "n_params": net.n_params,
        "shuffle_rng": _rng_state(net.shuffle_rng),
    }


def _json_seed(seed: Any) -> Any:
    """None, an int, or a list of ints: the seeds a JSON file can hold exactly."""
    if seed is None:
        return None
    try:
        return operator.index(seed)
    except TypeError:
        pass
    if isinstance(seed, (list, tuple)) and all(_is_int(item) for item in seed):
        return [operator.index(item) for item in seed]
    raise TypeError(f"the network's seed {seed!r} cannot be stored; "
                    "use None, an int or a list of ints")


def _is_int(value: Any) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return not isinstance(value, bool)


def _rng_state(rng: Any) -> Optional[Mapping[str, Any]]:
    """The shuffling generator's position (so a resumed fit shuffles as an unbroken one would);
    None for a generator other than numpy's default PCG64."""
    if not isinstance(rng, np.random.Generator):
        return None
    if not isinstance(rng.bit_generator, np.random.PCG64):
        return None
    return rng.bit_generator.state


def _optimizer_record(net: Network,
                      optimizer: optim.Optimizer) -> tuple[dict[str, Any], list[np.ndarray]]:
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError("optimizer must be a backprop.optim.Optimizer; "
                        f"got {type(optimizer).__name__}")
    name = type(optimizer).__name__
    if getattr(optim, name, None) is not type(optimizer):
        raise TypeError(f"only the optimizers of backprop.optim can be saved; got {name}")
    if optimizer._params is not None and optimizer._params is not net.params:
        raise ValueError("the optimizer holds state for another network's parameters")
    # What the next step would use: the buffers its settings need (none if it never stepped).
    states = [] if optimizer._params is None else optimizer.state_for(net.params)
    for i, state in enumerate(states):
        if state.shape != net.params.shape or state.dtype != net.params.dtype:
            raise ValueError(f"optimizer state {i} does not match the network's parameters")
        if not np.isfinite(state).all():
            raise ValueError(f"optimizer state {i} contains NaN or Inf; not saving it")
    settings = {key: list(value) if isinstance(value, tuple) else value
                for key, value in optimizer._settings().items()}
    description = {"class": name, "settings": settings, "steps": int(optimizer.steps),
                   "n_state": len(states)}
    return description, states


def _write_atomically(target: str, arrays: dict[str, np.ndarray]) -> None:
    folder = os.path.dirname(target) or os.curdir
    temporary, handle = _create_temporary(folder, os.path.basename(target))
    try:
        with handle:
            _copy_mode(target, handle.fileno())
            # a file object: numpy appends no '.npz'. The ignore: mypy matches **arrays against
            # savez's keyword allow_pickle: bool (numpy >= 2.1) as well as its **kwds: ArrayLike.
            np.savez(handle, **arrays)  # type: ignore[arg-type, unused-ignore]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _sync_folder(folder)


def _create_temporary(folder: str, name: str) -> tuple[str, Any]:
    """A new file '.<name>.<random>.tmp' in `folder`, opened for writing.

    Created with os.open(..., 0o666) rather than mkstemp so the process umask applies, as it
    would to a file written directly (mkstemp's 0o600 would make every model owner-only).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # The name is shortened so the temporary's stays within file-name limits.
        temporary = os.path.join(folder, f".{name[:100]}.{secrets.token_hex(6)}.tmp")
        try:
            descriptor = os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
        try:
            return temporary, os.fdopen(descriptor, "wb")
        except BaseException:
            os.close(descriptor)
            os.unlink(temporary)
            raise
    raise FileExistsError(f"could not create a temporary file in {folder!r}")


def _copy_mode(target: str, descriptor: int) -> None:
    """Keep the permission bits of the file being replaced."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return
    if hasattr(os, "fchmod"):
        os.fchmod(descriptor, mode)


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- loading -----------------------------------------------------------------------------------


def load(path: PathLike, *, with_optimizer: bool = False) -> Any:
    """Read a model file written by `save`.

    Returns the Network, or (Network, Optimizer or None) when with_optimizer is true; the
    optimizer is bound to the returned network and continues from the saved step and state.
    A file that is not a model, is damaged, is of a newer version or is inconsistent raises
    ValueError naming the file; a missing file raises FileNotFoundError.
    """
    source = _as_path(path)
    reader = _Reader(source)
    with open(source, "rb") as handle:
        if handle.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise reader.error("is not a backprop model file (not an .npz archive)")
        handle.seek(0)
        try:
            archive = np.load(handle, allow_pickle=False)
        except _CORRUPT_ERRORS:
            raise reader.corrupt() from None
        with archive:
            reader.archive = archive
            net = reader.network()
            optimizer = reader.optimizer(net) if with_optimizer else None
    return (net, optimizer) if with_optimizer else net


class _Reader:
    """Reads and checks the members of one open model file; every error names the file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.archive: Any = None

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.source!r} {message}")

    def corrupt(self) -> ValueError:
        return self.error("is not a backprop model file (truncated or corrupt)")

    def array(self, key: str) -> np.ndarray:
        if key not in self.archive.files:
            raise self.error(f"is not a backprop model file: it has no {key!r} entry")
        try:
            return cast(np.ndarray, self.archive[key])  # archive is an NpzFile, typed Any
        except _CORRUPT_ERRORS:
            raise self.corrupt() from None

    def refuse_pickles(self) -> None:
        """Reject a file with any object array (numpy stores those as pickles), before reading."""
        try:
            names = self.archive.zip.namelist()
        except _CORRUPT_ERRORS:
            raise self.corrupt() from None
        for name in names:
            if name.endswith(".npy") and self._holds_objects(name):
                raise self.error(f"holds pickled data (entry {name[:-4]!r}), which is never loaded")

    def _holds_objects(self, name: str) -> bool:
        """Whether the member's .npy header declares Python objects (stored as a pickle)."""
        try:
            with self.archive.zip.open(name) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    _, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    _, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    return False  # left to numpy, which reads or rejects it below
        except _CORRUPT_ERRORS:
            raise self.corrupt() from None
        return bool(dtype.hasobject)

    def text(self, key: str) -> str:
        value = self.array(key)
        if value.dtype.kind != "U" or value.shape != ():
            raise self.error(f"has a malformed {key!r} entry (expected a text scalar, got "
                             f"dtype {value.dtype} and shape {value.shape})")
        return str(value[()])

    def json(self, key: str) -> dict[str, Any]:
        text = self.text(key)
        try:
            document = json.loads(text, parse_constant=_reject_constant)
        except ValueError as error:
            raise self.error(f"has an invalid {key!r} entry (not JSON: {error})") from None
        if not isinstance(document, dict):
            raise self.error(f"has an invalid {key!r} entry (expected a JSON object)")
        return document

    # -- the network ---------------------------------------------------------------------------
    def network(self) -> Network:
        self.refuse_pickles()
        self.check_format()
        architecture = self.json("architecture")
        net = self.build(architecture)
        net.params = self.buffer("params", net, "params")
        state = architecture.get("shuffle_rng")
        if state is not None:
            net.shuffle_rng = self.generator(state)
        return net

    def check_format(self) -> None:
        if self.text("format") != FORMAT_NAME:
            raise self.error(f"is not a backprop model file (its format is not {FORMAT_NAME!r})")
        version = self.array("version")
        if version.dtype.kind not in "iu" or version.shape != ():
            raise self.error(f"has a malformed 'version' entry (dtype {version.dtype}, "
                             f"shape {version.shape})")
        number = int(version[()])
        if number > FORMAT_VERSION:
            raise self.error(f"was written by a newer backprop (version {number}); this one reads "
                             f"up to {FORMAT_VERSION}")
        if number < 1:
            raise self.error(f"has an unknown format version {number}")
        for key in _REQUIRED_KEYS:
            if key not in self.archive.files:
                raise self.error(f"is not a backprop model file: it has no {key!r} entry")

    def build(self, architecture: dict[str, Any]) -> Network:
        def field(name: str, kinds: Any) -> Any:
            if name not in architecture:
                raise self.error(f"has an inconsistent architecture: {name!r} is missing")
            value = architecture[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise self.error(f"has an inconsistent architecture: {name!r} is {value!r}")
            return value

        specs = field("layers", list)
        output = field("output", str)
        dtype = field("dtype", str)
        if not specs:
            raise self.error("has an inconsistent architecture: it lists no layers")
        if dtype not in {str(d) for d in FLOAT_DTYPES}:
            raise self.error(f"has an inconsistent architecture: unknown dtype {dtype!r}")
        layers = [self.layer(i, spec) for i, spec in enumerate(specs)]
        if layers[-1].activation != output:
            raise self.error(f"has an inconsistent architecture: output {output!r} but the last "
                             f"layer applies {layers[-1].activation!r}")
        seed = field("seed", (int, list, type(None)))
        if isinstance(seed, list) and not all(_is_int(item) for item in seed):
            raise self.error(f"has an inconsistent architecture: 'seed' is {seed!r}")
        try:
            net = Network(layers, loss=field("loss", str), reduction=field("reduction", str),
                          init=field("init", str),
                          init_scale=field("init_scale", (int, float, type(None))),
                          dtype=dtype, seed=seed)
        except (TypeError, ValueError) as error:
            raise self.error(f"has an inconsistent architecture: {error}") from None
        if net.output != output:
            raise self.error(f"has an inconsistent architecture: output {output!r} rebuilt as "
                             f"{net.output!r}")
        n_params = field("n_params", int)
        if n_params != net.n_params:
            raise self.error(f"has an inconsistent architecture: it declares {n_params} parameters "
                             f"but its layers hold {net.n_params}")
        return net

    def layer(self, index: int, spec: Any) -> Dense:
        where = f"layers[{index}]"
        if not isinstance(spec, dict):
            raise self.error(f"has an inconsistent architecture: {where} is {spec!r}")
        missing = [key for key in ("fan_in", "fan_out", "activation", "alpha") if key not in spec]
        if missing:
            raise self.error(f"has an inconsistent architecture: {where} has no {missing[0]!r}")
        alpha = spec["alpha"]
        if not isinstance(spec["activation"], str):
            raise self.error(f"has an inconsistent architecture: {where} activation is "
                             f"{spec['activation']!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise self.error(f"has an inconsistent architecture: {where} alpha is {alpha!r}")
        inputs = spec.get("inputs")
        if inputs is not None and not (isinstance(inputs, list) and all(map(_is_int, inputs))):
            raise self.error(f"has an inconsistent architecture: {where} inputs is {inputs!r}")
        try:
            if isinstance(spec["fan_in"], bool) or isinstance(spec["fan_out"], bool):
                raise TypeError("fan_in and fan_out must be ints")
            # inputs is passed only when set, so files of plain chains need no shortcut support.
            extra: dict[str, Any] = {} if inputs is None else {"inputs": inputs}
            if spec.get("dropout", 0.0):  # absent in files written before dropout existed
                extra["dropout"] = spec["dropout"]
            layer = Dense(spec["fan_in"], spec["fan_out"], spec["activation"], **extra)
            assert layer.activation is not None  # a str activation was checked above
            # A default alpha is left implicit, so the rebuilt layer reads as the original did.
            if layer.activation != "softmax" and alpha != activation_alpha(layer.activation, None):
                layer.alpha = activation_alpha(layer.activation, alpha, f"{where} alpha")
        except (TypeError, ValueError) as error:
            raise self.error(f"has an inconsistent architecture: {where}: {error}") from None
        if layer.resolved_alpha() != alpha:
            raise self.error(f"has an inconsistent architecture: {where} alpha is {alpha!r}")
        return layer

    def buffer(self, key: str, net: Network, what: str) -> np.ndarray:
        """A member laid out like net.params: 1-D, net.n_params long, net's dtype, finite."""
        value = self.array(key)
        if value.dtype.kind != "f" or value.dtype.itemsize != net.dtype.itemsize:
            raise self.error(f"has {what} of dtype {value.dtype}; "
                             f"its architecture says {net.dtype}")
        if value.shape != (net.n_params,):
            raise self.error(f"has {what} of shape {value.shape}; its architecture implies "
                             f"({net.n_params},)")
        value = value.astype(net.dtype, copy=False)  # only the byte order can differ
        if not np.isfinite(value).all():
            raise self.error(f"has {what} containing NaN or Inf")
        return value

    def generator(self, state: Any) -> np.random.Generator:
        try:
            bit_generator = np.random.PCG64()
            bit_generator.state = state
        except (TypeError, ValueError, KeyError) as error:
            raise self.error(f"has an inconsistent architecture: shuffle_rng: {error}") from None
        return np.random.Generator(bit_generator)

    # -- the optimizer -------------------------------------------------------------------------
    def optimizer(self, net: Network) -> Optional[optim.Optimizer]:
        if "optimizer" not in self.archive.files:
            return None
        record = self.json("optimizer")
        name = record.get("class")
        settings = record.get("settings")
        # JSON values, checked below.
        steps: Any = record.get("steps")
        n_state: Any = record.get("n_state")
        kind = getattr(optim, name, None) if isinstance(name, str) else None
        if not (isinstance(kind, type) and issubclass(kind, optim.Optimizer)
                and kind is not optim.Optimizer):
            raise self.error(f"has an unknown optimizer {name!r}")
        if not isinstance(settings, dict):
            raise self.error(f"has an invalid optimizer record: settings is {settings!r}")
        for count, label in ((steps, "steps"), (n_state, "n_state")):
            if not _is_int(count) or count < 0:
                raise self.error(f"has an invalid optimizer record: {label} is {count!r}")
        arguments: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                                     for key, value in settings.items()}
        try:
            optimizer = kind(**arguments)
        except (TypeError, ValueError) as error:
            raise self.error(f"has invalid {name} settings: {error}") from None
        states = optimizer.state_for(net.params)
        if n_state != len(states) and (n_state, steps) != (0, 0):
            raise self.error(f"has {n_state} optimizer state buffers; {name} keeps {len(states)}")
        for i in range(n_state):
            states[i][...] = self.buffer(f"optimizer_state_{i}", net, f"optimizer state {i}")
        optimizer.steps = steps
        return optimizer


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid value")


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]
