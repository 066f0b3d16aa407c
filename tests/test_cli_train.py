"""`backprop train`, `predict` and `info`, run as a user would (`python -m backprop ...` in a
subprocess) on small CSV, .npy and .npz files; and the data-file reader behind them."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import data_files
from backprop.data_files import DataError

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
N_DIGITS = 360  # rows of the digits used: enough to learn, quick to train


def run(*args, cwd, timeout=120):
    # In a temporary folder (never the source tree), with two threads so a busy machine
    # does not slow the runs down with oversubscribed OpenMP threads.
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "backprop", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def write_csv(path, rows, header=None):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def digits():
    X, y = bp.datasets.load_digits(scale=False)
    return X[:N_DIGITS].astype(np.int64), y[:N_DIGITS]


@pytest.fixture(scope="module")
def digits_csv(folder, digits):
    X, y = digits
    header = [f"pixel{i}" for i in range(64)] + ["digit"]
    return write_csv(folder / "digits.csv", np.column_stack([X, y]).tolist(), header)


@pytest.fixture(scope="module")
def digits_bare_csv(folder, digits):
    X, y = digits
    return write_csv(folder / "digits_bare.csv", np.column_stack([X, y]).tolist())


@pytest.fixture(scope="module")
def trained(folder, digits_csv):
    """A model trained on the digits CSV with a header, and the command's output."""
    model = folder / "digits.npz"
    result = ok(run("train", digits_csv, "--target", "digit", "--hidden", "32", "--epochs", "8",
                    "--lr", "3e-3", "--out", model, "--quiet", cwd=folder))
    return model, result


@pytest.fixture(scope="module")
def regression_csv(folder):
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (240, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.01 * rng.standard_normal(240)
    return write_csv(folder / "regression.csv", np.column_stack([X, y]).tolist(),
                     ["a", "b", "c", "value"])


@pytest.fixture(scope="module")
def animals_csv(folder):
    """Three well separated blobs with text labels, no header (the label column is text)."""
    rng = np.random.default_rng(5)
    names = np.array(["dog", "cat", "bird"])
    centres = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    ids = rng.integers(0, 3, 150)
    X = centres[ids] + 0.4 * rng.standard_normal((150, 2))
    rows = [[f"{a:.4f}", f"{b:.4f}", names[k]] for (a, b), k in zip(X, ids)]
    return write_csv(folder / "animals.csv", rows)


def features_of(path, drop_last=True):
    table = np.loadtxt(path, delimiter=",", skiprows=1 if _has_letters(path) else 0,
                       dtype=np.float64, ndmin=2)
    return table[:, :-1] if drop_last else table


def _has_letters(path):
    with open(path) as handle:
        first = handle.readline()
    return any(char.isalpha() for char in first.replace("e-", "").replace("e+", ""))


# -- train ------------------------------------------------------------------------------------


def test_train_on_a_csv_with_a_header_writes_a_model_that_loads(trained):
    model, result = trained
    net = bp.load(model)
    assert net.n_inputs == 64 and net.n_outputs == 10
    assert net.loss_name == "cross_entropy"
    assert [layer.fan_out for layer in net.layers] == [32, 10]
    sidecar = json.loads((model.parent / (model.name + ".classes.json")).read_text())
    assert sidecar["classes"] == [str(k) for k in range(10)]
    assert sidecar["target"] == "digit" and sidecar["target_index"] == 64
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training:   accuracy")
    assert lines[1].startswith("validation: accuracy")
    assert f"({N_DIGITS - 36} rows)" in lines[0] and "(36 rows)" in lines[1]  # --val 0.1
    assert float(lines[0].split()[2]) > 0.8
    assert result.stderr == ""  # --quiet: no progress


def test_train_prints_progress_and_the_setup_unless_quiet(folder, digits_csv):
    result = ok(run("train", digits_csv, "--hidden", "16", "--epochs", "2", "--out",
                    folder / "talk.npz", cwd=folder))
    assert "data:       " in result.stdout and "64 features" in result.stdout
    assert "classification, 10 classes" in result.stdout
    assert "model:      Network([64, 16, 10]" in result.stdout
    assert "optimizer:  Adam(lr=0.001" in result.stdout
    assert "epoch 2/2" in result.stderr and "val_accuracy" in result.stderr


def test_train_without_a_header_uses_the_last_column(folder, digits_bare_csv, digits):
    model = folder / "bare.npz"
    ok(run("train", digits_bare_csv, "--hidden", "16", "--epochs", "3", "--out", model,
           "--quiet", cwd=folder))
    net = bp.load(model)
    assert net.n_inputs == 64 and net.n_outputs == 10
    sidecar = json.loads((folder / "bare.npz.classes.json").read_text())
    assert sidecar["target"] is None and sidecar["target_index"] == 64


def test_train_is_reproducible_for_a_seed(folder, digits_csv):
    paths = []
    for name, threads in (("seed_a.npz", 1), ("seed_b.npz", 2)):
        ok(run("train", digits_csv, "--hidden", "16", "--epochs", "2", "--seed", "7",
               "--threads", threads, "--out", folder / name, "--quiet", cwd=folder))
        paths.append(folder / name)
    first, second = (bp.load(path) for path in paths)
    np.testing.assert_array_equal(first.params, second.params)


def test_train_a_regression(folder, regression_csv):
    model = folder / "regression.npz"
    result = ok(run("train", regression_csv, "--hidden", "16", "--epochs", "60", "--lr", "1e-2",
                    "--batch-size", "16", "--out", model, cwd=folder))
    assert "regression (the target holds non-integer numbers" in result.stdout
    net = bp.load(model)
    assert net.loss_name == "mse" and net.n_outputs == 1
    validation = [line for line in result.stdout.splitlines() if line.startswith("validation:")]
    r2 = float(validation[0].split()[2].rstrip(","))
    assert r2 > 0.9, result.stdout
    assert "MAE" in validation[0]


def test_text_labels_become_named_classes(folder, animals_csv):
    model = folder / "animals.npz"
    result = ok(run("train", animals_csv, "--hidden", "8", "--epochs", "40", "--batch-size", "16",
                    "--lr", "1e-2", "--out", model, cwd=folder))
    assert "classification, 3 classes (the target holds text labels" in result.stdout
    sidecar = json.loads((folder / "animals.npz.classes.json").read_text())
    assert sidecar["classes"] == ["bird", "cat", "dog"]  # sorted
    predicted = ok(run("predict", model, animals_csv, cwd=folder))
    names = predicted.stdout.split()
    assert len(names) == 150 and set(names) <= {"bird", "cat", "dog"}
    with open(animals_csv) as handle:
        truth = [row[-1] for row in csv.reader(handle)]
    assert np.mean(np.array(names) == np.array(truth)) > 0.9
    assert "leaving out column index 2, the model's target column" in predicted.stderr


def test_task_overrides_the_guess(folder, digits_csv):
    model = folder / "as_values.npz"
    result = ok(run("train", digits_csv, "--task", "regression", "--hidden", "8", "--epochs", "2",
                    "--out", model, "--quiet", cwd=folder))
    assert "R^2" in result.stdout
    assert bp.load(model).loss_name == "mse"


def test_train_on_npy_with_the_target_first(folder, digits):
    X, y = digits
    path = folder / "digits.npy"
    np.save(path, np.column_stack([y, X]).astype(np.float32))
    model = folder / "npy.npz"
    ok(run("train", path, "--target", "0", "--hidden", "16", "--epochs", "3", "--out", model,
           "--quiet", cwd=folder))
    net = bp.load(model)
    assert net.n_inputs == 64 and net.n_outputs == 10
    predicted = ok(run("predict", model, path, cwd=folder))
    assert "column index 0, the model's target column" in predicted.stderr
    expected = net.predict(X.astype(np.float32))
    assert predicted.stdout.split() == [str(k) for k in expected]


def test_train_on_npz_and_predict_from_its_X(folder, digits):
    X, y = digits
    path = folder / "digits_arrays.npz"
    np.savez(path, X=X / 16.0, y=y)
    model = folder / "from_npz.npz"
    ok(run("train", path, "--hidden", "16", "--epochs", "3", "--val", "0", "--out", model,
           "--quiet", cwd=folder))
    net = bp.load(model)
    predicted = ok(run("predict", model, path, cwd=folder))
    assert predicted.stderr == ""  # X has exactly the model's inputs: nothing left out
    assert predicted.stdout.split() == [str(k) for k in net.predict(X / 16.0)]


def test_plot_writes_a_png(folder, digits_csv):
    if not HAVE_MATPLOTLIB:
        pytest.skip('matplotlib is not installed (pip install "backprop[plot]")')
    picture = folder / "curves.png"
    result = ok(run("train", digits_csv, "--hidden", "16", "--epochs", "3", "--out",
                    folder / "plotted.npz", "--plot", picture, "--quiet", cwd=folder))
    assert f"saved {picture}" in result.stdout
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_without_matplotlib_fails_before_training(folder, digits_csv):
    # A process where importing matplotlib fails, as it does when it is not installed.
    code = ("import sys; sys.modules['matplotlib'] = None; from backprop.cli import main; "
            f"raise SystemExit(main(['train', {str(digits_csv)!r}, '--plot', 'c.png', "
            f"'--out', {str(folder / 'never.npz')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=folder, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'backprop train: error: plotting needs matplotlib, which is not installed: '
        'pip install "backprop[plot]"']
    assert result.stdout == ""
    assert not (folder / "never.npz").exists()


# -- predict ----------------------------------------------------------------------------------


def test_predict_prints_one_prediction_per_row_matching_the_network(folder, trained, digits_csv, digits):
    model, _ = trained
    result = ok(run("predict", model, digits_csv, cwd=folder))
    lines = result.stdout.splitlines()
    assert len(lines) == N_DIGITS
    net = bp.load(model)
    assert lines == [str(k) for k in net.predict(digits[0])]
    assert result.stderr.strip() == (
        f"backprop predict: note: {digits_csv} has 65 columns and the model takes 64 inputs; "
        "leaving out column 'digit' (index 64), the model's target (choose another with --target)")


def test_predict_on_features_only_and_on_a_bare_csv(folder, trained, digits):
    model, _ = trained
    X, _ = digits
    features = write_csv(folder / "features.csv", X.tolist())
    result = ok(run("predict", model, features, cwd=folder))
    assert result.stderr == ""
    net = bp.load(model)
    assert result.stdout.split() == [str(k) for k in net.predict(X)]


def test_predict_with_target_leaves_out_the_named_column(folder, trained, digits):
    model, _ = trained
    X, y = digits
    header = ["digit"] + [f"pixel{i}" for i in range(64)]
    moved = write_csv(folder / "moved.csv", np.column_stack([y, X]).tolist(), header)
    # The remembered target is found by name wherever it is.
    by_name = ok(run("predict", model, moved, cwd=folder))
    assert "'digit' (index 0)" in by_name.stderr
    explicit = ok(run("predict", model, moved, "--target", "digit", cwd=folder))
    assert explicit.stderr == ""
    assert explicit.stdout == by_name.stdout
    assert explicit.stdout.split() == [str(k) for k in bp.load(model).predict(X)]


def test_predict_writes_a_csv(folder, trained, digits_csv, digits):
    model, _ = trained
    out = folder / "predictions.csv"
    result = ok(run("predict", model, digits_csv, "--out", out, cwd=folder))
    assert result.stdout == f"wrote {N_DIGITS} predictions to {out}\n"
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["prediction"]
    assert [row[0] for row in rows[1:]] == [str(k) for k in bp.load(model).predict(digits[0])]
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_predict_regression_values_round_trip(folder, regression_csv):
    model = folder / "regression_values.npz"
    ok(run("train", regression_csv, "--hidden", "8", "--epochs", "3", "--out", model,
           "--quiet", cwd=folder))
    result = ok(run("predict", model, regression_csv, cwd=folder))
    values = np.array([np.float32(line) for line in result.stdout.split()], dtype=np.float32)
    expected = bp.load(model).predict(features_of(regression_csv))[:, 0]
    np.testing.assert_array_equal(values, expected)  # printed exactly (shortest repr)


def test_predict_with_a_model_saved_from_python(folder, digits):
    # No classes file: class ids are printed.
    X, y = digits
    net = bp.Network([64, 10, 10], seed=1)
    net.fit(X / 16.0, y, epochs=1, verbose=0)
    model = folder / "python.npz"
    net.save(model)
    path = folder / "python_X.npy"
    np.save(path, X / 16.0)
    result = ok(run("predict", model, path, cwd=folder))
    assert result.stdout.split() == [str(k) for k in net.predict(X / 16.0)]


# -- info -------------------------------------------------------------------------------------


def test_info_prints_the_architecture(folder, trained):
    model, _ = trained
    result = ok(run("info", model, cwd=folder))
    out = result.stdout
    assert out.startswith(f"{model}: backprop model, file format version 1\n")
    assert "Network([64, 32, 10], activation='relu', output='softmax'" in out
    assert "layer 1     64 -> 32" in out and "relu" in out
    assert "layer 2     32 -> 10" in out and "softmax" in out
    assert "2,080 parameters" in out and "330 parameters" in out
    assert "parameters  2,410" in out
    assert "loss        cross_entropy (mean over the batch)" in out
    assert "dtype       float32" in out
    assert "optimizer   not saved" in out
    assert "classes     0 1 2 3 4 5 6 7 8 9" in out
    assert "target      digit (classification" in out


def test_info_shows_a_saved_optimizer_and_shortcuts(folder):
    net = bp.Network([3, 4, 2], shortcuts=True, dropout=0.25, activation="leaky_relu",
                     loss="mse", dtype="float64")
    optimizer = bp.optim.Adam(lr=0.01)
    rng = np.random.default_rng(0)
    net.fit(rng.standard_normal((20, 3)), rng.standard_normal((20, 2)), optimizer=optimizer,
            epochs=2, batch_size=10, verbose=0)
    model = folder / "with_optimizer.npz"
    net.save(model, optimizer=optimizer)
    out = ok(run("info", model, cwd=folder)).stdout
    assert "optimizer   Adam(lr=0.01" in out and "4 steps taken" in out
    assert "reads input, layer 1" in out
    assert "dropout 0.25" in out and "alpha 0.01" in out
    assert "dtype       float64" in out
    assert "classes" not in out


# -- help and bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("command, names", [
    ("train", ["--target", "--task", "--hidden", "--activation", "--epochs", "--batch-size",
               "--optimizer", "--lr", "--val", "--out", "--plot", "--seed", "--threads", "--quiet"]),
    ("predict", ["MODEL", "DATA", "--target", "--out"]),
    ("info", ["MODEL"]),
])
def test_help(folder, command, names):
    result = ok(run(command, "--help", cwd=folder))
    assert result.stdout.startswith(f"usage: backprop {command}")
    for name in names:
        assert name in result.stdout
    assert result.stderr == ""


def test_main_help_lists_every_command(folder):
    result = ok(run("--help", cwd=folder))
    for command in ("train", "predict", "info", "demo", "bench"):
        assert command in result.stdout


@pytest.fixture(scope="module")
def bad_files(folder, digits):
    X, y = digits
    files = {
        "ragged": "a,b,c\n1,2,3\n4,5\n",
        "word": "a,b,c\n1,2,3\n4,five,6\n",
        "empty": "",
        "header_only": "a,b,c\n",
        "missing": "a,b,c\n1,2,3\n4,,6\n",
        "infinite": "1,2,3\n4,inf,6\n",
        "one_class": "a,b,y\n1,2,7\n3,4,7\n5,6,7\n",
        "one_column": "y\n1\n2\n",
        "text_target": "x,y\n1,cat\n2,dog\n",
    }
    paths = {name: folder / f"bad_{name}.csv" for name in files}
    for name, text in files.items():
        paths[name].write_text(text)
    paths["binary"] = folder / "bad_binary.csv"
    paths["binary"].write_bytes(bytes(range(256)))
    paths["npz_no_X"] = folder / "bad_no_x.npz"
    np.savez(paths["npz_no_X"], features=X)
    paths["npz_good"] = folder / "good.npz"
    np.savez(paths["npz_good"], X=X, y=y)
    paths["npz_no_y"] = folder / "bad_no_y.npz"
    np.savez(paths["npz_no_y"], X=X)
    paths["npy_3d"] = folder / "bad_3d.npy"
    np.save(paths["npy_3d"], np.zeros((2, 2, 2)))
    paths["npy_text"] = folder / "bad_text.npy"
    np.save(paths["npy_text"], np.array([["a", "b"], ["c", "d"]]))
    paths["truncated_model"] = folder / "bad_truncated.npz"
    return paths


def bad_cases():
    # (arguments, text the one error line must hold); names in {} are files of bad_files,
    # {digits}, {model} and {folder} the good ones.
    return [
        (["train", "{folder}/no_such.csv"], "no_such.csv: No such file or directory"),
        (["train", "{ragged}"], "line 3 has 2 fields; the first row has 3"),
        (["train", "{word}"], "line 3, column 'b' (index 1): 'five' is not a number"),
        (["train", "{empty}"], "is empty"),
        (["train", "{header_only}"], "has no data rows"),
        (["train", "{missing}"], "line 3, column 'b' (index 1) is empty"),
        (["train", "{infinite}"], "line 2, column index 1 is 'inf'"),
        (["train", "{one_class}"], "has only one class ('7')"),
        (["train", "{one_column}"], "has 1 column"),
        (["train", "{text_target}", "--task", "regression"], "regression needs numbers"),
        (["train", "{binary}"], "is not a CSV, .npy or .npz file"),
        (["train", "{npz_no_X}"], "has no array 'X'"),
        (["train", "{npy_3d}"], "must hold one 2-D array"),
        (["train", "{npy_text}"], "it must hold numbers"),
        (["train", "{digits}", "--target", "nope"], "has no column 'nope' (its columns: 'pixel0'"),
        (["train", "{digits}", "--target", "65"], "a column index must be in -65..64; got 65"),
        (["train", "{model}"], "is a backprop model file, not a data file"),
        (["train", "{digits}", "--out", "{folder}/no_folder/m.npz"], "does not exist"),
        (["train", "{digits}", "--out", "{folder}"], "is a folder"),
        (["train", "{digits}", "--out", "{digits}"], "is an input file"),
        (["predict", "{model}", "{digits}", "--out", "{model}"], "is an input file"),
        (["train", "{npz_good}", "--target", "0"], "--target does not apply"),
        (["train", "{npz_no_y}"], "has no array 'y'"),
        (["train", "{digits}", "--plot", "{folder}/c.xyz"],
         "cannot write a picture as .xyz" if importlib.util.find_spec("matplotlib")
         else "plotting needs matplotlib"),
        (["train", "{digits}", "--optimizer", "lm", "--lr", "0.1"], "--lr does not apply"),
        (["train", "{digits}", "--optimizer", "lm", "--hidden", "2"],
         "needs a regression target"),
        (["train", "{digits}", "--optimizer", "lm", "--task", "regression"],
         "this network has 16,641 parameters, more than 10,000"),
        (["train", "{digits}", "--optimizer", "sgd", "--lr", "1e30"], "NaN or Inf"),
        (["train", "{digits}", "--optimizer", "nope"], "invalid choice: 'nope'"),
        (["train", "{digits}", "--val", "1"], "--val"),
        (["train", "{digits}", "--hidden", "0"], "--hidden"),
        (["train"], "required: DATA"),
        (["predict", "{model}", "{folder}/no_such.csv"], "No such file or directory"),
        (["predict", "{folder}/no_such.npz", "{digits}"], "no_such.npz: No such file or directory"),
        (["predict", "{digits}", "{digits}"], "is not a backprop model file"),
        (["predict", "{truncated_model}", "{digits}"], "is not a backprop model file"),
        (["predict", "{model}", "{word}"], "has 3 columns; the model takes 64 inputs"),
        (["predict", "{model}", "{word}", "--target", "a"],
         "without the target column 'a' (index 0) that leaves 2, but the model takes 64 inputs"),
        (["predict", "{model}", "{bare}", "--target", "digit"], "has no header row, so --target must be a column index"),
        (["predict", "{model}"], "required: DATA"),
        (["info", "{digits}"], "is not a backprop model file"),
        (["info", "{folder}/no_such.npz"], "No such file or directory"),
        (["info", "{folder}"], "Is a directory"),
    ]


@pytest.mark.parametrize("args, message", bad_cases(),
                         ids=[f"{case[0][0]}-{i}" for i, case in enumerate(bad_cases())])
def test_bad_input_is_one_line_on_stderr(folder, bad_files, trained, digits_csv,
                                         digits_bare_csv, args, message):
    model, _ = trained
    truncated = bad_files["truncated_model"]
    truncated.write_bytes(model.read_bytes()[:300])
    names = {key: str(value) for key, value in bad_files.items()}
    names.update(folder=str(folder), digits=str(digits_csv), model=str(model),
                 bare=str(digits_bare_csv))
    argv = [arg.format(**names) for arg in args]
    if argv[0] == "train" and len(argv) > 1:
        # --quiet: a failure part-way through training then leaves no progress bar behind.
        argv += ["--quiet"] + ([] if "--out" in argv else ["--out", str(folder / "never.npz")])
    result = run(*argv, cwd=folder)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"backprop {argv[0]}: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert not (folder / "never.npz").exists()


def test_a_stale_classes_file_is_reported(folder, trained, digits_csv):
    model, _ = trained
    copy = folder / "stale.npz"
    copy.write_bytes(model.read_bytes())
    (folder / "stale.npz.classes.json").write_text(json.dumps(
        {"format": "backprop-cli-labels", "version": 1, "task": "classification",
         "classes": ["a", "b"], "target": None, "target_index": None, "n_columns": 3}))
    result = run("predict", copy, digits_csv, cwd=folder)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"backprop predict: error: {copy}.classes.json lists 2 classes but {copy} is a "
        "cross_entropy network with 10 outputs; delete it or train the model again"]


# -- the data-file reader, in process ---------------------------------------------------------


@pytest.mark.parametrize("text, header", [
    ("a,b,label\n1,2,x\n3,4,y\n", ["a", "b", "label"]),   # names above numbers
    ("1,2,x\n3,4,y\n", None),                             # text labels, no header
    ("a,b\nc,d\n", ["a", "b"]),                           # no number in the first row
    ("1,2,3\n4,5,6\n", None),
    ("x;y;z\n1;2;3\n", ["x", "y", "z"]),                  # semicolons
    ("x\ty\n1\t2\n", ["x", "y"]),                         # tabs
    ("\ufeffp,q\n1,2\n", ["p", "q"]),                     # a byte-order mark
    ("p,q\n\n1,2\n\n3,4\n", ["p", "q"]),                  # blank lines
])
def test_header_detection(tmp_path, text, header):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    table = data_files.read_table(path)
    assert table.names == header


def test_gzipped_csv_and_line_numbers(tmp_path):
    import gzip

    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b,y\n1,2,0\n\n3,x,1\n"))
    with pytest.raises(DataError, match=r"line 4, column 'b' \(index 1\): 'x' is not a number"):
        data_files.read_training_data(path)


def test_target_encoding():
    ids = data_files.encode_target(np.array(["3", "1", "3", "2", "1", "2", " 1", "2 ", "3"]))
    assert ids.task == "classification" and ids.classes == ["1", "2", "3"]
    np.testing.assert_array_equal(ids.y, [2, 0, 2, 1, 0, 1, 0, 1, 2])
    few_rows = data_files.encode_target(np.array(["3", "1", "3", "2", "1", "2"]))
    assert few_rows.task == "regression"  # 3 values, but fewer than 3 rows each on average
    binary = data_files.encode_target(np.array([-1.0, 1.0]))  # two values are always classes
    assert binary.classes == ["-1", "1"]
    many = data_files.encode_target(np.arange(10.0))  # 10 values in 10 rows: not classes
    assert many.task == "regression"
    values = data_files.encode_target(np.array(["0.5", "1.25", "2"]))
    assert values.task == "regression" and values.y.dtype == np.float64
    with pytest.raises(DataError, match="non-integer numbers"):
        data_files.encode_target(np.array([0.5, 1.0]), "classification")
    forced = data_files.encode_target(np.array([0, 1, 0, 1]), "regression")
    assert forced.task == "regression" and forced.reason == "given by --task"


def test_write_text_atomically_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        data_files.write_file_atomically(path, fail)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.csv"]
