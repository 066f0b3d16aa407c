"""fit's options beyond the basic loop: validation_split, schedule, and Ctrl-C (KeyboardInterrupt)
leaving a usable network with the partial history on the exception."""

import inspect
import math
from fractions import Fraction
import os
import re
import signal
import sys
import threading

import numpy as np
import pytest

import backprop as bp
from backprop import schedules

SIZES = [5, 8, 3]
N_ROWS = 40


def classification_data(seed=0, m=N_ROWS):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, SIZES[0])), rng.integers(0, SIZES[-1], m)


def fit_orders(seed, n_rows, epochs):
    """The row orders fit(seed=seed) visits: one permutation per epoch from one generator."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_rows).astype(np.int64) for _ in range(epochs)]


def fit_module():
    return sys.modules["backprop.fit"]  # bp.fit is the function, which hides the module


# -- validation_split ------------------------------------------------------------------------------


@pytest.mark.parametrize("split, n_train", [(0.25, 30), (0.33, 26), (0.1, 36), (0.9, 4)])
def test_validation_split_holds_out_the_last_rows(split, n_train, dtype):
    # Keras's rule, in the decimal written: 1 - 0.9 is 0.09999999999999998 in floats
    assert n_train == math.floor(N_ROWS * (1 - Fraction(str(split))))
    X, y = classification_data()
    split_net = bp.Network(SIZES, dtype=dtype, seed=1)
    by_split = split_net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=4,
                             seed=5, validation_split=split, verbose=0)
    explicit_net = bp.Network(SIZES, dtype=dtype, seed=1)
    explicit = explicit_net.fit(X[:n_train], y[:n_train], optimizer=bp.optim.SGD(lr=0.1, momentum=0.9),
                                epochs=3, batch_size=4, seed=5,
                                validation_data=(X[n_train:], y[n_train:]), verbose=0)
    assert split_net.params.tobytes() == explicit_net.params.tobytes()
    assert by_split.history == explicit.history
    assert set(by_split.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_validation_split_of_regression_targets():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    net = bp.Network([3, 4, 2], loss="mse", seed=0)
    history = net.fit(X, Y, epochs=2, batch_size=None, validation_split=0.2, verbose=0)
    assert history["val_loss"][-1] == pytest.approx(net.loss(X[16:], Y[16:]), rel=1e-6)


@pytest.mark.parametrize("options, error, pattern", [
    ({"validation_split": 0.2, "validation_data": None}, None, None),
    ({"validation_split": 0.2, "validation_data": "both"}, ValueError,
     r"validation_data and validation_split are mutually exclusive"),
    ({"validation_split": 0.0}, ValueError, r"validation_split must be in \(0, 1\); got 0.0"),
    ({"validation_split": 1}, ValueError, r"validation_split must be in \(0, 1\); got 1"),
    ({"validation_split": -0.2}, ValueError, r"validation_split must be in \(0, 1\)"),
    ({"validation_split": math.nan}, ValueError, r"validation_split must be in \(0, 1\)"),
    ({"validation_split": "0.2"}, TypeError, r"validation_split must be a float in \(0, 1\); got str"),
    ({"validation_split": True}, TypeError, r"validation_split must be a float"),
    ({"validation_split": 1e-20}, None, None),  # one validation row
    ({"validation_split": 0.99}, ValueError, r"leaves 0 for training and 40 for validation"),
])
def test_validation_split_errors(options, error, pattern):
    X, y = classification_data()
    if options.get("validation_data") == "both":
        options = dict(options, validation_data=(X, y))
    net = bp.Network(SIZES)
    before = net.params.tobytes()
    if error is None:
        net.fit(X, y, epochs=1, verbose=0, **options)  # validation_data=None is no validation data
        return
    with pytest.raises(error, match=pattern):
        net.fit(X, y, epochs=1, verbose=0, **options)
    assert net.params.tobytes() == before


# -- schedule --------------------------------------------------------------------------------------


def test_schedule_sets_the_lr_before_each_epoch(dtype):
    # Full batch, no shuffling: one fit with a schedule equals one-epoch fits with the rate set
    # by hand, sharing the optimizer (and so its momentum).
    X, y = classification_data(1)
    schedule = schedules.LinearWarmup(2, 0.5, then=schedules.StepLR(2, gamma=0.5))
    scheduled = bp.Network(SIZES, dtype=dtype, seed=2)
    optimizer = bp.optim.SGD(lr=0.2, momentum=0.9)
    history = scheduled.fit(X, y, optimizer=optimizer, epochs=7, batch_size=None, shuffle=False,
                            schedule=schedule, verbose=0)
    expected_lrs = [schedule.lr_at(epoch, 0.2) for epoch in range(7)]
    assert history["lr"] == expected_lrs
    assert expected_lrs == pytest.approx([0.1, 0.15, 0.2, 0.2, 0.1, 0.1, 0.05])
    assert optimizer.lr == expected_lrs[-1]  # left at the last epoch's rate

    by_hand = bp.Network(SIZES, dtype=dtype, seed=2)
    manual = bp.optim.SGD(lr=0.2, momentum=0.9)
    losses = []
    for lr in expected_lrs:
        manual.lr = lr
        losses += by_hand.fit(X, y, optimizer=manual, epochs=1, batch_size=None, shuffle=False,
                              verbose=0)["loss"]
    assert scheduled.params.tobytes() == by_hand.params.tobytes()
    assert history["loss"] == losses


def test_schedule_base_lr_is_the_optimizers_unless_the_schedule_has_one():
    X, y = classification_data(2)
    net = bp.Network(SIZES, seed=0)
    history = net.fit(X, y, optimizer=bp.optim.Adam(lr=0.01), epochs=3, schedule=schedules.ExponentialLR(0.5),
                      verbose=0)
    assert history["lr"] == pytest.approx([0.01, 0.005, 0.0025])
    history = net.fit(X, y, optimizer=bp.optim.Adam(lr=0.01), epochs=3,
                      schedule=schedules.ExponentialLR(0.5, base_lr=0.1), verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_a_function_can_be_the_schedule():
    X, y = classification_data(3)
    net = bp.Network(SIZES, seed=0)
    history = net.fit(X, y, epochs=4, schedule=lambda epoch: 0.1 / (1 + epoch), verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])


def test_a_schedule_may_reach_zero():
    # Cosine annealing to 0 (as torch allows): the epoch at lr 0 makes no change.
    X, y = classification_data(4)
    net = bp.Network(SIZES, seed=0)
    taken = []
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1), epochs=4, batch_size=8,
                      schedule=schedules.CosineAnnealing(T_max=2),
                      callbacks=[lambda epoch, logs: taken.append(net.params.copy())], verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.0, 0.05])
    assert taken[2].tobytes() == taken[1].tobytes()
    assert taken[3].tobytes() != taken[2].tobytes()


@pytest.mark.parametrize("schedule, error, pattern", [
    (lambda epoch: -0.1, ValueError, r"schedule returned lr -0.1 for epoch 0; expected a finite lr >= 0"),
    (lambda epoch: math.inf if epoch == 1 else 0.1, ValueError, r"schedule returned lr inf for epoch 1"),
    (lambda epoch: "fast", TypeError, r"schedule returned 'fast' for epoch 0; expected a number"),
    (0.1, TypeError, r"schedule must be a backprop.schedules.Schedule or a function"),
])
def test_bad_schedules(schedule, error, pattern):
    X, y = classification_data()
    with pytest.raises(error, match=pattern):
        bp.Network(SIZES).fit(X, y, epochs=3, schedule=schedule, verbose=0)


def test_a_schedule_and_an_lr_changing_callback_conflict():
    X, y = classification_data()
    with pytest.raises(ValueError, match=r"schedule and ReduceLROnPlateau both set the learning rate"):
        bp.Network(SIZES).fit(X, y, epochs=3, schedule=schedules.StepLR(1),
                              callbacks=[bp.ReduceLROnPlateau(monitor="loss")], verbose=0)


# -- full-batch optimizers ----------------------------------------------------------------------


def symmetry_net():
    return bp.Network([6, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", init="uniform",
                      init_scale=0.3, dtype="float64", seed=0)


def test_a_full_batch_optimizer_runs_its_own_epochs():
    X, y = bp.datasets.symmetry(6)
    net = symmetry_net()
    seen = []
    history = net.fit(X, y, optimizer=bp.optim.LevenbergMarquardt(), epochs=5, batch_size=3,
                      validation_split=0.25, callbacks=[lambda epoch, logs: seen.append(sorted(logs))],
                      verbose=0)
    # one Levenberg-Marquardt step on all the training rows per epoch, whatever batch_size says
    by_hand = symmetry_net()
    optimizer = bp.optim.LevenbergMarquardt()
    n_train = math.floor(len(X) * 0.75)
    x, t = by_hand._data(X[:n_train], y[:n_train])
    losses = [optimizer.run_epoch(by_hand, x, t)["loss"] for _ in range(5)]
    assert history["loss"] == losses
    assert net.params.tobytes() == by_hand.params.tobytes()
    assert seen == [["loss", "val_loss"]] * 5


def test_training_ends_when_a_full_batch_optimizer_converges():
    X, y = bp.datasets.symmetry(6)
    optimizer = bp.optim.LevenbergMarquardt(mu_max=1e3)
    history = symmetry_net().fit(X, y, optimizer=optimizer, epochs=10_000, verbose=0)
    assert optimizer.converged and len(history) < 10_000


# -- Ctrl-C ----------------------------------------------------------------------------------------


class InterruptAfter(bp.Callback):
    def __init__(self, epoch):
        self.epoch = epoch
        self.ended = False

    def on_epoch_end(self, epoch, logs, net):
        if epoch == self.epoch:
            raise KeyboardInterrupt

    def on_train_end(self, net):
        self.ended = True


def test_keyboard_interrupt_from_a_callback_keeps_the_model_and_the_history(monkeypatch, capsys):
    closed = []
    original_close = fit_module().EpochProgress.close
    monkeypatch.setattr(fit_module().EpochProgress, "close",
                        lambda self: (closed.append(True), original_close(self)))
    X, y = classification_data(5)
    Xv, yv = classification_data(6, m=10)
    net = bp.Network(SIZES, seed=0)
    interrupt = InterruptAfter(2)
    with pytest.raises(KeyboardInterrupt) as error:
        net.fit(X, y, epochs=10, batch_size=8, seed=0, validation_data=(Xv, yv), callbacks=[interrupt],
                verbose=1)
    history = error.value.history
    assert isinstance(history, bp.History) and len(history) == 3
    assert history.epoch == [0, 1, 2] and set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert closed == [True]  # the progress bar was closed once
    assert not interrupt.ended  # an interrupted run does not end normally
    assert np.isfinite(net.params).all()
    assert net.loss(Xv, yv) == pytest.approx(history["val_loss"][-1], rel=1e-6)
    twin = bp.Network(SIZES, seed=0)
    twin.fit(X, y, epochs=3, batch_size=8, seed=0, verbose=0)
    assert twin.params.tobytes() == net.params.tobytes()
    # the model goes on training from where it stopped
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(net.params).all()


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_waits_for_the_end_of_the_native_call():
    # A real SIGINT at some moment mid-training: the interrupt lands between native calls, so
    # the optimizer's step count and the weights agree; replaying that many single steps in the
    # same row orders must give exactly the same weights.
    X, y = classification_data(7, m=200)
    net = bp.Network(SIZES, seed=3)
    optimizer = bp.optim.SGD(lr=0.01, momentum=0.9)
    # A shell starting a background job without job control makes it ignore SIGINT; fit then
    # rightly leaves the signal alone. This test wants Python's own handler in place.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as error:
            # verbose=1 splits each epoch into several native calls: more points to stop at
            net.fit(X, y, optimizer=optimizer, epochs=10**6, batch_size=4, seed=11, verbose=1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, inherited)
    steps = optimizer.steps
    batches_per_epoch = 50
    assert steps > 0
    finished = len(error.value.history)
    assert finished in (steps // batches_per_epoch, steps // batches_per_epoch - 1)

    replay = bp.Network(SIZES, seed=3)
    replay_optimizer = bp.optim.SGD(lr=0.01, momentum=0.9)
    epochs = steps // batches_per_epoch + 1
    done = 0
    for order in fit_orders(11, 200, epochs):
        for start in range(0, 200, 4):
            if done == steps:
                break
            rows = order[start:start + 4]
            replay.train_step(X[rows], y[rows], replay_optimizer)
            done += 1
    assert done == steps
    assert net.params.tobytes() == replay.params.tobytes()


def test_other_errors_carry_the_history_too():
    X, y = classification_data()

    def fail_at_1(epoch, logs):
        if epoch == 1:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed") as error:
        bp.Network(SIZES).fit(X, y, epochs=5, callbacks=[fail_at_1], verbose=0)
    assert len(error.value.history) == 2


# -- documentation ---------------------------------------------------------------------------------


def test_every_fit_option_is_documented():
    doc = bp.fit.__doc__
    options = [name for name, parameter in inspect.signature(bp.fit).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    assert {"validation_split", "schedule", "callbacks"} <= set(options)
    for name in options:
        assert re.search(rf"^\s+{name}:", doc, re.MULTILINE), name
