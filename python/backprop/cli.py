"""The `backprop` command (also `python -m backprop`): train, predict, info, demo and bench."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from typing import Any, NoReturn, Optional, Sequence

# The model file holds only the network; what the command line adds (class names, the target
# column) goes in a JSON file beside it, named after it.
SIDECAR_SUFFIX = ".classes.json"
_SIDECAR_FORMAT = "backprop-cli-labels"
_SIDECAR_VERSION = 1

# Per optimizer: its class in backprop.optim and the settings the command line gives it.
_OPTIMIZERS = {
    "sgd": ("SGD", {"momentum": 0.9}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
    "rprop": ("Rprop", {}),
    "quickprop": ("Quickprop", {}),
    "lbfgs": ("LBFGS", {}),
    "lm": ("LevenbergMarquardt", {}),
}
_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")

_TRAIN_DESCRIPTION = """\
Train a fully connected network on a data file and save it.

DATA is a CSV file (optionally gzipped), a .npy file (one 2-D array of numbers) or a .npz file
(arrays X and y); the kind is read from the file's first bytes. A CSV file has a header row
when its first row holds a field that is not a number above numbers, or no number at all.
The target is the last column unless --target names another (a header name, or an index;
negative counts from the end). Every other column is a feature and must hold numbers; features
are used as they are, so put them on similar scales first (e.g. pixels 0..16 divided by 16).

The task follows from the target unless --task says: text labels, or integers with few distinct
values (at most 100, and at least 3 rows per value on average, or just two values), make
classification (softmax and cross-entropy, the sorted labels numbered 0, 1, ...); other numbers
make regression (identity output and squared error). The model file holds the network; the
class names and the target column go beside it in MODEL.classes.json, which predict reads."""

_PREDICT_DESCRIPTION = """\
Print the predictions of a saved model for each row of DATA (a CSV, .npy or .npz file, as for
train), one per line: class names for a model trained by `backprop train` (from
MODEL.classes.json), class ids for other classifiers, values for regression. DATA must have as
many columns as the model has inputs, or one more: then the target column is left out (the one
the model was trained on, else the last) and a note says which; --target chooses it."""


class _UsageError(Exception):
    """Bad input from the command line: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input on one line (no usage block) and points at --help."""

    def error(self, message: str) -> "NoReturn":
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128,64; got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 128,64; got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backprop", description="Train fully connected networks by backpropagation.")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{train,predict,info,demo,bench}", parser_class=_Parser)
    _add_train(commands)
    _add_predict(commands)
    _add_info(commands)

    demo = commands.add_parser("demo", help="train on the bundled digits and report held-out accuracy",
                               description="Train a network on the bundled handwritten digits "
                                           "(UCI, CC BY 4.0) and print the held-out accuracy.")
    demo.add_argument("--hidden", type=_hidden_sizes, default=(128,), help="hidden layer sizes, e.g. 128,64 (default 128)")
    demo.add_argument("--epochs", type=_positive_int, default=40, help="passes over the data (default 40)")
    demo.add_argument("--batch-size", type=_positive_int, default=32, help="samples per step (default 32)")
    demo.add_argument("--lr", type=_positive_float, default=0.05, help="SGD learning rate (default 0.05)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the weights, split and shuffles (default 0)")
    demo.add_argument("--threads", type=_positive_int, default=None, help="native threads (default: OMP_NUM_THREADS or all cores)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar, only the result")

    bench = commands.add_parser("bench", help="run the native benchmark (backprop-bench)",
                                description="Run backprop-bench: GEMM GFLOP/s against the FMA peak "
                                            "and training samples/s. Arguments after -- go to it.")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for backprop-bench (try -- --help)")
    return parser


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", help="train a network on a CSV, .npy or .npz file and save it",
                                description=_TRAIN_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("data", metavar="DATA", help="the data file: CSV, .npy or .npz")
    train.add_argument("--target", metavar="COLUMN", default=None,
                       help="the target column: a header name or an index (default: the last column)")
    train.add_argument("--task", choices=("classification", "regression"), default=None,
                       help="override the task chosen from the target")
    train.add_argument("--hidden", type=_hidden_sizes, metavar="SIZES", default=(128, 64),
                       help="hidden layer sizes, e.g. 128,64 (default 128,64)")
    train.add_argument("--activation", choices=_ACTIVATIONS, default="relu", metavar="NAME",
                       help=f"hidden activation: {', '.join(_ACTIVATIONS)} (default relu)")
    train.add_argument("--epochs", type=_positive_int, metavar="N", default=20, help="passes over the data (default 20)")
    train.add_argument("--batch-size", type=_positive_int, metavar="N", default=64, help="samples per step (default 64)")
    train.add_argument("--optimizer", choices=tuple(_OPTIMIZERS), default="adam", metavar="NAME",
                       help=f"{', '.join(_OPTIMIZERS)} (default adam; sgd has momentum 0.9; "
                            "lbfgs and lm (Levenberg-Marquardt, regression only) train on the "
                            "full batch)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default: the optimizer's own, e.g. adam 1e-3, sgd 0.01)")
    train.add_argument("--val", type=_fraction, default=0.1, metavar="FRACTION",
                       help="share of the rows held out for validation, drawn at random "
                            "(stratified for classes) with --seed; 0 for none (default 0.1)")
    train.add_argument("--out", default="model.npz", metavar="MODEL",
                       help="where to write the model (default model.npz)")
    train.add_argument("--plot", default=None, metavar="PICTURE",
                       help='draw the loss and metric curves to this file, e.g. curve.png (needs '
                            'matplotlib: pip install "backprop[plot]")')
    train.add_argument("--seed", type=_seed, metavar="N", default=0, help="seed of the weights, split and shuffles (default 0)")
    train.add_argument("--threads", type=_positive_int, metavar="N", default=None,
                       help="native threads (default: OMP_NUM_THREADS or all cores)")
    train.add_argument("--quiet", action="store_true", help="no progress, only the scores")


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser("predict", help="print a saved model's predictions for a data file",
                                  description=_PREDICT_DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("model", metavar="MODEL", help="a model file written by train or Network.save")
    predict.add_argument("data", metavar="DATA", help="the data file: CSV, .npy or .npz (its X)")
    predict.add_argument("--target", metavar="COLUMN", default=None,
                         help="a column of DATA to leave out (a header name or an index)")
    predict.add_argument("--out", default=None, metavar="CSV",
                         help="write the predictions to this CSV file (header 'prediction') "
                              "instead of printing them")
    predict.add_argument("--threads", type=_positive_int, metavar="N", default=None,
                         help="native threads (default: OMP_NUM_THREADS or all cores)")


def _add_info(commands: Any) -> None:
    info = commands.add_parser("info", help="describe a saved model",
                               description="Print a model file's architecture (layers, "
                                           "activations, loss, dtype, parameter count), its "
                                           "format version, and its optimizer when one was saved.")
    info.add_argument("model", metavar="MODEL", help="a model file written by train or Network.save")


# -- train --------------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    from . import data_files, datasets, optim
    from .network import Network

    _check_folder(args.out, "--out", args.data)
    if args.plot is not None:  # checked before training, not after it
        from .plots import picture_path

        _check_folder(args.plot, "--plot", args.data, args.out)
        picture_path(args.plot)
    data = data_files.read_training_data(args.data, args.target)
    target = data_files.encode_target(data.y, args.task, source=args.data,
                                      what=data.describe_target)
    classification = target.task == "classification"
    n_features = data.X.shape[1]
    talk = not args.quiet
    if talk:
        print(f"data:       {args.data}: {len(target.y)} rows, {n_features} features; target "
              f"{data.describe_target}")
        kind = (f"classification, {len(target.classes)} classes" if classification  # type: ignore[arg-type]
                else "regression")
        print(f"task:       {kind} ({target.reason}; --task overrides)")

    X, y = data.X, target.y
    validation = None
    if args.val > 0:
        if len(y) < 2:
            raise _UsageError(f"{args.data} has {len(y)} row; --val needs at least 2 "
                              "(or use --val 0)")
        X, X_val, y, y_val = datasets.train_test_split(data.X, target.y, test_size=args.val,
                                                       seed=args.seed, stratify=classification)
        validation = (X_val, y_val)
    if talk:
        held = f", {len(validation[1])} validation rows" if validation else ", no validation"
        print(f"split:      {len(y)} training rows{held} (seed {args.seed})")

    n_outputs = len(target.classes) if target.classes is not None else 1
    net = Network([n_features, *args.hidden, n_outputs], activation=args.activation,
                  loss="cross_entropy" if classification else "mse", seed=args.seed)
    optimizer = _optimizer(optim, args.optimizer, args.lr)
    if args.optimizer == "lm":  # its limits, checked before training rather than after it
        if classification:
            raise _UsageError("--optimizer lm (Levenberg-Marquardt) minimises squared errors and "
                              "needs a regression target; use --task regression or another "
                              "optimizer")
        if net.n_params > optimizer.max_params:
            raise _UsageError(f"--optimizer lm solves an n_params x n_params system; this network "
                              f"has {net.n_params:,} parameters, more than "
                              f"{optimizer.max_params:,} (use smaller --hidden)")
    if talk:
        print(f"model:      {net}")
        print(f"optimizer:  {optimizer!r}", flush=True)
    history = net.fit(X, y, optimizer=optimizer, epochs=args.epochs,
                      batch_size=min(args.batch_size, len(y)), validation_data=validation,
                      metrics=None if classification else ["mae"], verbose=0 if args.quiet else 1)

    scores = [("training", X, y)] + ([("validation", *validation)] if validation else [])
    width = max(len(name) for name, _, _ in scores)
    for name, features, truth in scores:
        print(f"{name + ':':<{width + 1}} {_score(net, features, truth)} ({len(truth)} rows)")

    net.save(args.out)
    _write_sidecar(args.out, target, data)
    print(f"saved {args.out} (class names and target column in {args.out}{SIDECAR_SUFFIX})"
          if classification else f"saved {args.out} (target column in {args.out}{SIDECAR_SUFFIX})")
    if args.plot is not None:
        history.plot(args.plot)
        print(f"saved {args.plot}")
    return 0


def _check_folder(path: str, option: str, *inputs: str) -> None:
    """That a file can be written at path, and that it is none of the input files."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _UsageError(f"{option} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise _UsageError(f"{option} {path} is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _UsageError(f"{option} {path}: the folder {folder} is not writable")
    for source in inputs:
        if os.path.exists(path) and os.path.samefile(path, source):
            raise _UsageError(f"{option} {path} is an input file; writing there would replace it")


def _optimizer(optim: Any, name: str, lr: Optional[float]) -> Any:
    class_name, settings = _OPTIMIZERS[name]
    kind = getattr(optim, class_name)
    if lr is not None:
        if name == "lm":
            raise _UsageError("--lr does not apply to --optimizer lm (its damping sets the step)")
        settings = {**settings, "lr": lr}
    return kind(**settings)


def _score(net: Any, X: Any, y: Any) -> str:
    """Accuracy for a classifier; R^2 (and the mean absolute error) for a regressor."""
    import numpy as np

    if net.is_classifier:
        return f"accuracy {float(np.mean(net.predict(X) == y)):.4f}"
    predicted = net.predict(X)[:, 0].astype(np.float64)
    residual = float(np.sum((predicted - y) ** 2))
    spread = float(np.sum((y - np.mean(y)) ** 2))
    mae = float(np.mean(np.abs(predicted - y)))
    r2 = f"{1.0 - residual / spread:.4f}" if spread > 0 else "undefined (constant target)"
    return f"R^2 {r2}, MAE {mae:.4g}"


# -- the file beside the model ------------------------------------------------------------------


def _sidecar_path(model: str) -> str:
    return model + SIDECAR_SUFFIX


def _write_sidecar(model: str, target: Any, data: Any) -> None:
    from .data_files import write_text_atomically

    record = {"format": _SIDECAR_FORMAT, "version": _SIDECAR_VERSION, "task": target.task,
              "classes": target.classes, "target": data.target_name,
              "target_index": data.target_index, "n_columns": data.n_columns}
    write_text_atomically(_sidecar_path(model), json.dumps(record) + "\n")


def _read_sidecar(model: str, net: Any) -> dict[str, Any]:
    """The record beside a model trained by `backprop train`, checked against the network;
    {} when there is none."""
    path = _sidecar_path(model)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    stale = "; delete it or train the model again"
    try:
        record = json.loads(text)
    except ValueError:
        raise _UsageError(f"{path} is not valid JSON{stale}") from None
    if not isinstance(record, dict) or record.get("format") != _SIDECAR_FORMAT:
        raise _UsageError(f"{path} is not a file written by backprop train{stale}")
    classes = record.get("classes")
    if classes is not None:
        if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
            raise _UsageError(f"{path} has a malformed class list{stale}")
        if net.loss_name != "cross_entropy" or len(classes) != net.n_outputs:
            raise _UsageError(f"{path} lists {len(classes)} classes but {model} is a "
                              f"{net.loss_name} network with {net.n_outputs} outputs{stale}")
    elif net.is_classifier and record.get("task") == "regression":
        raise _UsageError(f"{path} describes a regression model but {model} is a "
                          f"classifier{stale}")
    for key, kinds in (("target", str), ("target_index", int)):
        if record.get(key) is not None and not isinstance(record[key], kinds):
            raise _UsageError(f"{path} has a malformed {key!r}{stale}")
    return record


# -- predict ------------------------------------------------------------------------------------


def _predict(args: argparse.Namespace) -> int:
    from . import data_files
    from .io import load

    if args.out is not None:
        _check_folder(args.out, "--out", args.model, args.data)
    net = load(args.model)
    record = _read_sidecar(args.model, net)
    X, note = data_files.read_features(args.data, net.n_inputs, target=args.target,
                                       trained_target=record.get("target"),
                                       trained_index=record.get("target_index"))
    if note:
        print(f"backprop predict: note: {note}", file=sys.stderr)
    rows = _prediction_rows(net, net.predict(X), record.get("classes"))
    if args.out is None:
        sys.stdout.write("".join(",".join(row) + "\n" for row in rows))
        return 0
    width = len(rows[0])
    header = ["prediction"] if width == 1 else [f"prediction_{j}" for j in range(width)]
    data_files.write_text_atomically(args.out, data_files.csv_text(header, rows))
    print(f"wrote {len(rows)} predictions to {args.out}")
    return 0


def _prediction_rows(net: Any, predicted: Any, classes: Optional[list[str]]) -> list[list[str]]:
    if net.loss_name == "cross_entropy":
        return [[classes[k] if classes else str(k)] for k in predicted.tolist()]
    if predicted.ndim == 1:  # binary_cross_entropy with one output: 0/1 labels
        return [[str(label)] for label in predicted.tolist()]
    return [[str(value) for value in row] for row in predicted]


# -- info ---------------------------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import load

    net, optimizer = load(args.model, with_optimizer=True)
    with np.load(args.model, allow_pickle=False) as archive:
        version = int(archive["version"][()])
    record = _read_sidecar(args.model, net)
    print(f"{args.model}: backprop model, file format version {version}")
    print(f"  network     {net}")
    for number, layer in enumerate(net.layers, start=1):
        count = layer.fan_in * layer.fan_out + layer.fan_out
        extra = ""
        if layer.inputs is not None:
            sources = ", ".join("input" if s == 0 else f"layer {s}" for s in layer.inputs)
            extra += f"  reads {sources}"
        if layer.dropout:
            extra += f"  dropout {layer.dropout:g}"
        if layer.activation in ("leaky_relu", "elu"):
            extra += f"  alpha {layer.resolved_alpha():g}"
        shape = f"{layer.fan_in} -> {layer.fan_out}"
        print(f"  layer {number:<5} {shape:<13} {layer.activation:<11}{count:>10,} parameters{extra}")
    print(f"  loss        {net.loss_name} ({net.reduction} over the batch), output {net.output}")
    print(f"  dtype       {net.dtype}")
    print(f"  parameters  {net.n_params:,}")
    print(f"  init        {net.init}, seed {net.seed}")
    if optimizer is None:
        print("  optimizer   not saved")
    else:
        print(f"  optimizer   {optimizer!r}, {optimizer.steps} steps taken")
    if record:
        if record.get("classes"):
            classes = record["classes"]
            shown = " ".join(classes[:20]) + (f" ... ({len(classes)} in all)" if len(classes) > 20 else "")
            print(f"  classes     {shown}")
        column = record.get("target") or (f"index {record['target_index']}"
                                         if record.get("target_index") is not None else "y")
        print(f"  target      {column} ({record.get('task')}; from {_sidecar_path(args.model)})")
    return 0


# -- bench and main -----------------------------------------------------------------------------


def _bench_executable() -> str:
    name = "backprop-bench"
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    for candidate in (beside_python, os.path.join(sysconfig.get_path("scripts"), name), shutil.which(name)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise _UsageError("backprop-bench was not found; it is installed with the package by `pip install .`")


def _message(error: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{os.fsdecode(error.filename)}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _one_line_warning(message: Any, category: Any, filename: str, lineno: int,
                      file: Any = None, line: Optional[str] = None) -> None:
    text = " ".join(str(message).split())
    print(f"backprop: warning: {text}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            if getattr(args, "threads", None) is not None:
                from .threads import set_num_threads

                set_num_threads(args.threads)
            if args.command == "train":
                return _train(args)
            if args.command == "predict":
                return _predict(args)
            if args.command == "info":
                return _info(args)
            if args.command == "demo":
                from .demo import run_demo

                accuracy = run_demo(hidden=args.hidden, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    verbose=0 if args.quiet else 1)
                return 0 if accuracy == accuracy else 1
            if args.command == "bench":
                extra = [a for a in args.args if a != "--"]
                return subprocess.call([_bench_executable(), *extra])
    except BrokenPipeError:
        # The reader went away (`backprop predict ... | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (_UsageError, ValueError, TypeError, OSError, FloatingPointError, ImportError) as error:
        print(f"backprop {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"backprop {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
