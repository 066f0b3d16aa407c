"""backprop.callbacks: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau and TerminateOnNaN, each
driven both by hand with made-up logs (exact rules) and inside fit on small deterministic problems."""

import math
import os
import re
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN

# A digits subset small enough to over-fit: with this network, optimizer and seed the validation
# loss is lowest after epoch 3 (0-based) and then wanders higher (checked when written).
N_TRAIN = 60
BEST_EPOCH = 3


def digits_split():
    X, y = bp.datasets.load_digits()
    return X[:N_TRAIN], y[:N_TRAIN], X[1000:1200], y[1000:1200]


def overfitting_net():
    return bp.Network([64, 64, 10], seed=0)


def overfit(net, callbacks, epochs=40, **options):
    Xt, yt, Xv, yv = digits_split()
    return net.fit(Xt, yt, optimizer=bp.optim.SGD(lr=0.2, momentum=0.9), epochs=epochs, batch_size=10,
                   seed=0, validation_data=(Xv, yv), callbacks=callbacks, verbose=0, **options)


def feed(callback, values, key="val_loss", net=None):
    """Run a callback over made-up epochs whose logs hold `key`; returns what it answered."""
    net = net if net is not None else bp.Network([2, 2, 1], loss="mse", seed=0)
    callback.on_train_begin(net)
    answers = [callback.on_epoch_end(epoch, {"loss": 1.0, key: value}, net)
               for epoch, value in enumerate(values)]
    callback.on_train_end(net)
    return answers


# -- EarlyStopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("patience, values, stop_at", [
    (0, [3.0, 2.0, 2.5], 2),                  # the first epoch without improvement stops
    (1, [3.0, 2.0, 2.5], 2),                  # Keras's count: stop once `patience` epochs failed
    (2, [3.0, 2.0, 2.5, 2.1, 1.0], 3),
    (2, [3.0, 2.0, 2.5, 1.9, 2.4, 2.0], 5),   # an improvement resets the count
    (3, [5.0, 4.0, 3.0, 2.0, 1.0], None),
    (1, [1.0, math.nan, 0.5], 1),             # NaN is never an improvement
])
def test_early_stopping_patience_rule(patience, values, stop_at):
    callback = EarlyStopping(patience=patience)
    answers = feed(callback, values)
    stops = [epoch for epoch, answer in enumerate(answers) if answer]
    assert stops == ([] if stop_at is None else [stop_at])
    assert callback.stopped_epoch == stop_at


def test_early_stopping_min_delta_and_mode():
    smaller = EarlyStopping(min_delta=0.1, patience=1)
    assert feed(smaller, [1.0, 0.95, 0.8]) == [None, True, None]   # 0.05 is not enough
    assert smaller.best == 0.8
    larger = EarlyStopping(monitor="val_accuracy", patience=1)        # auto: accuracies go up
    assert larger.maximize
    feed(larger, [0.5, 0.7, 0.6], key="val_accuracy")
    assert (larger.best, larger.best_epoch) == (0.7, 1)
    forced = EarlyStopping(monitor="val_accuracy", mode="min", patience=5)
    feed(forced, [0.5, 0.7, 0.6], key="val_accuracy")
    assert forced.best == 0.5


def test_early_stopping_stops_and_restores_the_best_weights():
    Xt, yt, Xv, yv = digits_split()
    net = overfitting_net()
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    history = overfit(net, [stopper])
    val_loss = history["val_loss"]
    best = int(np.argmin(val_loss))
    assert best == BEST_EPOCH
    assert stopper.best_epoch == best and stopper.best == val_loss[best]
    assert stopper.stopped_epoch == best + 3 and len(history) == best + 4
    assert net.loss(Xv, yv) == pytest.approx(min(val_loss), rel=1e-6)
    # the restored weights are those a run of best + 1 epochs ends with
    twin = overfitting_net()
    overfit(twin, [], epochs=best + 1)
    assert net.params.tobytes() == twin.params.tobytes()


def test_early_stopping_restores_even_without_stopping():
    _, _, Xv, yv = digits_split()
    net = overfitting_net()
    history = overfit(net, [EarlyStopping(patience=100)], epochs=12)
    assert len(history) == 12
    assert net.loss(Xv, yv) == pytest.approx(min(history["val_loss"]), rel=1e-6)
    assert history["val_loss"][-1] > min(history["val_loss"])


def test_early_stopping_without_restoring_keeps_the_last_weights():
    net = overfitting_net()
    overfit(net, [EarlyStopping(patience=3, restore_best_weights=False)])
    twin = overfitting_net()
    overfit(twin, [], epochs=BEST_EPOCH + 4)
    assert net.params.tobytes() == twin.params.tobytes()


def test_early_stopping_falls_back_to_the_training_loss_with_a_warning():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    stopper = EarlyStopping(patience=2)
    with pytest.warns(UserWarning, match=r"EarlyStopping: 'val_loss' is not logged .*monitoring 'loss'"):
        history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.5), epochs=20, batch_size=None,
                          callbacks=[stopper], verbose=0)
    assert stopper.best == min(history["loss"])


def test_early_stopping_unknown_metric_is_an_error():
    net = overfitting_net()
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_acc', which is not among the "
                                         r"logged metrics: accuracy, loss, val_accuracy, val_loss"):
        overfit(net, [EarlyStopping(monitor="val_acc")], epochs=2)


def test_early_stopping_can_be_reused_across_fits():
    stopper = EarlyStopping(patience=3)
    first = overfit(overfitting_net(), [stopper])
    second = overfit(overfitting_net(), [stopper])
    assert len(first) == len(second) and stopper.best_epoch == BEST_EPOCH


# -- ModelCheckpoint ------------------------------------------------------------------------------


def test_checkpoint_best_only_writes_only_on_improvement(tmp_path):
    path = tmp_path / "best.npz"
    net = bp.Network([2, 3, 1], loss="mse", seed=0)
    checkpoint = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    checkpoint.on_train_begin(net)
    changed, written = [], []
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.5, 0.4, 0.9]):
        net.params = net.params + 1.0  # a new "epoch" of weights each time
        checkpoint.on_epoch_end(epoch, {"loss": 2.0, "val_loss": value}, net)
        if path.exists() and os.stat(path).st_mtime_ns != 0:
            changed.append(epoch)
            written.append(net.params.copy())
            # Date the file back, so a rewrite shows even within the clock's granularity.
            os.utime(path, ns=(0, 0))
            if hasattr(bp, "load"):
                assert bp.load(path).params.tobytes() == net.params.tobytes()
    assert changed == [0, 1, 4]
    assert [epoch for epoch, _ in checkpoint.saved] == [0, 1, 4]
    assert checkpoint.best == 0.4
    if hasattr(bp, "load"):
        assert bp.load(path).params.tobytes() == written[-1].tobytes()


def test_checkpoint_in_fit_keeps_the_best_epoch(tmp_path):
    path = tmp_path / "model.npz"
    net = overfitting_net()
    snapshots = []
    history = overfit(net, [lambda epoch, logs: snapshots.append(net.params.copy()),
                            ModelCheckpoint(str(path), save_best_only=True)], epochs=10)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind
    if hasattr(bp, "load"):
        best = int(np.argmin(history["val_loss"]))
        loaded = bp.load(path)
        assert loaded.params.tobytes() == snapshots[best].tobytes()
        _, _, Xv, yv = digits_split()
        assert loaded.loss(Xv, yv) == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_checkpoint_every_epoch_with_a_file_name_template(tmp_path):
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    X, y = bp.datasets.xor()
    template = str(tmp_path / "xor-{epoch:02d}-{loss:.3f}.npz")
    checkpoint = ModelCheckpoint(template)
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.5), epochs=3, batch_size=None,
                      callbacks=[checkpoint], verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"xor-{e + 1:02d}-{history['loss'][e]:.3f}.npz" for e in range(3)]
    assert [target for _, target in checkpoint.saved] == [str(tmp_path / name) for name in names]


def test_checkpoint_template_naming_an_unknown_metric(tmp_path):
    net = bp.Network([2, 4, 1], loss="mse", seed=0)
    X, y = bp.datasets.xor()
    with pytest.raises(ValueError, match=r"names 'val_loss', which is not among epoch and the logged metrics"):
        net.fit(X, y, epochs=1, batch_size=None, callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss}.npz"))],
                verbose=0)


@pytest.mark.skipif(not hasattr(bp, "load"), reason="backprop.load not available yet")
def test_checkpoint_can_store_the_optimizer(tmp_path):
    path = tmp_path / "with-optimizer.npz"
    net = bp.Network([2, 4, 1], loss="mse", seed=0)
    X, y = bp.datasets.xor()
    optimizer = bp.optim.Adam(lr=0.01)
    net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=None,
            callbacks=[ModelCheckpoint(path, save_optimizer=True)], verbose=0)
    plain = ModelCheckpoint(tmp_path / "plain.npz")
    net.fit(X, y, epochs=1, batch_size=None, callbacks=[plain], verbose=0)
    with np.load(path, allow_pickle=False) as stored:
        assert "optimizer" in stored.files
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as stored:
        assert "optimizer" not in stored.files


# -- ReduceLROnPlateau ----------------------------------------------------------------------------


def plateau(values, **settings):
    callback = ReduceLROnPlateau(**settings)
    callback.optimizer = bp.optim.SGD(lr=1.0)
    lrs = []
    net = bp.Network([2, 2, 1], loss="mse", seed=0)
    callback.on_train_begin(net)
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"loss": value, "val_loss": value}, net)
        lrs.append(callback.optimizer.lr)
    return callback, lrs


def test_plateau_reduces_after_patience_epochs_without_improvement():
    callback, lrs = plateau([1.0] * 7, factor=0.5, patience=2)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert callback.reductions == [(2, 0.5), (4, 0.25), (6, 0.125)]


def test_plateau_improvements_reset_the_count_and_min_delta_counts():
    _, lrs = plateau([1.0, 0.9, 0.8, 0.79995, 0.7, 0.7, 0.7], factor=0.5, patience=2)
    # 0.79995 improves by less than the default min_delta 1e-4
    assert lrs == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]


def test_plateau_cooldown_and_min_lr():
    _, lrs = plateau([1.0] * 9, factor=0.1, patience=1, cooldown=2, min_lr=0.005)
    # reduce after epoch 1; epochs 2 and 3 cool down, uncounted; reduce after 4, and after 7 to min_lr
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.005, 0.005])


def test_plateau_needs_an_optimizer():
    callback = ReduceLROnPlateau()
    with pytest.raises(RuntimeError, match=r"ReduceLROnPlateau has no optimizer"):
        callback.on_epoch_end(0, {"val_loss": 1.0}, None)


def test_plateau_in_fit_changes_the_optimizers_lr_after_patience():
    # A rate so small that the loss never improves by min_delta: every epoch is a plateau.
    X, y = bp.datasets.xor()
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    optimizer = bp.optim.SGD(lr=1e-6)
    callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_delta=1.0)
    history = net.fit(X, y, optimizer=optimizer, epochs=8, batch_size=None, callbacks=[callback],
                      verbose=0)
    # epoch 0 sets the best; epochs 1-3 fail, so the rate halves after epoch 3 and again after 6
    assert history["lr"] == pytest.approx([1e-6] * 4 + [5e-7] * 3 + [2.5e-7])
    assert optimizer.lr == pytest.approx(2.5e-7)
    assert [epoch for epoch, _ in callback.reductions] == [3, 6]


# -- TerminateOnNaN -------------------------------------------------------------------------------


def exploding_fit(net, callbacks, batch_size, lr=1e30):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    return net.fit(X, Y, optimizer=bp.optim.SGD(lr=lr), epochs=50, batch_size=batch_size,
                   callbacks=callbacks, verbose=0)


def exploding_net():
    return bp.Network([3, 4, 2], activation="identity", loss="mse", dtype="float64", seed=0)


# Rates at which these runs blow up after two full-batch epochs, or in the middle of the second
# mini-batch epoch (checked when written).
@pytest.mark.parametrize("batch_size, lr", [(None, 1e30), (3, 0.4)], ids=["full-batch", "mini-batch"])
def test_terminate_on_nan_stops_cleanly_with_the_last_good_weights(batch_size, lr):
    stopped = exploding_net()
    terminate = TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match=r"became NaN or Inf in epoch \d+, batch \d+"):
        history = exploding_fit(stopped, [terminate], batch_size, lr)
    assert np.isfinite(stopped.params).all()
    assert 1 <= len(history) == terminate.stopped_epoch < 50
    assert all(np.isfinite(history["loss"]))
    # the same as the run that raises: same weights, same finished epochs
    raising = exploding_net()
    with pytest.raises(FloatingPointError) as error:
        exploding_fit(raising, [], batch_size, lr)
    assert stopped.params.tobytes() == raising.params.tobytes()
    assert error.value.history.history == history.history
    assert terminate.message == str(error.value)


def test_terminate_on_nan_runs_the_other_callbacks_end():
    ended = []

    class End(bp.Callback):
        def on_train_end(self, net):
            ended.append(True)

    with pytest.warns(RuntimeWarning):
        exploding_fit(exploding_net(), [TerminateOnNaN(), End()], None)
    assert ended == [True]


def test_terminate_on_nan_also_stops_on_a_non_finite_metric():
    callback = TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match=r"val_loss not finite after epoch 2"):
        answers = feed(callback, [1.0, math.inf, 0.5])
    assert answers == [None, True, None]
    assert callback.stopped_epoch == 1


def test_terminate_on_nan_is_quiet_when_all_is_well():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    callback = TerminateOnNaN()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = net.fit(X, y, epochs=5, batch_size=None, callbacks=[callback], verbose=0)
    assert len(history) == 5 and callback.stopped_epoch is None and callback.message is None


# -- the Callback protocol ------------------------------------------------------------------------


def test_fit_gives_callbacks_the_optimizer_and_every_hook():
    X, y = bp.datasets.xor()
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    optimizer = bp.optim.Adam(lr=0.01)
    calls = []

    class Recorder(bp.Callback):
        def on_train_begin(self, network):
            calls.append(("begin", self.optimizer is optimizer))

        def on_epoch_begin(self, epoch, network):
            calls.append(("epoch begin", epoch, self.optimizer.lr))
            self.optimizer.lr = 0.02 * (epoch + 1)  # a callback may steer the rate itself

        def on_epoch_end(self, epoch, logs, network):
            calls.append(("epoch end", epoch))
            logs["loss"] = -1.0  # a callback's changes stay in its own copy

        def on_train_end(self, network):
            calls.append(("end",))

    seen = []
    history = net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=None,
                      callbacks=[Recorder(), lambda epoch, logs: seen.append(logs["loss"])], verbose=0)
    assert calls == [("begin", True), ("epoch begin", 0, 0.01), ("epoch end", 0),
                     ("epoch begin", 1, 0.02), ("epoch end", 1), ("end",)]
    assert seen == history["loss"] and min(seen) > 0
    assert optimizer.lr == 0.04


def test_logs_carry_lr_only_when_the_rate_can_change():
    X, y = bp.datasets.xor()
    seen = []
    net = bp.Network([2, 4, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    net.fit(X, y, epochs=1, batch_size=None, callbacks=[lambda e, logs: seen.append(set(logs))], verbose=0)
    net.fit(X, y, epochs=1, batch_size=None, callbacks=[lambda e, logs: seen.append(set(logs)),
                                                         ReduceLROnPlateau(monitor="loss")], verbose=0)
    assert seen == [{"loss", "accuracy"}, {"loss", "accuracy", "lr"}]


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: EarlyStopping(patience=-1), ValueError, r"patience must be >= 0"),
    (lambda: EarlyStopping(patience=1.5), TypeError, r"patience must be an int"),
    (lambda: EarlyStopping(mode="up"), ValueError, r"mode must be 'auto', 'min' or 'max'"),
    (lambda: EarlyStopping(min_delta=-0.1), ValueError, r"min_delta must be in \[0"),
    (lambda: EarlyStopping(monitor=""), TypeError, r"monitor must be the name of a logged metric"),
    (lambda: ModelCheckpoint(3), TypeError, r"path must be a str or os.PathLike"),
    (lambda: ModelCheckpoint("m.npz", mode="best"), ValueError, r"mode must be"),
    (lambda: ReduceLROnPlateau(factor=1.0), ValueError, r"factor must be in \(0.0, 1.0\)"),
    (lambda: ReduceLROnPlateau(factor=0), ValueError, r"factor must be in \(0.0, 1.0\)"),
    (lambda: ReduceLROnPlateau(min_lr=-1), ValueError, r"min_lr must be in \[0"),
    (lambda: ReduceLROnPlateau(cooldown=-2), ValueError, r"cooldown must be >= 0"),
    (lambda: ReduceLROnPlateau(patience="3"), TypeError, r"patience must be an int"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_reprs():
    assert repr(EarlyStopping(patience=2)) == ("EarlyStopping(monitor='val_loss', min_delta=0.0, patience=2, "
                                               "mode='auto', restore_best_weights=True)")
    assert re.fullmatch(r"ReduceLROnPlateau\(monitor='loss', factor=0\.5, .*\)",
                        repr(ReduceLROnPlateau(monitor="loss", factor=0.5)))
    assert repr(TerminateOnNaN()) == "TerminateOnNaN()"
    assert bp.EarlyStopping is EarlyStopping and bp.callbacks.ModelCheckpoint is ModelCheckpoint
