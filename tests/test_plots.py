"""History.plot (backprop.plots): one panel per metric with training and validation curves,
written to a picture file; a clear ImportError without matplotlib."""

import importlib.util
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.fit import History

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason='matplotlib is not installed (pip install "backprop[plot]")')


def made_history(epochs=5, **curves):
    history = History()
    for epoch in range(epochs):
        history.append(epoch, {key: values[epoch] for key, values in curves.items()})
    return history


@pytest.fixture
def classifier_history():
    X, y = bp.datasets.load_digits(dtype="float32")
    net = bp.Network([64, 16, 10], seed=0)
    return net.fit(X[:300], y[:300], optimizer=bp.optim.Adam(lr=3e-3), epochs=4, batch_size=32,
                   validation_data=(X[300:400], y[300:400]), verbose=0)


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


@needs_matplotlib
def test_plot_draws_a_panel_per_metric_with_training_and_validation(classifier_history):
    figure = classifier_history.plot()
    from matplotlib.figure import Figure

    assert isinstance(figure, Figure)
    loss, accuracy = figure.axes
    assert loss.get_title() == "Loss" and accuracy.get_title() == "Accuracy"
    for ax, key in ((loss, "loss"), (accuracy, "accuracy")):
        assert ax.get_xlabel() == "epoch"
        lines = lines_by_label(ax)
        assert set(lines) == {"training", "validation"}
        np.testing.assert_array_equal(lines["training"].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_allclose(lines["training"].get_ydata(), classifier_history[key])
        np.testing.assert_allclose(lines["validation"].get_ydata(), classifier_history["val_" + key])
        legend = ax.get_legend()
        assert [text.get_text() for text in legend.get_texts()] == ["training", "validation"]


@needs_matplotlib
def test_plot_leaves_pyplot_alone(classifier_history):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    classifier_history.plot()
    assert plt.get_fignums() == before


@needs_matplotlib
def test_plot_writes_a_png(classifier_history, tmp_path):
    path = tmp_path / "curves.png"
    figure = classifier_history.plot(path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert len(figure.axes) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no temporary left


@needs_matplotlib
def test_plot_format_follows_the_extension(tmp_path):
    history = made_history(3, loss=[3.0, 2.0, 1.0])
    history.plot(tmp_path / "curves.svg")
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()[:500]
    history.plot(tmp_path / "no_extension")
    assert (tmp_path / "no_extension").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"cannot write a picture as \.xyz"):
        history.plot(tmp_path / "curves.xyz")
    assert not (tmp_path / "curves.xyz").exists()


@needs_matplotlib
def test_plot_chooses_metrics():
    history = made_history(4, loss=[4.0, 3, 2, 1], mae=[2.0, 1.5, 1, 0.5], lr=[0.1] * 4,
                           val_loss=[4.5, 3.5, 2.5, 1.5], val_mae=[2.1, 1.6, 1.1, 0.6])
    default = history.plot()
    assert [ax.get_title() for ax in default.axes] == ["Loss", "Mean absolute error"]  # no lr
    only_val = history.plot(metrics=["val_mae"])
    (ax,) = only_val.axes
    assert set(lines_by_label(ax)) == {"training", "validation"}
    lr = history.plot(metrics=["lr"])
    assert set(lines_by_label(lr.axes[0])) == {"learning rate"}
    with pytest.raises(ValueError, match="the history has no metric 'accuracy'; it logged "
                                         "'loss', 'mae', 'lr'"):
        history.plot(metrics=["accuracy"])
    with pytest.raises(TypeError, match="metrics must be a list of names"):
        history.plot(metrics="loss")
    with pytest.raises(ValueError, match="at least one"):
        history.plot(metrics=[])


@needs_matplotlib
def test_plot_training_only_and_a_single_epoch():
    figure = made_history(1, loss=[0.7]).plot()
    (ax,) = figure.axes
    lines = lines_by_label(ax)
    assert list(lines) == ["training"]
    assert lines["training"].get_marker() == "o"  # one epoch is still visible
    assert ax.get_xlim() == (0.5, 1.5)


@needs_matplotlib
def test_plot_uses_a_log_scale_for_a_loss_that_spans_decades():
    falling = made_history(6, loss=[100.0, 10, 1, 0.1, 0.01, 0.001])
    ax = falling.plot().axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "Loss (log scale)"
    gentle = made_history(3, loss=[1.0, 0.8, 0.6])
    assert gentle.plot().axes[0].get_yscale() == "linear"


def test_plot_of_an_empty_history_is_an_error():
    with pytest.raises(ValueError, match="no epochs"):
        History().plot()


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    # None in sys.modules makes the import fail, as it does when matplotlib is not installed.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)
    history = made_history(2, loss=[1.0, 0.5])
    with pytest.raises(ImportError, match=r'pip install "backprop\[plot\]"'):
        history.plot()
    with pytest.raises(ImportError, match=r'pip install "backprop\[plot\]"'):
        history.plot(tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()
