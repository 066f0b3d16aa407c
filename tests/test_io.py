"""backprop.io: model files round-trip networks and optimizers bit for bit, are written atomically,
and every damaged, foreign, newer or inconsistent file is refused with a ValueError naming it."""

import inspect
import json
import os
import pathlib
import stat
import zipfile

import numpy as np
import pytest

import backprop as bp
from backprop import io as bpio

# (id, Network keyword arguments); layers are built fresh per test (Dense objects are mutable).
ARCHITECTURES = [
    ("sizes-relu-ce-f32", lambda: dict(
        layers=[5, 7, 3], activation="relu", loss="cross_entropy", dtype="float32")),
    ("dense-alphas-bce-f64", lambda: dict(
        layers=[bp.Dense(5, 8, "leaky_relu", alpha=0.2), bp.Dense(8, 6, "elu", alpha=0.5),
                bp.Dense(6, 2)],
        loss="binary_cross_entropy", dtype="float64")),
    ("dense-default-alphas-ce-f32", lambda: dict(
        layers=[bp.Dense(5, 6, "leaky_relu"), bp.Dense(6, 4, "elu"), bp.Dense(4, 3)],
        loss="cross_entropy", dtype="float32")),
    ("mse-sum-tanh-f64", lambda: dict(
        layers=[5, 9, 2], activation="tanh", loss="mse", reduction="sum", dtype="float64")),
    ("mse-sum-gelu-softmax-f32", lambda: dict(
        layers=[5, 6, 4], activation="gelu", output="softmax", loss="mse", reduction="sum",
        dtype="float32")),
    ("bce-sum-mixed-lecun-f32", lambda: dict(
        layers=[5, 8, 6, 1], activation=["sigmoid", "softplus"], loss="binary_cross_entropy",
        reduction="sum", init="lecun", dtype="float32", seed=7)),
    ("1layer-uniform-sigmoid-mse-f64-noseed", lambda: dict(
        layers=[5, 3], output="sigmoid", loss="mse", init="uniform", init_scale=0.3,
        dtype="float64", seed=None)),
]
ARCHITECTURE_IDS = [arch[0] for arch in ARCHITECTURES]

# Optimizers whose resumed run must match an uninterrupted one, step for step.
OPTIMIZERS = [
    ("sgd-momentum", lambda: bp.optim.SGD(lr=0.05, momentum=0.9)),
    ("sgd-nesterov-decay", lambda: bp.optim.SGD(lr=0.05, momentum=0.8, nesterov=True,
                                                 weight_decay=0.01)),
    ("adam", lambda: bp.optim.Adam(lr=0.01)),
    ("adam-betas-decay", lambda: bp.optim.Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-6,
                                               weight_decay=0.1)),
    ("adamw", lambda: bp.optim.AdamW(lr=0.01)),
    ("rmsprop-centered", lambda: bp.optim.RMSprop(lr=0.01, centered=True, momentum=0.5)),
    ("adagrad", lambda: bp.optim.Adagrad(lr=0.1, lr_decay=0.01, weight_decay=0.001)),
]
OPTIMIZER_IDS = [opt[0] for opt in OPTIMIZERS]


def targets(rng, loss, n_outputs, m):
    if loss == "cross_entropy":
        return rng.integers(0, n_outputs, m)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (m, n_outputs)).astype(np.float64)
    return rng.standard_normal((m, n_outputs))


def batches(net, count, m=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((m, net.n_inputs)), targets(rng, net.loss_name, net.n_outputs, m))
            for _ in range(count)]


def trained(kwargs, steps=2):
    """A network moved away from its initial weights (biases non-zero) by a few SGD steps."""
    net = bp.Network(**kwargs)
    optimizer = bp.optim.SGD(lr=0.05)
    for X, y in batches(net, steps, seed=1):
        net.train_step(X, y, optimizer)
    return net


def simple_net(dtype="float32"):
    return trained(dict(layers=[4, 6, 3], activation="tanh", dtype=dtype, seed=2), steps=1)


@pytest.fixture
def model(tmp_path):
    """A valid model file (with Adam's state) and the network and optimizer written to it."""
    net = simple_net()
    optimizer = bp.optim.Adam(lr=0.01)
    for X, y in batches(net, 2):
        net.train_step(X, y, optimizer)
    path = tmp_path / "model.npz"
    bpio.save(net, path, optimizer=optimizer)
    return path, net, optimizer


def members(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def rewrite(source, target, **changes):
    """Write `target` as a copy of the model file `source` with members replaced (None: removed)."""
    arrays = members(source)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    with open(target, "wb") as handle:
        np.savez(handle, **arrays)
    return target


def with_architecture(source, target, edit):
    architecture = json.loads(str(members(source)["architecture"]))
    edit(architecture)
    return rewrite(source, target, architecture=np.array(json.dumps(architecture)))


def with_optimizer_record(source, target, edit):
    record = json.loads(str(members(source)["optimizer"]))
    edit(record)
    return rewrite(source, target, optimizer=np.array(json.dumps(record)))


def assert_same_bytes(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [arch[1] for arch in ARCHITECTURES], ids=ARCHITECTURE_IDS)
def test_round_trip_rebuilds_the_network_exactly(tmp_path, make):
    net = trained(make())
    path = tmp_path / "net.npz"
    bpio.save(net, path)
    loaded = bp.load(path)

    assert type(loaded) is bp.Network
    assert repr(loaded) == repr(net)
    assert loaded.layer_sizes == net.layer_sizes
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in net.layers]
    assert [l.resolved_alpha() for l in loaded.layers] == [l.resolved_alpha() for l in net.layers]
    for name in ("output", "loss_name", "reduction", "dtype", "init", "init_scale", "seed"):
        assert getattr(loaded, name) == getattr(net, name), name
    assert_same_bytes(loaded.params, net.params)
    for layer in loaded.layers:
        assert np.shares_memory(layer.W, loaded.params) and np.shares_memory(layer.b, loaded.params)

    (X, y), = batches(net, 1, m=37, seed=5)
    assert_same_bytes(loaded.forward(X), net.forward(X))
    assert_same_bytes(loaded.predict(X), net.predict(X))
    assert loaded.loss(X, y) == net.loss(X, y)
    loss, grads = net.loss_and_grad(X, y)
    loaded_loss, loaded_grads = loaded.loss_and_grad(X, y)
    assert loaded_loss == loss
    assert_same_bytes(loaded_grads, grads)


def test_round_trip_with_shortcut_connections(tmp_path):
    if "shortcuts" not in inspect.signature(bp.Network).parameters:
        pytest.skip("this build of backprop has no shortcut connections")
    net = trained(dict(layers=[4, 5, 3, 2], activation="tanh", loss="mse", shortcuts=True,
                       dtype="float64"))
    path = tmp_path / "shortcuts.npz"
    bpio.save(net, path)
    loaded = bp.load(path)
    assert [l.inputs for l in loaded.layers] == [l.inputs for l in net.layers]
    (X, _), = batches(net, 1, m=9)
    assert_same_bytes(loaded.forward(X), net.forward(X))


def test_network_save_and_the_package_load_are_this_module():
    assert bp.load is bpio.load
    assert "load" in bp.__all__


def test_network_save_method_writes_the_same_model(tmp_path):
    net = simple_net()
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.9)
    net.train_step(*batches(net, 1)[0], optimizer)
    net.save(tmp_path / "method.npz", optimizer=optimizer)
    bpio.save(net, tmp_path / "function.npz", optimizer=optimizer)
    by_method, by_function = members(tmp_path / "method.npz"), members(tmp_path / "function.npz")
    assert by_method.keys() == by_function.keys()
    for key in by_method:
        assert_same_bytes(by_method[key], by_function[key])


def test_file_layout(model):
    path, net, optimizer = model
    arrays = members(path)
    assert set(arrays) == {"format", "version", "architecture", "params", "optimizer",
                           "optimizer_state_0", "optimizer_state_1"}
    assert arrays["format"].dtype.kind == "U" and arrays["format"].shape == ()
    assert str(arrays["format"]) == "backprop-model"
    assert arrays["version"].dtype.kind == "i" and int(arrays["version"]) == 1
    architecture = json.loads(str(arrays["architecture"]))
    assert [(l["fan_in"], l["fan_out"], l["activation"]) for l in architecture["layers"]] == [
        (4, 6, "tanh"), (6, 3, "softmax")]
    assert {key: architecture[key] for key in ("output", "loss", "reduction", "dtype", "init",
                                               "init_scale", "seed", "n_params")} == {
        "output": "softmax", "loss": "cross_entropy", "reduction": "mean", "dtype": "float32",
        "init": "glorot", "init_scale": None, "seed": 2, "n_params": net.n_params}
    assert_same_bytes(arrays["params"], net.params)
    record = json.loads(str(arrays["optimizer"]))
    assert record == {"class": "Adam", "settings": {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                                                    "weight_decay": 0.0},
                      "steps": 2, "n_state": 2}
    for i, state in enumerate(optimizer.state):
        assert_same_bytes(arrays[f"optimizer_state_{i}"], state)
    # Stored, not deflated: a C++ reader needs no zlib.
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_without_an_optimizer_there_is_none_to_load(tmp_path):
    net = simple_net()
    bpio.save(net, tmp_path / "bare.npz")
    assert "optimizer" not in members(tmp_path / "bare.npz")
    loaded, optimizer = bp.load(tmp_path / "bare.npz", with_optimizer=True)
    assert optimizer is None
    assert_same_bytes(loaded.params, net.params)


def test_load_returns_only_the_network_unless_asked(model):
    path, net, _ = model
    loaded = bp.load(path)
    assert isinstance(loaded, bp.Network)
    assert_same_bytes(loaded.params, net.params)


# -- optimizers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [opt[1] for opt in OPTIMIZERS], ids=OPTIMIZER_IDS)
def test_resumed_training_matches_an_uninterrupted_run(tmp_path, dtype, make):
    net = simple_net(dtype)
    optimizer = make()
    before, after = batches(net, 3, seed=10), batches(net, 2, seed=11)
    for X, y in before:
        net.train_step(X, y, optimizer)
    path = tmp_path / "checkpoint.npz"
    net.save(path, optimizer=optimizer)
    loaded, resumed = bp.load(path, with_optimizer=True)

    assert type(resumed) is type(optimizer) and repr(resumed) == repr(optimizer)
    assert resumed.steps == optimizer.steps == 3
    assert len(resumed.state) == len(optimizer.state)
    for mine, theirs in zip(resumed.state, optimizer.state):
        assert_same_bytes(mine, theirs)
    for X, y in after:
        assert loaded.train_step(X, y, resumed) == net.train_step(X, y, optimizer)
        assert_same_bytes(loaded.params, net.params)
    assert resumed.steps == optimizer.steps == 5
    for mine, theirs in zip(resumed.state, optimizer.state):
        assert_same_bytes(mine, theirs)


def test_resumed_optimizer_is_bound_to_the_loaded_network(model):
    path, _, _ = model
    loaded, resumed = bp.load(path, with_optimizer=True)
    other = simple_net()
    with pytest.raises(ValueError, match="another network"):
        other.train_step(*batches(other, 1)[0], resumed)
    loaded.train_step(*batches(loaded, 1)[0], resumed)


def test_an_optimizer_that_never_stepped_round_trips(tmp_path):
    net = simple_net()
    optimizer = bp.optim.Adam(lr=0.01)
    net.save(tmp_path / "fresh.npz", optimizer=optimizer)
    assert json.loads(str(members(tmp_path / "fresh.npz")["optimizer"]))["n_state"] == 0
    loaded, resumed = bp.load(tmp_path / "fresh.npz", with_optimizer=True)
    assert resumed.steps == 0
    X, y = batches(net, 1)[0]
    net.train_step(X, y, optimizer)
    loaded.train_step(X, y, resumed)
    assert_same_bytes(loaded.params, net.params)


def test_resumed_fit_shuffles_as_an_uninterrupted_one(tmp_path):
    net = bp.Network([5, 8, 3], activation="relu", seed=4)
    X, y = batches(net, 1, m=40, seed=3)[0]
    optimizer = bp.optim.SGD(lr=0.05, momentum=0.9)
    net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=8, verbose=0)
    net.save(tmp_path / "fit.npz", optimizer=optimizer)
    loaded, resumed = bp.load(tmp_path / "fit.npz", with_optimizer=True)
    net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=8, verbose=0)
    loaded.fit(X, y, optimizer=resumed, epochs=2, batch_size=8, verbose=0)
    assert_same_bytes(loaded.params, net.params)


def test_saving_an_optimizer_of_another_network_is_refused(tmp_path):
    net, other = simple_net(), simple_net()
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.5)
    other.train_step(*batches(other, 1)[0], optimizer)
    with pytest.raises(ValueError, match="another network"):
        net.save(tmp_path / "m.npz", optimizer=optimizer)
    with pytest.raises(TypeError, match="Optimizer"):
        net.save(tmp_path / "m.npz", optimizer="adam")
    assert os.listdir(tmp_path) == []


def test_saving_non_finite_params_is_refused(tmp_path):
    net = simple_net()
    net.layers[0].W[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        bpio.save(net, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# -- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model", "model.bin", "model.npz", "model.tar.gz"])
def test_the_path_is_used_exactly_as_given(tmp_path, name):
    net = simple_net()
    bpio.save(net, str(tmp_path / name))
    assert os.listdir(tmp_path) == [name]
    assert_same_bytes(bp.load(str(tmp_path / name)).params, net.params)


def test_pathlike_and_relative_paths(tmp_path, monkeypatch):
    net = simple_net()
    bpio.save(net, pathlib.Path(tmp_path) / "a.model")
    monkeypatch.chdir(tmp_path)
    bpio.save(net, "b.model")  # no folder part: written in the current folder
    assert sorted(os.listdir(tmp_path)) == ["a.model", "b.model"]
    assert_same_bytes(bp.load("a.model").params, bp.load(pathlib.Path("b.model")).params)


def test_a_path_must_be_a_path(tmp_path):
    with pytest.raises(TypeError, match="path"):
        bpio.save(simple_net(), 3)
    with pytest.raises(TypeError, match="path"):
        bp.load(None)
    with pytest.raises(TypeError, match="Network"):
        bpio.save("not a network", tmp_path / "m.npz")


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "nowhere.npz")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_permissions_follow_the_umask_or_the_replaced_file(tmp_path):
    net = simple_net()
    previous = os.umask(0o027)
    try:
        bpio.save(net, tmp_path / "new.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640
    os.chmod(tmp_path / "new.npz", 0o604)
    bpio.save(net, tmp_path / "new.npz")
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o604


# -- atomic writes ------------------------------------------------------------------------------


def _fail_replace(*args, **kwargs):
    raise OSError("simulated failure while moving the file into place")


def _fail_mid_write(error):
    def savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 a partial archive")
        raise error
    return savez


@pytest.mark.parametrize("failure", ["replace", "savez", "interrupt"])
@pytest.mark.parametrize("existing", [True, False], ids=["overwrite", "new"])
def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failure,
                                                            existing):
    path = tmp_path / "model.npz"
    if existing:
        bpio.save(simple_net(), path)
        old = path.read_bytes()
    other = trained(dict(layers=[4, 6, 3], activation="relu", seed=9))
    if failure == "replace":
        monkeypatch.setattr(os, "replace", _fail_replace)
        expected = OSError
    elif failure == "savez":
        monkeypatch.setattr(np, "savez", _fail_mid_write(RuntimeError("disk full")))
        expected = RuntimeError
    else:
        monkeypatch.setattr(np, "savez", _fail_mid_write(KeyboardInterrupt()))
        expected = KeyboardInterrupt
    with pytest.raises(expected):
        other.save(path)
    monkeypatch.undo()
    assert leftovers(tmp_path) == []
    if existing:
        assert os.listdir(tmp_path) == ["model.npz"]
        assert path.read_bytes() == old
        bp.load(path)
    else:
        assert os.listdir(tmp_path) == []


def test_saving_into_a_read_only_folder_fails_and_keeps_the_old_file(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    path = folder / "model.npz"
    bpio.save(simple_net(), path)
    old = path.read_bytes()
    os.chmod(folder, 0o500)
    try:
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("chmod does not stop this user writing (running as root?)")
        with pytest.raises(OSError):
            bpio.save(trained(dict(layers=[4, 6, 3], seed=9)), path)
        assert os.listdir(folder) == ["model.npz"]
        assert path.read_bytes() == old
    finally:
        os.chmod(folder, 0o700)


# -- files that are not models ------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.1, -1, 4, 0],
                         ids=["half", "most", "tenth", "all-but-one-byte", "magic-only", "empty"])
def test_a_truncated_file_is_refused(model, keep):
    path, _, _ = model
    data = path.read_bytes()
    cut = path.with_name("cut.npz")
    cut.write_bytes(data[:int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    with pytest.raises(ValueError, match=r"is not a backprop model file") as error:
        bp.load(cut)
    assert str(cut) in str(error.value)


def test_a_truncated_file_says_truncated_or_corrupt(model):
    path, _, _ = model
    cut = path.with_name("cut.npz")
    cut.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"truncated or corrupt"):
        bp.load(cut)


def test_flipped_bits_never_raise_anything_but_value_error(model):
    """A damaged byte anywhere gives a clean ValueError (or, in zip metadata that no reader
    checks, an intact model): never another exception."""
    path, net, _ = model
    data = path.read_bytes()
    damaged = path.with_name("damaged.npz")
    for position in range(0, len(data), 3):
        for bit in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[position] ^= bit
            damaged.write_bytes(bytes(flipped))
            try:
                loaded, _ = bp.load(damaged, with_optimizer=True)
            except ValueError:
                continue
            assert_same_bytes(loaded.params, net.params)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(ValueError, match="is not a backprop model file"):
        bp.load(path)
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(3000))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        bp.load(path)


def test_a_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(5.0))
    with pytest.raises(ValueError, match="is not a backprop model file"):
        bp.load(path)


def test_a_plain_npz_without_our_entries_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(2))
    with pytest.raises(ValueError, match="no 'format' entry"):
        bp.load(path)


def test_another_format_name_is_refused(model, tmp_path):
    path = rewrite(model[0], tmp_path / "other.npz", format=np.array("keras-model"))
    with pytest.raises(ValueError, match="format is not 'backprop-model'"):
        bp.load(path)
    path = rewrite(model[0], tmp_path / "bytes.npz", format=np.array(b"backprop-model"))
    with pytest.raises(ValueError, match="malformed 'format'"):
        bp.load(path)


def test_a_newer_version_is_refused(model, tmp_path):
    path = rewrite(model[0], tmp_path / "v2.npz", version=np.array(2))
    with pytest.raises(ValueError, match=r"newer backprop \(version 2\); this one reads up to 1"):
        bp.load(path)


@pytest.mark.parametrize("version, pattern", [
    (np.array(0), "unknown format version 0"),
    (np.array(-3), "unknown format version -3"),
    (np.array(1.0), "malformed 'version'"),
    (np.array([1]), "malformed 'version'"),
    (np.array("1"), "malformed 'version'"),
])
def test_an_unknown_or_malformed_version_is_refused(model, tmp_path, version, pattern):
    path = rewrite(model[0], tmp_path / "bad.npz", version=version)
    with pytest.raises(ValueError, match=pattern):
        bp.load(path)


@pytest.mark.parametrize("key", ["format", "version", "architecture", "params"])
def test_a_missing_entry_is_refused(model, tmp_path, key):
    path = rewrite(model[0], tmp_path / "missing.npz", **{key: None})
    with pytest.raises(ValueError, match=f"no '{key}' entry"):
        bp.load(path)


def test_pickled_data_is_never_loaded(model, tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, params=np.array([1, "two", None], dtype=object))  # numpy pickles these
    with pytest.raises(ValueError, match="pickled data") as error:
        bp.load(path)
    assert str(path) in str(error.value)
    # Even beside a valid model, and under a name the loader would not otherwise read.
    path = rewrite(model[0], tmp_path / "extra.npz", extra=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled data \(entry 'extra'\), which is never loaded"):
        bp.load(path)


# -- inconsistent models ------------------------------------------------------------------------


def test_params_of_the_wrong_length_are_refused(model, tmp_path):
    path, net, _ = model
    longer = rewrite(path, tmp_path / "long.npz", params=np.append(net.params, np.float32(0)))
    with pytest.raises(ValueError, match=rf"params of shape \({net.n_params + 1},\); its "
                                         rf"architecture implies \({net.n_params},\)"):
        bp.load(longer)
    shorter = rewrite(path, tmp_path / "short.npz", params=net.params[:-1])
    with pytest.raises(ValueError, match="params of shape"):
        bp.load(shorter)
    square = rewrite(path, tmp_path / "2d.npz", params=net.params.reshape(1, -1))
    with pytest.raises(ValueError, match="params of shape"):
        bp.load(square)


@pytest.mark.parametrize("params, pattern", [
    (lambda p: p.astype(np.float64), "params of dtype float64; its architecture says float32"),
    (lambda p: p.astype(np.int32), "params of dtype int32"),
    (lambda p: np.where(np.arange(p.size) == 3, np.float32(np.nan), p), "NaN or Inf"),
    (lambda p: np.where(np.arange(p.size) == 0, np.float32(np.inf), p), "NaN or Inf"),
])
def test_params_of_the_wrong_kind_are_refused(model, tmp_path, params, pattern):
    path, net, _ = model
    bad = rewrite(path, tmp_path / "bad.npz", params=params(net.params))
    with pytest.raises(ValueError, match=pattern):
        bp.load(bad)


def test_params_in_the_other_byte_order_load_exactly(model, tmp_path):
    path, net, _ = model
    swapped = net.params.astype(net.params.dtype.newbyteorder())
    loaded = bp.load(rewrite(path, tmp_path / "swapped.npz", params=swapped))
    assert_same_bytes(loaded.params, net.params)


def test_invalid_architecture_json_is_refused(model, tmp_path):
    path = rewrite(model[0], tmp_path / "json.npz", architecture=np.array("{'layers': [4, 3"))
    with pytest.raises(ValueError, match="invalid 'architecture' entry"):
        bp.load(path)
    path = rewrite(model[0], tmp_path / "list.npz", architecture=np.array("[4, 3]"))
    with pytest.raises(ValueError, match="expected a JSON object"):
        bp.load(path)
    path = rewrite(model[0], tmp_path / "nan.npz",
                   architecture=np.array(str(members(model[0])["architecture"]).replace(
                       '"alpha": 0.0', '"alpha": NaN', 1)))
    with pytest.raises(ValueError, match="invalid 'architecture' entry"):
        bp.load(path)


def _set(path_in_document, value):
    def edit(document):
        *parents, last = path_in_document
        for key in parents:
            document = document[key]
        document[last] = value
    return edit


def _drop(key):
    def edit(document):
        del document[key]
    return edit


@pytest.mark.parametrize("edit, pattern", [
    (_set(["layers", 0, "activation"], "swish"), "must be one of .*got 'swish'"),
    (_set(["layers", 0, "activation"], None), "activation is None"),
    (_set(["layers", 0, "activation"], "softmax"), "activation must be one of"),
    (_set(["layers", 1, "activation"], "tanh"), "output 'softmax' but the last layer applies"),
    (_set(["output"], "sigmoid"), "output 'sigmoid' but the last layer"),
    (_set(["layers", 1, "fan_in"], 5), "inconsistent architecture"),
    (_set(["layers", 0, "fan_in"], 0), "fan_in must be at least 1"),
    (_set(["layers", 0, "fan_out"], 6.0), "fan_out must be an int"),
    (_set(["layers", 0, "fan_in"], True), "must be ints"),
    (_set(["layers", 0, "alpha"], "big"), "alpha is 'big'"),
    (_set(["layers", 1, "alpha"], 0.5), "alpha is 0.5"),
    (_set(["layers", 0, "inputs"], "all"), "inputs is 'all'"),
    (_set(["layers"], []), "lists no layers"),
    (_set(["layers"], [3, 4]), r"layers\[0\] is 3"),
    (_set(["loss"], "hinge"), "loss must be one of"),
    (_set(["loss"], "binary_cross_entropy"), "needs output 'sigmoid'"),
    (_set(["reduction"], "max"), "reduction must be one of"),
    (_set(["dtype"], "float16"), "unknown dtype 'float16'"),
    (_set(["dtype"], "float64"), "params of dtype float32; its architecture says float64"),
    (_set(["init"], "zeros"), "init must be one of"),
    (_set(["init"], "uniform"), "needs init_scale"),
    (_set(["seed"], "zero"), "'seed' is 'zero'"),
    (_set(["n_params"], 10), "declares 10 parameters but its layers hold"),
    (_set(["shuffle_rng"], {"bit_generator": "MT19937"}), "shuffle_rng"),
    (_drop("loss"), "'loss' is missing"),
    (_drop("layers"), "'layers' is missing"),
])
def test_an_inconsistent_architecture_is_refused(model, tmp_path, edit, pattern):
    path = with_architecture(model[0], tmp_path / "arch.npz", edit)
    with pytest.raises(ValueError, match=pattern) as error:
        bp.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("edit, pattern", [
    (_set(["class"], "Optimizer"), "unknown optimizer 'Optimizer'"),
    (_set(["class"], "Nadam"), "unknown optimizer 'Nadam'"),
    (_set(["class"], "_number"), "unknown optimizer"),
    (_set(["settings"], [0.01]), "settings is"),
    (_set(["settings", "betas"], [0.9, 1.5]), r"invalid Adam settings: betas\[1\] must be"),
    (_set(["settings", "momentum"], 0.9), "invalid Adam settings"),
    (_set(["steps"], -1), "steps is -1"),
    (_set(["steps"], 2.5), "steps is 2.5"),
    (_set(["n_state"], 1), "has 1 optimizer state buffers; Adam keeps 2"),
    (_set(["n_state"], 3), "has 3 optimizer state buffers; Adam keeps 2"),
])
def test_an_inconsistent_optimizer_record_is_refused(model, tmp_path, edit, pattern):
    path = with_optimizer_record(model[0], tmp_path / "opt.npz", edit)
    with pytest.raises(ValueError, match=pattern):
        bp.load(path, with_optimizer=True)
    bp.load(path)  # the network alone is still readable


@pytest.mark.parametrize("state, pattern", [
    (None, "no 'optimizer_state_1' entry"),
    (np.zeros(5, dtype=np.float32), r"optimizer state 1 of shape \(5,\)"),
    (lambda n: np.full(n, np.nan, dtype=np.float32), "optimizer state 1 containing NaN or Inf"),
    (lambda n: np.zeros(n, dtype=np.float64), "optimizer state 1 of dtype float64"),
])
def test_damaged_optimizer_state_is_refused(model, tmp_path, state, pattern):
    path, net, _ = model
    value = state(net.n_params) if callable(state) else state
    bad = rewrite(path, tmp_path / "state.npz", optimizer_state_1=value)
    with pytest.raises(ValueError, match=pattern):
        bp.load(bad, with_optimizer=True)
