"""Network.fit: whole training runs against reference.train_sgd, the history, progress output,
callbacks, stopping on a non-finite loss, batch-size handling, and that it really learns."""

import io
import sys
import re
import warnings

import numpy as np
import pytest

import backprop as bp
import reference as ref
from conftest import tolerances

SIZES = [5, 8, 3]
N_ROWS = 40


def classification_data(seed=0, m=N_ROWS):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, SIZES[0]))
    y = rng.integers(0, SIZES[-1], m)
    return X, y


def fit_orders(seed, n_rows, epochs):
    """The row orders fit(seed=seed) visits: one permutation per epoch from one generator."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_rows).astype(np.int64) for _ in range(epochs)]


def fit_orders_from_network_seed(net, epochs, n_rows):
    """The orders fit draws when given no seed: from the network's own shuffling stream (a
    fresh network with the fitted one's seed starts that stream where fit started it)."""
    return [net.shuffle_rng.permutation(n_rows).astype(np.int64) for _ in range(epochs)]


def snapshots(net):
    """A callback recording the params after every epoch, and the list it fills."""
    taken = []

    def record(epoch, logs):
        taken.append(net.params.copy())

    return record, taken


# -- whole runs against the oracle ----------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch_size", [1, 7, None], ids=["single-sample", "uneven-7", "full-batch"])
def test_fit_matches_reference_train_sgd(batch_size, reduction, dtype):
    X, y = classification_data()
    net = bp.Network(SIZES, activation="tanh", reduction=reduction, dtype=dtype, seed=1)
    start = net.params.copy()
    epochs = 4
    config = {"lr": 0.05 if reduction == "mean" else 0.01, "momentum": 0.9}
    history = net.fit(X, y, optimizer=bp.optim.SGD(**config), epochs=epochs, batch_size=batch_size,
                      seed=123, verbose=0)
    expected, losses = ref.train_sgd(start, SIZES, "tanh", "softmax", "cross_entropy", X.astype(dtype), y,
                                     batch_size=batch_size or N_ROWS, epochs=epochs,
                                     orders=fit_orders(123, N_ROWS, epochs), reduction=reduction,
                                     **config)
    steps = epochs * -(-N_ROWS // (batch_size or N_ROWS))
    tol = tolerances(dtype, steps)
    np.testing.assert_allclose(net.params, expected, **tol)
    np.testing.assert_allclose(history["loss"], losses, **tol)


@pytest.mark.parametrize("config", [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
], ids=["plain", "nesterov-wd"])
def test_fit_mse_regression_matches_reference(config, dtype):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 4))
    Y = rng.standard_normal((30, 2))
    net = bp.Network([4, 6, 5, 2], activation=["relu", "sigmoid"], loss="mse", dtype=dtype, seed=4)
    start = net.params.copy()
    history = net.fit(X, Y, optimizer=bp.optim.SGD(**config), epochs=3, batch_size=4, seed=9, verbose=0)
    expected, losses = ref.train_sgd(start, [4, 6, 5, 2], ["relu", "sigmoid"], "identity", "mse",
                                     X.astype(dtype), Y, batch_size=4, epochs=3,
                                     orders=fit_orders(9, 30, 3), **config)
    tol = tolerances(dtype, 8 * 24)
    np.testing.assert_allclose(net.params, expected, **tol)
    np.testing.assert_allclose(history["loss"], losses, **tol)
    assert set(history.history) == {"loss"}


def test_shuffle_false_visits_rows_in_order(dtype):
    X, y = classification_data(2)
    net = bp.Network(SIZES, activation="sigmoid", dtype=dtype, seed=2)
    start = net.params.copy()
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1), epochs=3, batch_size=7, shuffle=False,
                      verbose=0)
    in_order = [np.arange(N_ROWS)] * 3
    expected, losses = ref.train_sgd(start, SIZES, "sigmoid", "softmax", "cross_entropy", X.astype(dtype), y,
                                     lr=0.1, batch_size=7, epochs=3, orders=in_order)
    tol = tolerances(dtype, 8 * 18)
    np.testing.assert_allclose(net.params, expected, **tol)
    np.testing.assert_allclose(history["loss"], losses, **tol)
    # and a shuffled run is really a different run
    shuffled = bp.Network(SIZES, activation="sigmoid", dtype=dtype, seed=2)
    shuffled.fit(X, y, optimizer=bp.optim.SGD(lr=0.1), epochs=3, batch_size=7, seed=0, verbose=0)
    assert not np.allclose(shuffled.params, net.params, **tol)


def test_without_a_seed_the_network_seed_fixes_the_run():
    X, y = classification_data(3)
    runs = []
    for _ in range(2):
        net = bp.Network(SIZES, seed=5)
        net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=8, verbose=0)
        runs.append(net.params.tobytes())
    assert runs[0] == runs[1]
    other = bp.Network(SIZES, seed=5)
    other.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=8, seed=77,
              verbose=0)
    assert other.params.tobytes() != runs[0]


def test_progress_display_does_not_change_the_result(capsys):
    # verbose=1 splits an epoch into several native calls at batch boundaries.
    X, y = classification_data(4, m=100)
    quiet = bp.Network(SIZES, seed=6)
    shown = bp.Network(SIZES, seed=6)
    h_quiet = quiet.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=1,
                        seed=1, verbose=0)
    h_shown = shown.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=1,
                        seed=1, verbose=1)
    assert shown.params.tobytes() == quiet.params.tobytes()
    assert h_shown["accuracy"] == h_quiet["accuracy"]
    # the epoch loss is summed over the calls, so only its last bits may differ
    np.testing.assert_allclose(h_shown["loss"], h_quiet["loss"], rtol=1e-12)


# -- history ----------------------------------------------------------------------------------------


def test_history_of_a_classifier_with_validation(dtype):
    X, y = classification_data(5)
    Xv, yv = classification_data(6, m=15)
    net = bp.Network(SIZES, activation="tanh", dtype=dtype, seed=3)
    record, taken = snapshots(net)
    start = net.params.copy()
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.2), epochs=5, batch_size=None,
                      validation_data=(Xv, yv), callbacks=[record], verbose=0)
    assert isinstance(history, bp.History)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 5 for values in history.history.values())
    assert history.epoch == [0, 1, 2, 3, 4] and len(history) == 5
    assert "val_loss" in history and "nothing" not in history
    assert re.fullmatch(r"History\(epochs=5, last=\{.*'val_accuracy': .*\}\)", repr(history))
    # Full batch: epoch e's loss and accuracy are those of the weights it started from, and the
    # validation metrics those of the weights it ended with.
    before = [start] + taken[:-1]
    for epoch in range(5):
        loss = ref.mlp_loss(before[epoch], SIZES, "tanh", "softmax", "cross_entropy", X.astype(dtype), y)
        assert history["loss"][epoch] == pytest.approx(loss, rel=tolerances(dtype, 8)["rtol"])
        y_hat = ref.mlp_forward(before[epoch], SIZES, "tanh", "softmax", X.astype(dtype))[1][-1]
        assert history["accuracy"][epoch] == np.mean(y_hat.argmax(axis=1) == y)
        val_loss = ref.mlp_loss(taken[epoch], SIZES, "tanh", "softmax", "cross_entropy", Xv.astype(dtype), yv)
        assert history["val_loss"][epoch] == pytest.approx(val_loss, rel=tolerances(dtype, 8)["rtol"])
        y_hat = ref.mlp_forward(taken[epoch], SIZES, "tanh", "softmax", Xv.astype(dtype))[1][-1]
        assert history["val_accuracy"][epoch] == np.mean(y_hat.argmax(axis=1) == yv)


def test_training_accuracy_takes_the_first_of_tied_outputs(dtype):
    # All weights zero: every output is the same, and the prediction is the first class (as
    # argmax), whose rows alone count as correct. The full batch's accuracy is that of the
    # weights the epoch started from.
    X, y = classification_data(7)
    net = bp.Network(SIZES, activation="tanh", dtype=dtype, seed=3)
    net.params[...] = 0
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1), epochs=1, batch_size=None, verbose=0)
    assert 0 < np.mean(y == 0) < 1
    assert history["accuracy"][0] == np.mean(y == 0)


def test_history_of_a_regressor_and_zero_epochs():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 1))
    net = bp.Network([3, 4, 1], loss="mse", seed=0)
    history = net.fit(X, Y, epochs=3, batch_size=4, validation_data=(X[:5], Y[:5, 0]), verbose=0)
    assert set(history.history) == {"loss", "val_loss"}
    assert len(history) == 3
    before = net.params.tobytes()
    empty = net.fit(X, Y, epochs=0, batch_size=4, verbose=0)
    assert len(empty) == 0 and empty.history == {}
    assert net.params.tobytes() == before


def test_binary_classifier_history_has_accuracy():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 3, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    history = net.fit(X, y, epochs=2, batch_size=None, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert all(a in (0.0, 0.25, 0.5, 0.75, 1.0) for a in history["accuracy"])


# -- output ----------------------------------------------------------------------------------------


def test_verbose_0_prints_nothing(capsys):
    X, y = classification_data()
    bp.Network(SIZES).fit(X, y, epochs=3, batch_size=8, validation_data=(X, y), verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    X, y = classification_data()
    history = bp.Network(SIZES).fit(X, y, epochs=3, batch_size=8, validation_data=(X, y), verbose=2)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines):
        assert line.startswith(f"epoch {epoch + 1}/3")
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert re.search(rf"\b{key} {history[key][epoch]:.4f}\b", line), (key, line)
    assert captured.err == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_1_shows_progress_on_a_terminal(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    X, y = classification_data(m=200)
    bp.Network(SIZES).fit(X, y, epochs=3, batch_size=4, verbose=1)
    assert capsys.readouterr().out == ""
    err = terminal.getvalue()
    assert "batch" in err  # the bar (tqdm's or the plain one) counts batches
    assert "\r" in err  # redrawn in place
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in err


def test_verbose_1_into_a_log_writes_epoch_lines_without_redraws(capsys):
    X, y = classification_data(m=200)
    bp.Network(SIZES).fit(X, y, epochs=3, batch_size=4, verbose=1)
    captured = capsys.readouterr()
    assert captured.out == "" and "\r" not in captured.err
    assert [line.split()[1] for line in captured.err.splitlines()] == ["1/3", "2/3", "3/3"]


# -- callbacks ----------------------------------------------------------------------------------------


def test_a_callback_returning_true_stops_training():
    X, y = classification_data()
    net = bp.Network(SIZES, seed=0)
    seen = []

    def stop_after_second(epoch, logs):
        seen.append((epoch, sorted(logs)))
        return epoch == 1

    history = net.fit(X, y, epochs=10, batch_size=8, callbacks=[stop_after_second], verbose=0)
    assert len(history) == 2
    assert seen == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])]
    # the weights are those after the second epoch: equal to a two-epoch run
    twin = bp.Network(SIZES, seed=0)
    twin.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert twin.params.tobytes() == net.params.tobytes()


def test_callback_objects_get_every_hook():
    X, y = classification_data()
    net = bp.Network(SIZES, seed=0)
    calls = []

    class Recorder(bp.Callback):
        def on_train_begin(self, network):
            calls.append(("begin", network is net))

        def on_epoch_end(self, epoch, logs, network):
            calls.append(("epoch", epoch, network is net))
            return None  # not a stop

        def on_train_end(self, network):
            calls.append(("end", network is net))

    net.fit(X, y, epochs=3, batch_size=8, callbacks=[Recorder(), bp.LambdaCallback(lambda e, logs: False)],
            verbose=0)
    assert calls == [("begin", True), ("epoch", 0, True), ("epoch", 1, True), ("epoch", 2, True),
                     ("end", True)]


# -- non-finite losses --------------------------------------------------------------------------------


def _diverging_run(dtype, X, Y, lr, batch_size):
    """Train until fit raises; returns the network, its params before training and after every
    finished epoch (so taken[-1] is the last state fit completed), and the error message."""
    net = bp.Network([3, 4, 2], activation="identity", loss="mse", dtype=dtype, seed=0)
    record, taken = snapshots(net)
    taken.append(net.params.copy())
    with pytest.raises(FloatingPointError, match=r"NaN or Inf in epoch \d+, batch \d+") as error:
        net.fit(X, Y, optimizer=bp.optim.SGD(lr=lr), epochs=50, batch_size=batch_size,
                callbacks=[record], verbose=0)
    return net, taken, str(error.value)


def regression_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3)), rng.standard_normal((20, 2))


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_huge_learning_rate_stops_with_the_last_good_weights(dtype_name):
    # Full batch: one step per epoch, so the snapshot after the last finished epoch holds the
    # weights of the last good step; the failing step made no update.
    X, Y = regression_data()
    net, taken, message = _diverging_run(dtype_name, X, Y, lr=1e30, batch_size=None)
    assert len(taken) >= 2  # at least one step succeeded before the failure
    assert f"epoch {len(taken)}, batch 1" in message
    assert np.isfinite(net.params).all()
    assert net.params.tobytes() == taken[-1].tobytes()


def test_huge_learning_rate_mid_epoch_keeps_the_last_good_step(dtype):
    # Mini-batches: the failure comes mid-epoch; replaying the same batches one train_step at a
    # time, stopping at the first refused step, must leave exactly the same weights.
    X, Y = regression_data()
    net, taken, message = _diverging_run(dtype, X, Y, lr=1e30, batch_size=3)
    epoch, batch = map(int, re.search(r"epoch (\d+), batch (\d+)", message).groups())
    replay = bp.Network([3, 4, 2], activation="identity", loss="mse", dtype=dtype, seed=0)
    opt = bp.optim.SGD(lr=1e30)
    steps = 0
    with pytest.raises(FloatingPointError):
        for order in fit_orders_from_network_seed(replay, 50, 20):
            for start in range(0, 20, 3):
                rows = order[start:start + 3]
                replay.train_step(X[rows], Y[rows], opt)
                steps += 1
    assert steps == (epoch - 1) * 7 + batch - 1
    assert np.isfinite(net.params).all()
    assert net.params.tobytes() == replay.params.tobytes()


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_data_scaled_to_1e30_stops_with_finite_weights(dtype_name):
    X, Y = regression_data()
    # In float32 the loss (summed in double) stays finite while the gradient overflows: the
    # update itself must be refused, not only a non-finite loss.
    net, taken, message = _diverging_run(dtype_name, X * 1e30, Y, lr=0.1, batch_size=None)
    assert np.isfinite(net.params).all(), f"non-finite weights left in place after: {message}"
    assert all(np.isfinite(snapshot).all() for snapshot in taken)
    assert net.params.tobytes() == taken[-1].tobytes()
    assert f"epoch {len(taken)}, batch 1" in message


# -- batch sizes ----------------------------------------------------------------------------------------


def test_batch_size_larger_than_the_data_warns_and_uses_the_full_batch(dtype):
    X, y = classification_data()
    clipped = bp.Network(SIZES, dtype=dtype, seed=0)
    with pytest.warns(UserWarning, match=rf"batch_size 1000 is larger than the {N_ROWS} samples"):
        clipped.fit(X, y, epochs=2, batch_size=1000, seed=0, verbose=0)
    full = bp.Network(SIZES, dtype=dtype, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full.fit(X, y, epochs=2, batch_size=None, seed=0, verbose=0)
        exact = bp.Network(SIZES, dtype=dtype, seed=0)
        exact.fit(X, y, epochs=2, batch_size=N_ROWS, seed=0, verbose=0)
    assert clipped.params.tobytes() == full.params.tobytes() == exact.params.tobytes()


@pytest.mark.parametrize("batch_size, error, pattern", [
    (0, ValueError, r"batch_size must be at least 1"),
    (-3, ValueError, r"batch_size must be at least 1"),
    (2.5, TypeError, r"batch_size must be an int or None"),
    ("8", TypeError, r"batch_size must be an int or None"),
])
def test_bad_batch_size(batch_size, error, pattern):
    X, y = classification_data()
    net = bp.Network(SIZES)
    before = net.params.tobytes()
    with pytest.raises(error, match=pattern):
        net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)
    assert net.params.tobytes() == before


def test_numpy_integer_batch_size_and_epochs():
    X, y = classification_data()
    history = bp.Network(SIZES).fit(X, y, epochs=np.int64(2), batch_size=np.int32(8), verbose=0)
    assert len(history) == 2


def test_default_optimizer_is_sgd_with_momentum():
    X, y = classification_data()
    implicit = bp.Network(SIZES, seed=0)
    implicit.fit(X, y, epochs=2, batch_size=8, seed=0, verbose=0)
    explicit = bp.Network(SIZES, seed=0)
    explicit.fit(X, y, optimizer=bp.optim.SGD(lr=0.01, momentum=0.9), epochs=2, batch_size=8, seed=0,
                 verbose=0)
    assert implicit.params.tobytes() == explicit.params.tobytes()


def test_bp_fit_function_is_the_method():
    X, y = classification_data()
    a, b = bp.Network(SIZES, seed=0), bp.Network(SIZES, seed=0)
    bp.fit(a, X, y, epochs=2, batch_size=8, seed=0, verbose=0)
    b.fit(X, y, epochs=2, batch_size=8, seed=0, verbose=0)
    assert a.params.tobytes() == b.params.tobytes()


# -- it learns ----------------------------------------------------------------------------------------

# Seed 0 solves XOR with both losses (checked when this test was written: seeds 0-4 all reach
# the four correct outputs with lr 0.5, momentum 0.9 and 2000 full-batch epochs; an unlucky seed
# can stall in the well-known local minimum, so only the documented seed is required).
XOR_SEED = 0


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_xor_is_learned_by_two_hidden_sigmoid_units(loss):
    X, y = bp.datasets.xor()
    solved = {}
    for seed in (XOR_SEED, 1, 2):
        net = bp.Network([2, 2, 1], activation="sigmoid", output="sigmoid", loss=loss,
                         dtype="float64", seed=seed)
        net.fit(X, y, optimizer=bp.optim.SGD(lr=0.5, momentum=0.9), epochs=2000, batch_size=None,
                verbose=0)
        y_hat = net.forward(X)[:, 0]
        solved[seed] = bool(np.array_equal(net.predict(X).ravel() if loss != "mse" else
                                           (y_hat > 0.5).astype(int), y[:, 0].astype(int)))
        if seed == XOR_SEED:
            assert solved[seed], (seed, y_hat)
            assert np.abs(y_hat - y[:, 0]).max() < 0.1, y_hat
    assert sum(solved.values()) >= 2, solved


def test_digits_held_out_accuracy():
    X, y = bp.datasets.load_digits(dtype="float32")
    X_train, X_test, y_train, y_test = bp.datasets.train_test_split(X, y, test_size=0.25, seed=0)
    net = bp.Network([64, 128, 10], activation="relu", loss="cross_entropy", seed=0)
    history = net.fit(X_train, y_train, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=15,
                      batch_size=32, validation_data=(X_test, y_test), verbose=0)
    accuracy = float((net.predict(X_test) == y_test).mean())
    assert accuracy >= 0.95, accuracy
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    assert history["loss"][-1] < history["loss"][0] / 3
