"""backprop.schedules: every schedule's values over 30 epochs against its formula written out here
(and against torch.optim.lr_scheduler when torch is installed), base-lr resolution, validation."""

import math

import numpy as np
import pytest

import backprop as bp
from backprop import schedules

EPOCHS = 30
BASE = 0.1
# The schedules compute in double with the same operations as the formulas below, up to order.
RTOL = 1e-12
ATOL = 1e-15


def cosine(base, eta_min, t_cur, t_i):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def step_lr(base, step_size, gamma, epoch):
    return base * gamma ** math.floor(epoch / step_size)


def warm_restart_position(epoch, t_0, t_mult):
    """SGDR's cycle bookkeeping, written as torch's closed form for integer epochs: the cycle
    n holding `epoch` is the largest with t_0 * (t_mult**n - 1) / (t_mult - 1) <= epoch."""
    if t_mult == 1:
        return epoch % t_0, t_0
    n = 0
    while t_0 * (t_mult ** (n + 1) - 1) // (t_mult - 1) <= epoch:
        n += 1
    return epoch - t_0 * (t_mult ** n - 1) // (t_mult - 1), t_0 * t_mult ** n


CASES = {
    "step": (lambda: schedules.StepLR(step_size=7, gamma=0.5),
             lambda e: step_lr(BASE, 7, 0.5, e)),
    "step-every-epoch": (lambda: schedules.StepLR(1, gamma=0.9),
                         lambda e: BASE * 0.9 ** e),
    "exponential": (lambda: schedules.ExponentialLR(gamma=0.95),
                    lambda e: BASE * 0.95 ** e),
    "cosine": (lambda: schedules.CosineAnnealing(T_max=30),
               lambda e: BASE * (1 + math.cos(math.pi * e / 30)) / 2),
    # past T_max the cosine climbs back up, as torch's does
    "cosine-short-eta-min": (lambda: schedules.CosineAnnealing(T_max=12, eta_min=0.01),
                             lambda e: cosine(BASE, 0.01, e, 12)),
    "warm-restarts": (lambda: schedules.CosineAnnealingWarmRestarts(T_0=7),
                      lambda e: cosine(BASE, 0.0, e % 7, 7)),
    "warm-restarts-doubling": (lambda: schedules.CosineAnnealingWarmRestarts(T_0=3, T_mult=2, eta_min=0.001),
                               lambda e: cosine(BASE, 0.001, *warm_restart_position(e, 3, 2))),
    "warmup-constant": (lambda: schedules.LinearWarmup(5, start_factor=0.2),
                        lambda e: BASE * (0.2 + 0.8 * e / 5) if e < 5 else BASE),
    "warmup-cosine": (lambda: schedules.LinearWarmup(4, start_factor=0.25,
                                                     then=schedules.CosineAnnealing(T_max=26)),
                      lambda e: BASE * (0.25 + 0.75 * e / 4) if e < 4
                      else BASE * (1 + math.cos(math.pi * (e - 4) / 26)) / 2),
    "warmup-step": (lambda: schedules.LinearWarmup(3, start_factor=0.5, then=schedules.StepLR(10, 0.1)),
                    lambda e: BASE * (0.5 + 0.5 * e / 3) if e < 3 else step_lr(BASE, 10, 0.1, e - 3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_over_30_epochs_match_the_formula(name):
    make, formula = CASES[name]
    schedule = make()
    expected = [formula(epoch) for epoch in range(EPOCHS)]
    got = [schedule.lr_at(epoch, base_lr=BASE) for epoch in range(EPOCHS)]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert got[0] == pytest.approx(BASE * (schedule.start_factor if name.startswith("warmup") else 1.0))
    assert schedule.values(EPOCHS, BASE) == got
    assert [schedule(epoch, BASE) for epoch in range(EPOCHS)] == got
    assert all(isinstance(value, float) for value in got)


def test_the_doubling_cycles_restart_where_expected():
    # T_0 = 3, T_mult = 2: cycles of 3, 6, 12, 24 epochs starting at 0, 3, 9, 21.
    schedule = schedules.CosineAnnealingWarmRestarts(T_0=3, T_mult=2)
    restarts = [e for e in range(EPOCHS) if schedule.lr_at(e, BASE) == BASE]
    assert restarts == [0, 3, 9, 21]
    assert schedule.cycle_position(20) == (11, 12)
    assert schedule.cycle_position(21) == (0, 24)


def test_cosine_reaches_eta_min_at_t_max():
    assert schedules.CosineAnnealing(T_max=10).lr_at(10, 1.0) == 0.0
    assert schedules.CosineAnnealing(T_max=10, eta_min=0.05).lr_at(10, 1.0) == pytest.approx(0.05)


def test_fractional_epochs_follow_the_same_formula():
    assert schedules.CosineAnnealingWarmRestarts(T_0=4).lr_at(5.5, 1.0) == pytest.approx(cosine(1.0, 0, 1.5, 4))
    assert schedules.ExponentialLR(0.5).lr_at(0.5, 1.0) == pytest.approx(math.sqrt(0.5))
    assert schedules.StepLR(2).lr_at(np.int64(5), 1.0) == pytest.approx(0.01)


# -- the base lr ---------------------------------------------------------------------------------


def test_base_lr_from_the_schedule_or_the_call():
    own = schedules.ExponentialLR(0.5, base_lr=2.0)
    assert own.lr_at(1) == 1.0 and own(2) == 0.5
    assert own.lr_at(1, base_lr=4.0) == 2.0  # the call's base wins
    with pytest.raises(ValueError, match=r"ExponentialLR has no base_lr"):
        schedules.ExponentialLR(0.5).lr_at(3)


def test_warmup_takes_the_wrapped_schedules_base_lr():
    inner = schedules.StepLR(2, 0.5, base_lr=0.4)
    warm = schedules.LinearWarmup(2, start_factor=0.5, then=inner)
    assert warm.base_lr == 0.4
    assert warm.values(6) == pytest.approx([0.2, 0.3, 0.4, 0.4, 0.2, 0.2])
    # the wrapper passes its base on, so an explicit base reaches the inner schedule too
    assert warm.values(6, base_lr=1.0) == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.5, 0.5])


def test_schedules_are_pure_functions_of_the_epoch():
    schedule = schedules.LinearWarmup(3, then=schedules.CosineAnnealingWarmRestarts(5, 2))
    forward = [schedule.lr_at(e, BASE) for e in range(EPOCHS)]
    backward = [schedule.lr_at(e, BASE) for e in reversed(range(EPOCHS))]
    assert forward == backward[::-1]


def test_repr_names_the_settings():
    text = repr(schedules.LinearWarmup(3, 0.5, then=schedules.StepLR(4, gamma=0.5), base_lr=0.1))
    assert text == ("LinearWarmup(warmup_epochs=3, start_factor=0.5, "
                    "then=StepLR(step_size=4, gamma=0.5), base_lr=0.1)")
    assert repr(schedules.CosineAnnealing(10)) == "CosineAnnealing(T_max=10, eta_min=0.0)"


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: schedules.StepLR(0), ValueError, r"step_size must be >= 1"),
    (lambda: schedules.StepLR(2.5), TypeError, r"step_size must be an int"),
    (lambda: schedules.StepLR(True), TypeError, r"step_size must be an int; got bool"),
    (lambda: schedules.StepLR(3, gamma=0), ValueError, r"gamma must be in \(0"),
    (lambda: schedules.StepLR(3, gamma="x"), TypeError, r"gamma must be a number"),
    (lambda: schedules.ExponentialLR(-0.5), ValueError, r"gamma must be in \(0"),
    (lambda: schedules.ExponentialLR(math.nan), ValueError, r"gamma must be in"),
    (lambda: schedules.CosineAnnealing(0), ValueError, r"T_max must be >= 1"),
    (lambda: schedules.CosineAnnealing(10, eta_min=-1e-3), ValueError, r"eta_min must be in \[0"),
    (lambda: schedules.CosineAnnealingWarmRestarts(0), ValueError, r"T_0 must be >= 1"),
    (lambda: schedules.CosineAnnealingWarmRestarts(5, T_mult=0), ValueError, r"T_mult must be >= 1"),
    (lambda: schedules.CosineAnnealingWarmRestarts(5, T_mult=1.5), TypeError, r"T_mult must be an int"),
    (lambda: schedules.CosineAnnealingWarmRestarts(5, eta_min=math.inf), ValueError, r"eta_min must be in"),
    (lambda: schedules.LinearWarmup(0), ValueError, r"warmup_epochs must be >= 1"),
    (lambda: schedules.LinearWarmup(3, start_factor=0), ValueError, r"start_factor must be in \(0.0, 1.0\]"),
    (lambda: schedules.LinearWarmup(3, start_factor=1.5), ValueError, r"start_factor must be in \(0.0, 1.0\]"),
    (lambda: schedules.LinearWarmup(3, then=lambda e: 0.1), TypeError, r"then must be a Schedule or None"),
    (lambda: schedules.StepLR(3, base_lr=0), ValueError, r"base_lr must be in \(0"),
    (lambda: schedules.StepLR(3).lr_at(-1, 0.1), ValueError, r"epoch must be >= 0"),
    (lambda: schedules.StepLR(3).lr_at(-0.5, 0.1), ValueError, r"epoch must be in \[0"),
    (lambda: schedules.StepLR(3).lr_at("2", 0.1), TypeError, r"epoch must be a number"),
    (lambda: schedules.StepLR(3).lr_at(2, base_lr=-0.1), ValueError, r"base_lr must be in \(0"),
    (lambda: schedules.StepLR(3).values(-1, 0.1), ValueError, r"epochs must be >= 0"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_start_factor_one_is_a_constant_warmup():
    assert schedules.LinearWarmup(4, start_factor=1.0).values(8, 0.3) == [0.3] * 8


# -- torch ---------------------------------------------------------------------------------------


def torch_lrs(make_scheduler, epochs=EPOCHS):
    torch = pytest.importorskip("torch")
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=BASE)
    scheduler = make_scheduler(torch.optim.lr_scheduler, optimizer)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("ours, theirs", [
    (schedules.StepLR(7, 0.5), lambda s, o: s.StepLR(o, step_size=7, gamma=0.5)),
    (schedules.ExponentialLR(0.95), lambda s, o: s.ExponentialLR(o, gamma=0.95)),
    (schedules.CosineAnnealing(30), lambda s, o: s.CosineAnnealingLR(o, T_max=30)),
    (schedules.CosineAnnealing(12, eta_min=0.01), lambda s, o: s.CosineAnnealingLR(o, T_max=12, eta_min=0.01)),
    (schedules.CosineAnnealingWarmRestarts(7), lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=7)),
    (schedules.CosineAnnealingWarmRestarts(3, 2, 0.001),
     lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001)),
    (schedules.LinearWarmup(5, 0.2), lambda s, o: s.LinearLR(o, start_factor=0.2, total_iters=5)),
], ids=["step", "exponential", "cosine", "cosine-eta-min", "warm-restarts", "warm-restarts-doubling",
        "warmup"])
def test_matches_torch_lr_scheduler(ours, theirs):
    # torch's schedulers update the lr recursively, so only the last bits may differ.
    np.testing.assert_allclose(ours.values(EPOCHS, BASE), torch_lrs(theirs), rtol=1e-9, atol=1e-12)


def test_warmup_then_cosine_matches_torch_piecewise():
    # torch composes these with SequentialLR; each piece is compared with its own scheduler
    # here, the cosine shifted by the warm-up, which is what SequentialLR intends.
    ours = schedules.LinearWarmup(4, 0.25, then=schedules.CosineAnnealing(26)).values(EPOCHS, BASE)
    warm = torch_lrs(lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=4), 4)
    cos = torch_lrs(lambda s, o: s.CosineAnnealingLR(o, T_max=26), EPOCHS - 4)
    np.testing.assert_allclose(ours, warm + cos, rtol=1e-9, atol=1e-12)


def test_package_exports():
    assert bp.schedules is schedules
    for name in schedules.__all__:
        assert isinstance(getattr(schedules, name), type)
