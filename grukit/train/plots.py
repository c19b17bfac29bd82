"""Training-curve plot for run folders (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import default_mode


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, default_mode())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def plot_history(
    history: Sequence[dict], path: str | os.PathLike, title: str | None = None
) -> Path | None:
    """Plot every ``*loss`` column of ``history`` (one dict per epoch, as in ``log.csv``) against the epoch.
    Returns the path, or None when there is nothing to plot."""
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
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
