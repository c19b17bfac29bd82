"""Training-curve plot for run folders (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_path


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG, atomically, and close it.

    Args:
        fig: a ``matplotlib.figure.Figure``.
        path: the PNG file to write (its folder must exist).
        dpi: resolution.

    Returns:
        The path written.

    Examples:
        >>> import tempfile, matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from grukit.train import save_figure
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1], [1, 0])
        >>> save_figure(fig, tempfile.mkdtemp() + "/line.png").suffix
        '.png'
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def plot_history(
    history: Sequence[dict],
    path: str | os.PathLike,
    title: str | None = None,
    best_epoch: int | None = None,
) -> Path | None:
    """Plot every ``*loss`` column of ``history`` against the epoch, as a PNG; ``best_epoch`` (0-based, the
    epoch whose model the run kept) is marked with a dashed line and named in the legend.

    Args:
        history: one dict per epoch, as in ``log.csv`` (an ``"epoch"`` key, 0-based, and ``*loss`` keys;
            missing or None values are skipped).
        path: the PNG file to write.
        title: the plot's title.
        best_epoch: the kept model's epoch (0-based, as in ``log.csv``), or None.

    Returns:
        The path, or None when there is nothing to plot.

    Examples:
        >>> import tempfile
        >>> from grukit.train import plot_history
        >>> history = [
        ...     {"epoch": 0, "train_loss": 1.0, "val_loss": 1.2},
        ...     {"epoch": 1, "train_loss": 0.5, "val_loss": 0.9},
        ... ]
        >>> plot_history(history, tempfile.mkdtemp() + "/loss.png").name
        'loss.png'
        >>> plot_history([], "unused.png") is None
        True
    """
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = [k for k in history[-1] if k.endswith("loss")]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in keys:
        pts = [(r["epoch"] + 1, r[k]) for r in history if r.get(k) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=k)
    if best_epoch is not None:
        ax.axvline(best_epoch + 1, color="0.4", ls="--", lw=1, label=f"kept: epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
