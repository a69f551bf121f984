"""Epoch plots: loss, and training and test accuracy, per epoch, as a PNG."""

import os


def check_plot_path(path, name):
    """Raise unless ``path`` can take a PNG: a str or os.PathLike, not a folder, in a
    folder that exists. Called before training, so a bad path costs no run."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name} must be a file path (str or os.PathLike) for the PNG, "
                        f"got {path!r}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text or os.path.isdir(text):
        raise ValueError(f"{name}={text!r} is a folder; give a file name such as "
                         f"{os.path.join(text or '.', 'epoch_plots.png')!r}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}={text!r}: its folder {folder!r} does not exist; create it first")
    return text


def plot_title(n_samples, n_features, n_classes, n_test, params):
    """The plots' title: the data's shape, then the hyperparameters of ``params`` (a model's)."""
    data = f"{n_samples} samples × {n_features} features, {n_classes} classes"
    if n_test is not None:
        data += f", {n_test} test samples"
    return (f"{data}\nhidden={params['hidden']}, epochs={params['epochs']}, "
            f"batch_size={params['batch_size']}, lr={params['lr']:g}, reg={params['reg']:g}, "
            f"{params['dtype']}, {params['backend']}")


def plot_history(history, path, title=None):
    """Write the epoch plots of ``history`` to ``path`` (PNG).

    Uses matplotlib's object API (``Figure`` with the Agg canvas), so the user's
    pyplot state and global backend are left alone.

    Parameters
    ----------
    history : dict
        ``loss`` and ``train_acc``: one value per epoch; optionally ``test_acc``, at the
        epochs ``test_epoch`` (every epoch when that is missing).
    path : str or os.PathLike
    title : str, optional
        The figure's title (``fit`` gives the data's shape and the hyperparameters).
    """
    history_figure(history, title).savefig(os.fspath(path), format="png", dpi=100)


def history_figure(history, title=None):
    """The epoch plots as a matplotlib ``Figure``: the loss (log scale), and the accuracies."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    epochs = range(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)

    ax_loss.plot(epochs, history["loss"], color="tab:red")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean cross-entropy per sample")
    ax_loss.set_title("training loss")
    if history["loss"] and min(history["loss"]) > 0:
        # log scale, labelled at 1, 2 and 5 times each power of ten in plain numbers (0.05, 0.1, 0.2)
        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax_loss.yaxis.set_minor_formatter(NullFormatter())
        ax_loss.grid(which="major", alpha=0.3)

    ax_acc.plot(epochs, history["train_acc"], label="training (during the epoch)")
    if history.get("test_acc"):
        test_epochs = history.get("test_epoch") or range(1, len(history["test_acc"]) + 1)
        ax_acc.plot(test_epochs, history["test_acc"], label="test",
                    marker="." if len(history["test_acc"]) < len(history["loss"]) else None)
    if history.get("val_acc"):
        ax_acc.plot(epochs[:len(history["val_acc"])], history["val_acc"], label="validation (early stopping)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    ax_acc.legend(loc="lower right")
    ax_acc.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers

    if title:
        fig.suptitle(title)
    return fig
