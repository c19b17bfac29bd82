"""Ensembles of forecasters and their calibration: what ``--ensemble K`` and ``--conformal`` build.

An :class:`Ensemble` holds K trained :class:`~.model.ForecastNet` members (same data spec, context,
horizon and quantile levels; different seeds) and, optionally, split-conformal corrections of its intervals
(:mod:`.calibrate`). Its output, like a member's, is (B, H, Q) quantiles of the scaled target z: the median
over members of each quantile at each step (``numpy.median``: the mean of the two middle values for even K),
then the calibration. For odd K this equals the median of the members' data-scale forecasts, because the
map from z to the data scale is increasing.

In a run folder (``ensemble.json``, written by :func:`save_manifest`): member 0 is the run's own
``model.safetensors``; member k ≥ 1 is ``member-<k>/model.safetensors`` (each member folder is a toolkit run
folder of its own: config.json, log.csv, last.ckpt). ``ensemble.json`` lists the member files, the quantile
levels and the calibration (``offsets``, (H, L) on the z scale, or null).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import UserInputError
from . import calibrate as Q
from .model import ForecastNet

MANIFEST = "ensemble.json"


def member_dir(k: int) -> str:
    """The folder (relative to the run folder) of member k ≥ 1; member 0 is the run folder itself."""
    return f"member-{k}"


class Ensemble(nn.Module):
    """``ensemble(past, future) -> (B, H, Q)``: the calibrated median of the members' quantiles.

    Args:
        members: one or more :class:`ForecastNet` with equal ``context``, ``horizon`` and ``quantiles``.
        offsets: (H, L) conformal corrections of the L intervals (``calibrate.intervals`` order) on the z
            scale, or None (uncalibrated).

    Example:
        >>> import torch
        >>> ms = [ForecastNet(3, 0, 8, 2, hidden_size=4) for _ in range(3)]
        >>> ens = Ensemble(ms).eval()
        >>> past, fut = torch.randn(5, 8, 3), torch.zeros(5, 2, 0)
        >>> out = ens(past, fut)
        >>> tuple(out.shape)
        (5, 2, 3)
        >>> ref = np.median(np.stack([m(past, fut).detach().double().numpy() for m in ms]), axis=0)
        >>> bool(np.allclose(out.numpy(), ref))
        True
    """

    def __init__(self, members: Sequence[ForecastNet], offsets: np.ndarray | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        c0 = members[0].config
        for m in members[1:]:
            c = m.config
            if (c.context, c.horizon, tuple(c.quantiles)) != (
                c0.context,
                c0.horizon,
                tuple(c0.quantiles),
            ):
                raise ValueError(
                    f"ensemble members differ: context/horizon/quantiles {c.context}/{c.horizon}/"
                    f"{c.quantiles} against {c0.context}/{c0.horizon}/{c0.quantiles}"
                )
        self.members = nn.ModuleList(members)
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.float64)
        if self.offsets is not None:
            want = (c0.horizon, len(Q.intervals(c0.quantiles)))
            if self.offsets.shape != want:
                raise ValueError(f"offsets {want} expected, got {self.offsets.shape}")

    @property
    def config(self):
        """Member 0's :class:`~.model.ForecasterConfig` (context, horizon and quantiles are shared)."""
        return self.members[0].config

    @property
    def member_list(self) -> list[ForecastNet]:
        """The members, as a list."""
        return [m for m in self.members if isinstance(m, ForecastNet)]

    @property
    def quantiles(self) -> tuple[float, ...]:
        return tuple(self.config.quantiles)

    def with_offsets(self, offsets: np.ndarray | None) -> Ensemble:
        """The same members with other calibration offsets (None: uncalibrated)."""
        return Ensemble(self.member_list, offsets)

    @torch.no_grad()
    def members_z(self, past: Tensor, future: Tensor) -> np.ndarray:
        """Every member's output, (K, B, H, Q) float64 on the z scale."""
        return np.stack([m(past, future).double().numpy() for m in self.members])

    @torch.no_grad()
    def forward(self, past: Tensor, future: Tensor) -> Tensor:
        z = self.members_z(past, future)
        out = z[0] if len(z) == 1 else np.median(z, axis=0)
        if self.offsets is not None:
            out = Q.apply_offsets(out, self.offsets, self.quantiles)
        return torch.from_numpy(out)


def save_manifest(
    run_path: str | Path,
    n_members: int,
    quantiles: Sequence[float],
    offsets: np.ndarray | None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``ensemble.json`` in the run folder (atomically)."""
    path = Path(run_path) / MANIFEST
    rec = {
        "members": ["model.safetensors"]
        + [f"{member_dir(k)}/model.safetensors" for k in range(1, n_members)],
        "combine": "median over members, per quantile and step, on the model's scale",
        "quantiles": list(quantiles),
        "conformal": offsets is not None,
        "offsets": None if offsets is None else np.asarray(offsets).tolist(),
        **(info or {}),
    }
    from ..._io import write_text

    return write_text(path, json.dumps(rec, indent=2) + "\n")


def read_manifest(run_path: str | Path) -> dict[str, Any] | None:
    """``ensemble.json`` of a run folder, or None when it has none (a run from before ensembles)."""
    path = Path(run_path) / MANIFEST
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        rec = None
    members = rec.get("members") if isinstance(rec, dict) else None
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members) or not members:
        raise UserInputError(
            f"{path}: not a valid ensemble manifest (expected JSON with a non-empty 'members' list "
            f"of model files)"
        )
    return rec
