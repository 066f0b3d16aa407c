"""The C++ model-file reader (cpp/src/model_file.cpp), driven through `backprop-bench --model`:
files saved by Python give the forward checksums Python computes, and bad files exit with 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import backprop as bp

# The bench sums outputs in double; Python sums the same outputs. Differences come from the
# input's sin (libm against NumPy's, an ulp apart) and the order of the sums.
CHECKSUM_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
BATCH = 16
TIMEOUT = 120


def _find_bench():
    """$BACKPROP_BENCH (a build tree's binary), else next to the interpreter, else on PATH."""
    chosen = os.environ.get("BACKPROP_BENCH")
    if chosen:
        return chosen
    name = "backprop-bench.exe" if os.name == "nt" else "backprop-bench"
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside_python) and os.access(beside_python, os.X_OK):
        return beside_python
    return shutil.which("backprop-bench")


BENCH = _find_bench()
pytestmark = pytest.mark.skipif(
    BENCH is None, reason=f"backprop-bench is neither next to {sys.executable} nor on PATH")


def _run(path):
    return subprocess.run([BENCH, "--model", str(path), "--batch", str(BATCH), "--quick"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def _bench_input(n_inputs, dtype):
    """x[i][j] = sin(0.37 i + 0.11 j), computed in float64 and rounded once, as the bench does."""
    i = np.arange(BATCH, dtype=np.float64)[:, None]
    j = np.arange(n_inputs, dtype=np.float64)[None, :]
    return np.sin(0.37 * i + 0.11 * j).astype(dtype)


def _checksums(stdout):
    plain = re.search(r"^forward checksum: (\S+)$", stdout, re.MULTILINE)
    weighted = re.search(r"^forward weighted checksum: (\S+)$", stdout, re.MULTILINE)
    assert plain and weighted, stdout
    return float(plain.group(1)), float(weighted.group(1))


# -- networks saved by Python -----------------------------------------------------------------


def _networks():
    """(id, builder) pairs covering every dtype, activation, output and wiring the file holds."""
    D = bp.Dense
    return [
        ("f32-relu-softmax", lambda: bp.Network([5, 8, 3], activation="relu", dtype="float32")),
        ("f64-relu-softmax-sum", lambda: bp.Network([5, 8, 3], activation="relu",
                                                    reduction="sum", dtype="float64")),
        ("f64-tanh-sigmoid-bce", lambda: bp.Network([4, 6, 2], activation="tanh",
                                                    loss="binary_cross_entropy", dtype="float64")),
        ("f32-sigmoid-identity-mse", lambda: bp.Network([3, 7, 5, 2], activation="sigmoid",
                                                        loss="mse", dtype="float32")),
        ("f32-leaky-alpha-elu-gelu", lambda: bp.Network(
            [D(6, 9, "leaky_relu", alpha=0.25), D(9, 7, "elu", alpha=0.5), D(7, 5, "gelu"),
             D(5, 4, "identity")], loss="mse", dtype="float32")),
        ("f64-leaky-alpha-elu-gelu", lambda: bp.Network(
            [D(6, 9, "leaky_relu", alpha=0.25), D(9, 7, "elu", alpha=0.5), D(7, 5, "gelu"),
             D(5, 4, "softmax")], dtype="float64")),
        ("f64-softplus-sigmoid-mse", lambda: bp.Network(
            [D(4, 5, "softplus"), D(5, 3, "sigmoid")], loss="mse", dtype="float64")),
        ("f64-shortcuts-dense", lambda: bp.Network(
            [D(4, 6, "tanh"), D(10, 5, "relu", inputs=[0, 1]),
             D(15, 3, "identity", inputs=[0, 1, 2])], loss="mse", dtype="float64")),
        ("f32-shortcuts-dense", lambda: bp.Network(
            [D(4, 6, "tanh"), D(6, 5, "elu"), D(9, 3, "softmax", inputs=[2, 0])], dtype="float32")),
        ("f32-shortcuts-sizes", lambda: bp.Network([3, 4, 4, 2], activation="tanh", shortcuts=True,
                                                   dtype="float32")),
        ("f32-dropout", lambda: bp.Network([6, 10, 8, 4], activation="relu", dropout=0.3,
                                           dtype="float32")),
        ("f64-dropout-dense", lambda: bp.Network(
            [D(6, 10, "gelu", dropout=0.5), D(10, 8, "tanh"), D(8, 1, "sigmoid")],
            loss="binary_cross_entropy", dtype="float64")),
        ("f32-single-layer", lambda: bp.Network([7, 3], loss="mse", dtype="float32")),
    ]


NETWORKS = _networks()


@pytest.mark.parametrize("build", [b for _, b in NETWORKS], ids=[name for name, _ in NETWORKS])
def test_checksum_matches_python_forward(tmp_path, build):
    net = build()
    # Every weight and bias away from its initial value (biases start at 0), so a misread
    # offset, activation or alpha changes the outputs.
    rng = np.random.default_rng(7)
    net.params[...] = rng.normal(0.0, 0.6, size=net.n_params).astype(net.dtype)
    path = tmp_path / "m.npz"
    net.save(path)

    result = _run(path)
    assert result.returncode == 0, result.stderr
    assert f"dtype {net.dtype}" in result.stdout
    assert f"{net.n_params} parameters" in result.stdout

    y = net.forward(_bench_input(net.n_inputs, net.dtype)).astype(np.float64).ravel()
    expected = (y.sum(), (y * (1 + np.arange(y.size) % 7)).sum())
    rtol = CHECKSUM_RTOL[np.dtype(net.dtype)]
    for got, want, weights in zip(_checksums(result.stdout), expected, (1, 7)):
        # Scaled by the sum of |y|: identity outputs can cancel to a sum near 0.
        assert abs(got - want) <= rtol * weights * max(np.abs(y).sum(), 1.0), (got, want)


def test_optimizer_members_are_ignored(tmp_path):
    net = bp.Network([4, 5, 3], dtype="float64")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4))
    y = rng.integers(0, 3, size=20)
    optimizer = bp.optim.Adam(lr=1e-2)
    for _ in range(3):
        net.train_step(X, y, optimizer)
    path = tmp_path / "with_optimizer.npz"
    net.save(path, optimizer=optimizer)
    result = _run(path)
    assert result.returncode == 0, result.stderr
    assert "optimizer state in the file" in result.stdout
    out = net.forward(_bench_input(4, np.float64)).ravel()
    got = _checksums(result.stdout)[1]
    want = (out * (1 + np.arange(out.size) % 7)).sum()
    assert abs(got - want) <= 1e-12 * 7 * np.abs(out).sum()


def _repacked(source, target, padding=0, comment=b""):
    """The members of `source` rewritten by zipfile (stored), after `padding` empty members and
    with an archive comment."""
    with zipfile.ZipFile(source) as original, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for i in range(padding):
            archive.writestr(f"padding_{i}", b"")
        for info in original.infolist():
            archive.writestr(info.filename, original.read(info.filename))
        archive.comment = comment


@pytest.mark.parametrize("padding, comment", [(0, b"a zip comment"), (0x10000, b"")],
                         ids=["comment", "zip64-directory"])
def test_other_zip_layouts(tmp_path, padding, comment):
    """An archive comment, and the ZIP64 end records zipfile writes past 65535 entries."""
    net = bp.Network([3, 5, 2], activation="gelu", loss="mse", dtype="float64", seed=4)
    net.save(tmp_path / "m.npz")
    _repacked(tmp_path / "m.npz", tmp_path / "repacked.npz", padding, comment)
    result = _run(tmp_path / "repacked.npz")
    assert result.returncode == 0, result.stderr
    y = net.forward(_bench_input(3, np.float64))
    assert abs(_checksums(result.stdout)[0] - y.sum()) <= 1e-12 * np.abs(y).sum()


def test_unicode_in_the_architecture(tmp_path):
    """Non-ASCII text (raw, and as \\u escapes with a surrogate pair) in fields C++ ignores."""
    net = bp.Network([3, 4, 2], dtype="float32", seed=2)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        members = {key: archive[key] for key in archive.files}
    architecture = json.loads(str(members["architecture"][()]))
    architecture["note"] = "Gr\u00fc\u00dfe \U0001F600 \"quoted\"\n"
    escaped = ', "escaped": "\\u00e9\\ud83d\\ude00"}'
    text = json.dumps(architecture, ensure_ascii=False)[:-1] + escaped
    members["architecture"] = np.array(text, dtype=np.str_)
    np.savez(tmp_path / "unicode.npz", **members)
    result = _run(tmp_path / "unicode.npz")
    assert result.returncode == 0, result.stderr
    y = net.forward(_bench_input(3, np.float32)).astype(np.float64)
    assert abs(_checksums(result.stdout)[0] - y.sum()) <= 1e-5 * np.abs(y).sum()


# -- files it must refuse ---------------------------------------------------------------------


def _saved_members(tmp_path, dtype="float32"):
    net = bp.Network([3, 4, 2], activation="tanh", dtype=dtype)
    path = tmp_path / "good.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}, path.read_bytes()


def _with_architecture(members, change):
    architecture = json.loads(str(members["architecture"][()]))
    change(architecture)
    edited = dict(members)
    edited["architecture"] = np.array(json.dumps(architecture), dtype=np.str_)
    return edited


def _bad_files(tmp_path):
    """(id, bytes or writer, a phrase the message must contain)."""
    members, good = _saved_members(tmp_path)
    rng = np.random.default_rng(3)
    cases = []

    def savez(name, arrays, compressed=False):
        path = tmp_path / name
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        return path.read_bytes()

    cases.append(("empty", b"", "too short"))
    cases.append(("random-bytes", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                  "not an .npz archive"))
    cases.append(("zip-magic-then-random", b"PK\x03\x04" + rng.integers(0, 256, 200, dtype=np.uint8)
                  .tobytes(), "truncated or corrupt"))
    for cut in (10, 100, len(good) // 2, len(good) - 30, len(good) - 1):
        cases.append((f"truncated-{cut}", good[:cut], "truncated or corrupt"))
    cases.append(("other-npz", savez("other.npz", {"a": np.arange(3), "b": np.eye(2)}),
                  "no 'format' member"))
    cases.append(("compressed", savez("compressed.npz", members, compressed=True), "compressed"))
    cases.append(("wrong-format", savez("wrong_format.npz", {
        **members, "format": np.array("something-else")}), "format is not"))
    cases.append(("newer-version", savez("newer.npz", {**members, "version": np.array(2)}),
                  "newer backprop"))
    cases.append(("version-zero", savez("v0.npz", {**members, "version": np.array(0)}),
                  "unknown format version"))
    cases.append(("no-params", savez("no_params.npz", {
        k: v for k, v in members.items() if k != "params"}), "no 'params' member"))
    cases.append(("no-architecture", savez("no_arch.npz", {
        k: v for k, v in members.items() if k != "architecture"}), "no 'architecture' member"))
    cases.append(("architecture-not-json", savez("not_json.npz", {
        **members, "architecture": np.array('{"layers": [')}), "not JSON"))
    cases.append(("architecture-not-text", savez("arch_int.npz", {
        **members, "architecture": np.array(3)}), "expected a text scalar"))

    def n_params_off(a):
        a["n_params"] += 1
    cases.append(("n-params-mismatch",
                  savez("n_params.npz", _with_architecture(members, n_params_off)),
                  "parameters but its layers hold"))

    def unknown_activation(a):
        a["layers"][0]["activation"] = "swish"
    cases.append(("unknown-activation",
                  savez("act.npz", _with_architecture(members, unknown_activation)),
                  "'swish' is unknown"))

    def bad_inputs(a):
        a["layers"][1]["inputs"] = [0, 1]
    cases.append(("inputs-width", savez("inputs.npz", _with_architecture(members, bad_inputs)),
                  "fan_in"))

    def huge_fan_out(a):
        a["layers"][0]["fan_out"] = 10 ** 30
    cases.append(("huge-integer", savez("huge.npz", _with_architecture(members, huge_fan_out)),
                  "does not fit in 64 bits"))
    cases.append(("params-short", savez("short.npz", {**members, "params": members["params"][:-1]}),
                  "shape"))
    cases.append(("params-dtype", savez("f64.npz", {
        **members, "params": members["params"].astype(np.float64)}), "dtype"))
    nan_params = members["params"].copy()
    nan_params[3] = np.nan
    cases.append(("params-nan", savez("nan.npz", {**members, "params": nan_params}), "NaN"))

    # One flipped bit in the last parameter: only the CRC-32 can tell.
    flipped = bytearray(good)
    with zipfile.ZipFile(tmp_path / "good.npz") as archive:
        info = archive.getinfo("params.npy")
    with open(tmp_path / "good.npz", "rb") as handle:
        handle.seek(info.header_offset + 28)
        extra_size = int.from_bytes(handle.read(2), "little")
    data_end = info.header_offset + 30 + len(info.filename.encode()) + extra_size + info.file_size
    flipped[data_end - 2] ^= 0x10
    cases.append(("bit-flip", bytes(flipped), "CRC-32"))
    return cases


def test_bad_files_exit_2_with_one_line(tmp_path):
    for name, content, phrase in _bad_files(tmp_path):
        path = tmp_path / f"bad-{name}.npz"
        path.write_bytes(content)
        result = _run(path)
        assert result.returncode == 2, (name, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert str(path) in lines[0], (name, lines[0])
        assert phrase in lines[0], (name, phrase, lines[0])
        assert "forward checksum" not in result.stdout, name


def test_missing_file_exits_2(tmp_path):
    result = _run(tmp_path / "does-not-exist.npz")
    assert result.returncode == 2
    assert "cannot open" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_truncation_is_refused(tmp_path):
    """Each prefix of a small model file: refused cleanly (2), never a crash or a checksum."""
    _, good = _saved_members(tmp_path, dtype="float64")
    path = tmp_path / "cut.npz"
    for cut in range(0, len(good), 37):
        path.write_bytes(good[:cut])
        result = _run(path)
        assert result.returncode == 2, (cut, result.returncode, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (cut, result.stderr)


def test_random_corruption_never_crashes(tmp_path):
    """Random bytes overwritten anywhere: exit 0 (damage the reader cannot see, e.g. in a zip
    timestamp) or 2 with one line; never a signal or another status."""
    _, good = _saved_members(tmp_path)
    rng = np.random.default_rng(11)
    path = tmp_path / "corrupt.npz"
    for _ in range(40):
        damaged = bytearray(good)
        for position in rng.integers(0, len(good), size=rng.integers(1, 4)):
            damaged[position] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        result = _run(path)
        assert result.returncode in (0, 2), (result.returncode, result.stderr)
        if result.returncode == 2:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_batch_option_is_checked():
    result = subprocess.run([BENCH, "--batch", "4"], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 2
    assert "--batch goes with --model" in result.stderr
