"""Windows, backtest origins and training/validation splits of the forecasting recipe (one home for them).

A window of series s at origin o (1 ≤ o ≤ len(s)) has context steps o − C .. o − 1 and targets o .. o + H − 1
(:class:`~.data.Panel` cuts them). The backtest (``cross_validation``) of a series uses its last ``n``
origins, ``S`` apart, the last at ``len(s) − H`` (:func:`backtest_origins`); the model trains on what comes
before the first one. Training and validation windows come from that part: :func:`last_windows_split`
(per-series scaled presets on few long series: the last windows of every series validate, no window is
padded) or :func:`split_windows` (the global model: held-out windows of some series).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ...errors import UserInputError
from . import data as D

#: series with fewer points than this before their first backtest origin cannot be trained on
MIN_FIT_POINTS = 2
#: with more series than this, validation holds out the last windows of a random VAL_SHARE of them
MAX_ALL_VAL_SERIES = 20
VAL_SHARE = 0.2


def backtest_origins(T: int, H: int, n: int, S: int) -> list[int]:
    """The ``n`` backtest origins of a series of length T: the last at T − H, ``S`` apart.

    >>> backtest_origins(100, 7, 3, 7)
    [79, 86, 93]
    """
    return [T - H - (n - 1 - i) * S for i in range(n)]


def default_context(spec: D.DataSpec, H: int) -> int:
    """The context when none is given: 4 horizons or 2 seasons, at least 24 and at most 96 steps."""
    m = spec.season_length
    return int(min(max(4 * H, 2 * m, 24), 96))


class WindowSampler:
    """(series, origin) pairs of a :class:`~.data.Panel`, gathered into model batches by ``collate``.

    A DataLoader over ``sampler.dataset()`` (positions 0 .. len − 1) with ``collate_fn=sampler.collate``
    draws windows uniformly over every valid origin of every series (each series in proportion to its
    length). :meth:`every_origin` holds the pairs as per-series counts (16 bytes a series, not 16 a
    window); ``sidx``/``origins`` are then made when asked for.
    """

    def __init__(
        self, panel: D.Panel, sidx: np.ndarray, origins: np.ndarray, with_mask: bool = True
    ) -> None:
        self.panel = panel
        self._sidx: np.ndarray | None = np.asarray(sidx, dtype=np.int64)
        self._origins: np.ndarray | None = np.asarray(origins, dtype=np.int64)
        #: with every_origin: the first flat position of each series' windows (n + 1,)
        self._bounds: np.ndarray | None = None
        #: False: batches are (past, future, target), every target observed (the single-series recipe)
        self.with_mask = with_mask

    @classmethod
    def every_origin(cls, panel: D.Panel, with_mask: bool = True) -> WindowSampler:
        """Every origin 1 .. len − 1 of every series of ``panel`` (what ``panel.origins(i)`` lists), series
        after series: the pairs of ``WindowSampler(panel, sidx, origins)`` without storing them."""
        out = cls(panel, np.zeros(0, np.int64), np.zeros(0, np.int64), with_mask)
        counts = np.maximum(panel.length - 1, 0)
        out._bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        out._sidx = out._origins = None
        return out

    def pairs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (series, origin) of the windows at positions ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._bounds is None:
            assert self._sidx is not None and self._origins is not None
            return self._sidx[idx], self._origins[idx]
        s = np.searchsorted(self._bounds, idx, side="right") - 1
        return s, idx - self._bounds[s] + 1

    @property
    def sidx(self) -> np.ndarray:
        return self._sidx if self._sidx is not None else self.pairs(np.arange(len(self)))[0]

    @property
    def origins(self) -> np.ndarray:
        return self._origins if self._origins is not None else self.pairs(np.arange(len(self)))[1]

    def __len__(self) -> int:
        if self._bounds is not None:
            return int(self._bounds[-1])
        assert self._sidx is not None
        return len(self._sidx)

    def dataset(self) -> TensorDataset:
        return TensorDataset(torch.arange(len(self)))

    def collate(self, items) -> tuple[torch.Tensor, ...]:
        idx = torch.stack([it[0] for it in items]).numpy()
        w = self.panel.windows(*self.pairs(idx))
        keys = (
            ("past", "future", "target", "tmask")
            if self.with_mask
            else ("past", "future", "target")
        )
        return tuple(torch.from_numpy(w[k]) for k in keys)


def last_windows_layout(T: int, C: int, H: int) -> tuple[range, range] | None:
    """Training and validation origins of one series cut to its first backtest origin (length T), as
    the single-series recipe has them; None when the series is too short for it.

    Every window lies inside the series (full context, full target). Validation: the last
    ``max(H, n // 10)`` origins (n = the full-context, full-target origins); training: the origins whose
    targets end before the first validation target.

    >>> last_windows_layout(100, 10, 5)
    (range(10, 84), range(88, 96))
    """
    n_val = max(H, (T - H - C + 1) // 10)
    val_first = T - H - n_val + 1
    if val_first - H - C + 1 < 1:
        return None
    return range(C, val_first - H + 1), range(val_first, T - H + 1)


def last_windows_split(
    fit_series: Sequence[D.Series], spec: D.DataSpec, C: int, H: int
) -> tuple[WindowSampler, WindowSampler, dict[str, Any]] | None:
    """The split of the per-series scaled presets (weather, stocks; the default path of both): the last
    windows of every series validate, the windows before them train, no window is padded or masked (so
    the model has no observed-flag input: ``spec.observed_input`` is set False). None (use
    :func:`split_windows`) unless ``spec.scaling == "series"``, there are at most 20 series and each is
    long enough (:func:`last_windows_layout`)."""
    if spec.scaling != "series" or not fit_series or len(fit_series) > MAX_ALL_VAL_SERIES:
        return None
    if any(s.observed is not None and not s.observed.all() for s in fit_series):
        return None  # gaps need the observed mask, which this split's model does not have
    lays = [last_windows_layout(len(s), C, H) for s in fit_series]
    if any(lay is None for lay in lays):
        return None
    spec.observed_input = False
    panel = D.Panel(fit_series, spec, C, H)
    parts = {}
    for k in (0, 1):  # 0: training, 1: validation
        sidx = np.concatenate([np.full(len(lay[k]), i) for i, lay in enumerate(lays) if lay])
        orig = np.concatenate([np.asarray(lay[k]) for lay in lays if lay])
        parts[k] = WindowSampler(panel, sidx, orig, with_mask=False)
    info = {
        "val_series": len(fit_series),
        "val_windows": len(parts[1]),
        "val_from": "last windows of every series",
        "train_windows": len(parts[0]),
    }
    return parts[0], parts[1], info


def split_windows(
    fit_series: Sequence[D.Series], spec: D.DataSpec, C: int, H: int, seed: int
) -> tuple[WindowSampler, WindowSampler, dict[str, Any]]:
    """Training and validation windows from the parts of the series before their first origin.

    Validation holds out the last ``max(1, n // 10)`` full-target windows (n = the series' full-target
    origins) of every series when there are at most 20, else of a random 20% of them (at least 20). A
    held-out series trains only on targets before its first validation origin; every other series trains on
    all of its windows, up to the most recent.
    """
    rng = np.random.default_rng(seed)
    n = len(fit_series)
    lens = D.lengths_of(fit_series)
    n_full = lens - H
    firsts = lens - H - np.maximum(1, n_full // 10) + 1
    ok = (n_full >= 1) & (firsts >= MIN_FIT_POINTS)
    val_first = dict(zip(np.nonzero(ok)[0].tolist(), firsts[ok].tolist()))
    elig = sorted(val_first)
    if len(elig) > MAX_ALL_VAL_SERIES:
        size = max(MAX_ALL_VAL_SERIES, round(VAL_SHARE * n))
        elig = sorted(rng.choice(elig, size=min(size, len(elig)), replace=False).tolist())
    # a held-out series trains on its steps before its first validation origin, the others on all
    cut = lens.copy()
    cut[elig] = [val_first[i] for i in elig]
    heads = D.heads(fit_series, cut)
    train = WindowSampler.every_origin(
        D.Panel(heads, spec, C, H)
    )  # train_panel.origins(i) of each i
    if elig:
        val_series = D.subset(fit_series, elig)
        val_panel = D.Panel(val_series, spec, C, H)
        # origins val_first[i] .. len − H of each held-out series, series after series
        vf = np.asarray([val_first[i] for i in elig], dtype=np.int64)
        count = np.maximum(lens[elig] - H + 1 - vf, 0)
        step = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(count) - count, count
        )
        vs = np.repeat(np.arange(len(elig), dtype=np.int64), count)
        val = WindowSampler(val_panel, vs, np.repeat(vf, count) + step)
        info = {"val_series": len(elig), "val_windows": len(val), "val_from": "held-out windows"}
    else:  # every series is too short to hold windows out: validate on the training windows
        val = train
        info = {"val_series": 0, "val_windows": len(val), "val_from": "training windows"}
    info["train_windows"] = len(train)
    return train, val, info


#: at most this many validation windows calibrate the intervals (a seeded sample of them beyond)
MAX_CALIBRATION_WINDOWS = 65536


def calibration_windows(
    val: WindowSampler, limit: int = MAX_CALIBRATION_WINDOWS, seed: int = 0
) -> dict[str, np.ndarray]:
    """The validation windows as arrays: past, future, target (z scale), tmask (1 = observed) and sidx (the
    window's series in the validation panel).

    With more than ``limit`` windows (big panels: 100k series hold ~340k), a uniform sample of ``limit``
    of them (seeded; in their order): the conformal quantiles of 65,536 windows are as good as of all,
    and the windows and the network's pass over them no longer grow with the panel."""
    sidx, origins = val.sidx, val.origins
    if len(sidx) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(sidx), size=limit, replace=False))
        sidx, origins = sidx[keep], origins[keep]
    w = val.panel.windows(sidx, origins)
    return {**{k: w[k] for k in ("past", "future", "target", "tmask")}, "sidx": sidx.copy()}


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable), or None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(series: Sequence[D.Series], spec: D.DataSpec, opts: Any) -> int:
    """Bytes a fit of ``opts`` on ``series`` needs at least: the window panels (training and validation
    copies), the calibration windows, the network with its gradients and AdamW state, one batch's
    activations."""
    C, H, hid, layers = int(opts.context), int(opts.horizon), int(opts.hidden), int(opts.layers)
    F = 2 + spec.n_past_covariates + spec.n_static + spec.n_future_covariates + len(spec.calendar)
    lens = D.lengths_of(series)
    steps = int((C + lens + H).sum())
    panels = 2 * steps * (16 + 4 * F)
    n_val = int(np.maximum(1, (lens - H) // 10).sum())
    calib = n_val * (C + H) * (F + 4) * 4
    Ff = spec.n_future_covariates + len(spec.calendar) + 2
    params = 3 * hid * (F + hid + 2) * layers + (hid + H * Ff) * hid + hid * H * len(opts.quantiles)
    bs = int(opts.batch_size or 256)
    activations = bs * C * (F + 4 * hid * layers) * 4 * 2
    return int(panels + calib + params * 4 * 4 + activations)


def check_sizes(series: Sequence[D.Series], spec: D.DataSpec, opts: Any) -> None:
    """Refuse (UserInputError, one line) a context longer than the longest series, a season longer than
    the data, and a fit that would not fit in the memory available now — before anything is allocated."""
    longest = int(D.lengths_of(series).max()) if len(series) else 0
    C = int(opts.context)
    if C > longest:
        raise UserInputError(
            f"--context {C} is longer than the longest series ({longest} points); give at most {longest}"
        )
    if spec.season_length > longest:
        raise UserInputError(
            f"--season-length {spec.season_length} is longer than the longest series ({longest} points)"
        )
    need, have = memory_estimate(series, spec, opts), available_memory()
    if have is not None and need > 0.8 * have:
        raise UserInputError(
            f"this fit needs about {need / 2**30:.1f} GiB (context {C}, hidden {opts.hidden}, "
            f"{len(series)} series) but {have / 2**30:.1f} GiB are available; lower --context, --hidden "
            f"or --batch-size"
        )
