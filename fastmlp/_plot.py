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
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = range(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)

    ax_loss.plot(epochs, history["loss"], color="tab:red")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean cross-entropy per sample")
    ax_loss.set_title("training loss")
    if history["loss"] and min(history["loss"]) > 0:
        ax_loss.set_yscale("log")

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

    if title:
        fig.suptitle(title)
    fig.savefig(os.fspath(path), format="png", dpi=100)
