"""Scaling and windows: per-series statistics, the model's input feature names and :class:`Panel`, which cuts
(context, horizon) windows from many series at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .calendar import STEP, calendar_features, future_times
from .spec import (
    DataSpec,
    Series,
    SeriesList,
    _grid_starts,
    _shared_store,
    flat_observed,
    future_covariate_names,
    has_gaps,
    ids_of,
    lengths_of,
    starts_of,
    static_names,
)


def _stats(s: Series, spec: DataSpec, k: int) -> dict[str, Any]:
    return _stats_of(s.y, s.x, spec, k)


def _stats_of(y: np.ndarray, x: np.ndarray, spec: DataSpec, k: int) -> dict[str, Any]:
    """:func:`_stats` of one series' target ``y`` and past covariates ``x`` (its rows)."""
    n_num = len(spec.numeric_covariates)
    fy = transform(y[:k], spec)
    xs = x[:k, :n_num]
    return {
        "y_mean": float(fy.mean()),
        "y_std": float(max(fy.std(), 1e-8)),
        "x_mean": xs.mean(0).tolist() if n_num else [],
        "x_std": np.maximum(xs.std(0), 1e-8).tolist() if n_num else [],
    }


def fit_scalers(series: Sequence[Series], spec: DataSpec, until: dict[str, int]) -> None:
    """Per-series mean/std of f(y) and of the numeric covariates over ``[:until[id]]``, into ``spec``.

    Without numeric covariates the statistics of all series come from whole-array segment sums (equal
    to the per-series ``mean``/``std`` up to the order of summation). With ``scaling="window"`` and no
    numeric covariates nothing reads them (each window is scaled by its own context): none are stored,
    and the model file's spec holds none (100k series held 100k unused entries)."""
    if not scalers_used(spec):
        return
    if spec.numeric_covariates and isinstance(series, SeriesList) and series.covariates is not None:
        # the same statistics on the same slices of the columns (so the same bits), no Series made
        y, x = series.store.y, series.covariates.x
        for i, a, n in zip(series.ids, series.at.tolist(), series.lengths.tolist()):
            spec.scalers[i] = _stats_of(y[a : a + n], x[a : a + n], spec, until[i])
        return
    if spec.numeric_covariates or not series:
        for s in series:
            spec.scalers[s.id] = _stats(s, spec, until[s.id])
        return
    ids = ids_of(series)
    k = np.fromiter((until[i] for i in ids), dtype=np.int64, count=len(series))
    if (k < 1).any():
        raise ValueError("every series needs at least one step to fit its scaler on")
    fy = transform(flat_heads(series, k), spec)
    at = np.cumsum(k) - k
    mean = np.add.reduceat(fy, at) / k
    sd = np.sqrt(np.add.reduceat((fy - np.repeat(mean, k)) ** 2, at) / k)
    for i, m, d in zip(ids, mean.tolist(), np.maximum(sd, 1e-8).tolist()):
        spec.scalers[i] = {"y_mean": m, "y_std": d, "x_mean": [], "x_std": []}


def flat_heads(series: Sequence[Series], k: np.ndarray) -> np.ndarray:
    """``concatenate([s.y[:k_i] for each series])`` (0 ≤ k_i ≤ len): one gather from the shared column
    of a :class:`~.spec.SeriesList`, no per-series slice."""
    k = np.asarray(k, dtype=np.int64)
    if isinstance(series, SeriesList):
        pos = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
        return series.store.y[np.repeat(series.at, k) + pos]
    if not len(series):
        return np.zeros(0)
    return np.concatenate([s.y[:n] for s, n in zip(series, k.tolist())])


def series_scalers(spec: DataSpec, series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
    """(y_mean, y_std) of every series, (n,) each: :func:`scaler_for`'s, a series object made only for
    one without stored statistics."""
    ids, n = ids_of(series), len(series)
    sc = [spec.scalers.get(i) or scaler_for(spec, series[k]) for k, i in enumerate(ids)]
    mu = np.fromiter((d["y_mean"] for d in sc), dtype=np.float64, count=n)
    sd = np.fromiter((d["y_std"] for d in sc), dtype=np.float64, count=n)
    return mu, sd


def scalers_used(spec: DataSpec) -> bool:
    """Whether windows read the per-series statistics of ``spec.scalers``: with ``scaling="series"`` (the
    target) or numeric past covariates (their standardisation)."""
    return spec.scaling == "series" or bool(spec.numeric_covariates)


def fit_covariate_scalers(series: Sequence[Series], spec: DataSpec) -> None:
    """Mean/std of the numeric future covariates over every step of ``series`` (their known part), and of
    the numeric static covariates over the series (one value each), into ``spec.covariate_scalers``.

    One pair per column for all series (not per series, as for past covariates): a series whose history
    never shows, say, a promotion still gets a sensible input when one is planned. A constant column
    gets std 1.
    """
    n_f, n_s = len(spec.future_numeric), len(spec.static_numeric)
    out: dict[str, list[float]] = {}
    cov = series.covariates if isinstance(series, SeriesList) else None
    if cov is not None:  # the columns of every series at once (the same rows, in the same order)
        if n_f:
            assert cov.xf is not None
            L = lengths_of(series)
            pos = np.arange(int(L.sum()), dtype=np.int64) - np.repeat(np.cumsum(L) - L, L)
            xs = cov.xf[np.repeat(cov.xf_at, L) + pos, :n_f]
            sd = xs.std(0)
            out["future_mean"] = xs.mean(0).tolist()
            out["future_std"] = np.where(sd > 1e-8, sd, 1.0).tolist()
        if n_s:
            assert cov.static is not None
            st = np.ascontiguousarray(cov.static[:, :n_s])
            sd = st.std(0)
            out["static_mean"] = st.mean(0).tolist()
            out["static_std"] = np.where(sd > 1e-8, sd, 1.0).tolist()
        spec.covariate_scalers = out
        return
    if n_f:
        xs = np.concatenate([s.xf[: len(s), :n_f] for s in series if s.xf is not None])
        sd = xs.std(0)
        out["future_mean"] = xs.mean(0).tolist()
        out["future_std"] = np.where(sd > 1e-8, sd, 1.0).tolist()
    if n_s:
        st = np.stack([s.static[:n_s] for s in series if s.static is not None])
        sd = st.std(0)
        out["static_mean"] = st.mean(0).tolist()
        out["static_std"] = np.where(sd > 1e-8, sd, 1.0).tolist()
    spec.covariate_scalers = out


def _standardised(values: np.ndarray, n_num: int, spec: DataSpec, kind: str) -> np.ndarray:
    """``values`` with its first ``n_num`` columns standardised by ``spec.covariate_scalers[kind_*]``."""
    if not n_num:
        return values
    if f"{kind}_mean" not in spec.covariate_scalers:
        raise ValueError(
            f"no {kind} covariate scalers in the spec: call fit_covariate_scalers first"
        )
    v = np.array(values, dtype=np.float64)
    mean = np.asarray(spec.covariate_scalers[f"{kind}_mean"])
    std = np.asarray(spec.covariate_scalers[f"{kind}_std"])
    v[..., :n_num] = (v[..., :n_num] - mean) / std
    return v


def scaler_for(spec: DataSpec, s: Series) -> dict[str, Any]:
    """The stored statistics of series ``s``; a series unseen in training is scaled by its own history."""
    if s.id in spec.scalers:
        return spec.scalers[s.id]
    return _stats(s, spec, len(s))


def transform(y: np.ndarray, spec: DataSpec) -> np.ndarray:
    return np.log(y) if spec.log else np.asarray(y, dtype=np.float64)


def inverse(fy: np.ndarray, spec: DataSpec) -> np.ndarray:
    return np.exp(np.minimum(fy, 700.0)) if spec.log else fy


def past_feature_names(spec: DataSpec) -> list[str]:
    """Columns of ``past``: scaled target, observed flag (unless ``spec.observed_input`` is False),
    past covariates, static covariates, future-known covariates (their values at the context steps),
    calendar."""
    cov = list(spec.numeric_covariates) + [
        f"{c}={v}" for c, cats in spec.categorical_covariates.items() for v in cats
    ]
    return [
        "z",
        *(["observed"] if spec.observed_input else []),
        *cov,
        *(f"static:{n}" for n in static_names(spec)),
        *(f"future:{n}" for n in future_covariate_names(spec)),
        *spec.calendar,
    ]


def future_feature_names(spec: DataSpec) -> list[str]:
    """Columns of ``future``: future-known covariates, calendar, then (seasonal inputs) the lag-m z value
    and its availability."""
    return [
        *(f"future:{n}" for n in future_covariate_names(spec)),
        *spec.calendar,
        *(["lag_z", "lag_observed"] if spec.seasonal_inputs else []),
    ]


class Panel:
    """Windows from many series at once (vectorised gathers from one flat, padded array).

    Each series is stored as ``context`` padding steps, its ``T`` steps and ``horizon`` future steps (calendar
    and future-known covariates only; static covariates on every step). A window at origin ``o`` (1 ≤ o ≤ T) has context steps o−C .. o−1 (those before the series starts
    are zeros with ``observed = 0``) and targets o .. o+H−1 (those past the end are masked). Series of
    (nearly) one length are stored as rows of one width instead, a shorter one with more padding after
    it (:meth:`_build_strided`): the same windows.

    Args:
        series: the series (already cut to the part that may be used).
        spec: the data spec (scaling, log, seasonal inputs, covariate scalers in ``spec.scalers``).
        context: C.
        horizon: H.
        columnar: without covariates, build the flat arrays in whole-array operations (False: one
            series at a time, the reference the columnar build is tested against).

    Example:
        >>> import numpy as np, pandas as pd
        >>> spec = DataSpec("t", "y", STEP, 1, scaling="window", log=True)
        >>> s = Series("a", pd.Index(np.arange(5)), np.array([1.0, 2, 4, 8, 16]), np.zeros((5, 0)))
        >>> w = Panel([s], spec, context=4, horizon=2).windows([0], [2])
        >>> w["past"].shape, w["target"].shape, w["observed"].tolist()
        ((1, 4, 2), (1, 2), [[0.0, 0.0, 1.0, 1.0]])
    """

    def __init__(
        self,
        series: Sequence[Series],
        spec: DataSpec,
        context: int,
        horizon: int,
        *,
        columnar: bool = True,
    ) -> None:
        self.series, self.spec, self.C, self.H = series, spec, int(context), int(horizon)
        self._scalers: tuple[np.ndarray, np.ndarray] | None = None
        C, H = self.C, self.H
        n_num = len(spec.numeric_covariates)
        n_x, n_s, n_f = spec.n_past_covariates, spec.n_static, spec.n_future_covariates
        self.n_cal = len(spec.calendar)
        #: the last columns of ``feats`` that the forecast steps see: future covariates and calendar
        self.n_known = n_f + self.n_cal
        if columnar and not (n_x or n_s or n_f) and series:
            self._build_columnar()
            return
        if columnar and isinstance(series, SeriesList) and series.covariates is not None and series:
            self._build_covariate_columns()
            return
        fys, obs, feats, starts, lengths = [], [], [], [], []
        off = 0
        for s in series:
            T = len(s)
            sc = scaler_for(spec, s) if scalers_used(spec) else {}
            fy = transform(s.y, spec)
            if spec.scaling == "series":
                fy = (fy - sc["y_mean"]) / sc["y_std"]
            x = s.x.copy()
            if n_num:
                x[:, :n_num] = (x[:, :n_num] - np.asarray(sc["x_mean"])) / np.asarray(sc["x_std"])
            times = s.times.append(future_times(s.times[-1], H, spec.freq))
            cal = calendar_features(times, spec.freq, spec.calendar)
            # columns: past covariates | static | future-known covariates | calendar
            f = np.zeros((C + T + H, n_x + n_s + n_f + cal.shape[1]), dtype=np.float32)
            f[C : C + T, :n_x] = x
            assert s.static is not None and s.xf is not None  # set by Series.__post_init__
            if n_s:  # a property of the series: on every step, the padding too
                f[:, n_x : n_x + n_s] = _standardised(
                    s.static, len(spec.static_numeric), spec, "static"
                )
            if n_f:  # the known values up to T + H (a step the data does not give stays 0)
                xf = _standardised(s.xf[: T + H], len(spec.future_numeric), spec, "future")
                f[C : C + len(xf), n_x + n_s : n_x + n_s + n_f] = np.nan_to_num(xf, nan=0.0)
            f[C:, n_x + n_s + n_f :] = cal
            fys.append(np.concatenate([np.zeros(C), fy, np.zeros(H)]))
            seen = (
                np.ones(T)
                if s.observed is None or not spec.observed_input
                else s.observed.astype(np.float64)
            )  # a gap is unobserved like padding (a model without the flag input sees the filled copy)
            obs.append(np.concatenate([np.zeros(C), seen, np.zeros(H)]))
            feats.append(f)
            starts.append(off + C)
            lengths.append(T)
            off += C + T + H
        self.fy = np.concatenate(fys) if fys else np.zeros(0)
        self.obs = np.concatenate(obs).astype(np.float32) if obs else np.zeros(0, np.float32)
        self.feats = (
            np.concatenate(feats)
            if feats
            else np.zeros((0, n_x + n_s + n_f + len(spec.calendar)), dtype=np.float32)
        )
        self.start = np.asarray(starts, dtype=np.int64)
        self.length = np.asarray(lengths, dtype=np.int64)

    def _build_columnar(self) -> None:
        """The flat arrays of a panel without covariates in whole-array operations (no per-series arrays
        but the views the series already are): what the per-series loop of ``__init__`` builds, equal to
        it value for value."""
        series, spec, C, H = self.series, self.spec, self.C, self.H
        T = lengths_of(series)
        size = C + T + H
        off = np.concatenate([[0], np.cumsum(size)[:-1]])
        self.start, self.length = off + C, T
        M = int(size.sum())
        if self._build_strided(T):
            return
        data = _runs(self.start, T, M)  # the data steps, series after series (a mask, not an index)
        store = _shared_store(series) if spec.log else None
        at_y = None if store is None else starts_of(series)
        if at_y is not None and store is not None and _disjoint_ascending(at_y, T):
            # the log of every value once (ColumnStore), gathered: what log(concatenate(y)) gives
            fy = store.log()[_runs(at_y, T, len(store.y))]
        else:
            fy = transform(np.concatenate([s.y for s in series]), spec)
        if spec.scaling == "series":
            mu, sd = series_scalers(spec, series)
            fy = (fy - np.repeat(mu, T)) / np.repeat(sd, T)
        self.fy = np.zeros(M)
        self.fy[data] = fy
        # 0/1: exact in float32, half the bytes
        if spec.observed_input and has_gaps(series):
            self.obs = np.zeros(M, dtype=np.float32)
            self.obs[data] = flat_observed(series)
        else:
            self.obs = data.astype(np.float32)
        self.feats = np.zeros((M, self.n_cal), dtype=np.float32)
        if self.n_cal:  # calendar of the data and forecast steps (the padding before stays 0)
            times = _times_with_future(series, H, spec.freq)
            self.feats[_runs(self.start, T + H, M)] = calendar_features(
                times, spec.freq, spec.calendar
            )

    def _build_covariate_columns(self) -> None:
        """The flat arrays of a covariate :class:`~.spec.SeriesList` in whole-array operations, gathered
        from its columns: what the per-series loop of ``__init__`` builds, value for value (the same
        elementwise operations on the same values)."""
        series, spec, C, H = self.series, self.spec, self.C, self.H
        assert isinstance(series, SeriesList) and series.covariates is not None
        cov = series.covariates
        n_num = len(spec.numeric_covariates)
        n_x, n_s, n_f = spec.n_past_covariates, spec.n_static, spec.n_future_covariates
        T = series.lengths
        size = C + T + H
        off = np.concatenate([[0], np.cumsum(size)[:-1]])
        self.start, self.length = off + C, T
        M = int(size.sum())
        pos = np.arange(int(T.sum()), dtype=np.int64) - np.repeat(np.cumsum(T) - T, T)
        dst = np.repeat(self.start, T) + pos  # each data step's place in the flat arrays
        src = np.repeat(series.at, T) + pos  # and in the series' columns
        fy = transform(series.store.y[src], spec)
        sc: list[dict[str, Any]] = []
        if scalers_used(spec):
            ids = series.ids
            sc = [spec.scalers.get(i) or scaler_for(spec, series[k]) for k, i in enumerate(ids)]
        if spec.scaling == "series":
            mu = np.fromiter((d["y_mean"] for d in sc), dtype=np.float64, count=len(sc))
            sd = np.fromiter((d["y_std"] for d in sc), dtype=np.float64, count=len(sc))
            fy = (fy - np.repeat(mu, T)) / np.repeat(sd, T)
        self.fy = np.zeros(M)
        self.fy[dst] = fy
        self.obs = np.zeros(M, dtype=np.float32)
        self.obs[dst] = flat_observed(series) if spec.observed_input else 1.0
        f = np.zeros((M, n_x + n_s + n_f + self.n_cal), dtype=np.float32)
        if n_x:
            x = cov.x[src]
            if n_num:
                xm = np.asarray([d["x_mean"] for d in sc], dtype=np.float64).reshape(-1, n_num)
                xs = np.asarray([d["x_std"] for d in sc], dtype=np.float64).reshape(-1, n_num)
                x[:, :n_num] = (x[:, :n_num] - np.repeat(xm, T, axis=0)) / np.repeat(xs, T, axis=0)
            f[dst, :n_x] = x
        if n_s:  # a property of the series: on every step, the padding too
            assert cov.static is not None
            st = _standardised(cov.static, len(spec.static_numeric), spec, "static")
            f[:, n_x : n_x + n_s] = np.repeat(st, size, axis=0)
        if n_f:  # the known values up to T + H (a step the data does not give stays 0)
            assert cov.xf is not None
            k = np.minimum(T + H, cov.xf_len)
            pk = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
            xf = _standardised(
                cov.xf[np.repeat(cov.xf_at, k) + pk], len(spec.future_numeric), spec, "future"
            )
            f[np.repeat(self.start, k) + pk, n_x + n_s : n_x + n_s + n_f] = np.nan_to_num(
                xf, nan=0.0
            )
        if self.n_cal:  # calendar of the data and forecast steps (the padding before stays 0)
            times = _times_with_future(series, H, spec.freq)
            f[_runs(self.start, T + H, M), n_x + n_s + n_f :] = calendar_features(
                times, spec.freq, spec.calendar
            )
        self.feats = f

    def _build_strided(self, T: np.ndarray) -> bool:
        """:meth:`_build_columnar` as a (series, step) matrix: each series one row of ``C + max(T) + H``
        steps (a shorter series' row ends in more zero padding, which no window of it reaches), its
        values copied from the shared column in one strided or row-gathering copy (no index or mask
        over the steps). Taken when every series' values lie in one shared column and the rows add at
        most :data:`ROW_SLACK` times the flat layout's steps (series of one length, or nearly: a panel file's
        complete series, their heads, a subset of them); False (nothing built) otherwise. The windows
        are those of the flat layout, value for value; only ``start`` (each row's ``C``-th step)
        differs."""
        series, spec, C, H = self.series, self.spec, self.C, self.H
        n, L = len(series), int(T.max())
        W = C + L + H
        if self.n_cal or L < 1 or n * W > ROW_SLACK * int((C + T + H).sum()):
            return False
        if spec.observed_input and has_gaps(series):
            return False
        store = _shared_store(series)
        if store is None:
            return False
        at = starts_of(series)
        col = store.log() if spec.log else store.y
        if col.dtype != np.float64 or at.min() < 0 or at.max() + L > len(col):
            return False
        P = int(at[1] - at[0]) if n > 1 else L
        if P >= L and (n == 1 or (np.diff(at) == P).all()):  # evenly spaced: a view, no copy
            src = np.lib.stride_tricks.as_strided(
                col[at[0] :],
                shape=(n, L),
                strides=(P * col.itemsize, col.itemsize),
                writeable=False,
            )
        else:  # rows gathered from a sliding view of the column (no step index)
            src = np.lib.stride_tricks.sliding_window_view(col, L)[at]
        if spec.scaling == "series":
            mu, sd = series_scalers(spec, series)
            src = (src - mu[:, None]) / sd[:, None]
        fy = np.zeros((n, W))
        obs = np.zeros((n, W), dtype=np.float32)
        if (T == L).all():
            fy[:, C : C + L] = src
            obs[:, C : C + L] = 1.0
        else:  # the steps after each series' end stay padding
            inside = np.arange(L)[None, :] < T[:, None]
            fy[:, C : C + L] = np.where(inside, src, 0.0)
            obs[:, C : C + L] = inside
        self.fy, self.obs = fy.reshape(-1), obs.reshape(-1)
        self.feats = np.zeros((n * W, 0), dtype=np.float32)
        self.start = np.arange(n, dtype=np.int64) * W + C
        return True

    @property
    def past_features(self) -> int:
        return (2 if self.spec.observed_input else 1) + self.feats.shape[1]

    @property
    def future_features(self) -> int:
        return self.n_known + (2 if self.spec.seasonal_inputs else 0)

    def origins(self, i: int, first: int = 1, full_target: bool = False) -> np.ndarray:
        """Every valid origin of series ``i`` from ``first`` (targets fully observed if ``full_target``)."""
        last = self.length[i] - (self.H if full_target else 1)
        return np.arange(max(first, 1), last + 1, dtype=np.int64)

    def windows(self, sidx, origins) -> dict[str, np.ndarray]:
        """past (N, C, 2+Fx+Fs+Ff+Fk; one less without the observed flag), future (N, H, Ff+Fk [+2]),
        target (N, H), tmask (N, H), observed (N, C), level (N,), scale (N,): the model sees
        z = (f(y) − level) / scale."""
        sidx = np.asarray(sidx, dtype=np.int64)
        o = np.asarray(origins, dtype=np.int64)
        if len(o) and ((o < 1).any() or (o > self.length[sidx]).any()):
            raise ValueError("origins must lie in [1, len(series)]")
        C, H, spec = self.C, self.H, self.spec
        base = self.start[sidx] + o  # flat index of the first forecast step
        ip = base[:, None] + np.arange(-C, 0)[None, :]
        it = base[:, None] + np.arange(H)[None, :]
        ctx, cm = self.fy[ip], self.obs[ip]
        tm = self.obs[it]
        if spec.scaling == "window":
            L = max(1, min(spec.season_length, C))
            w = cm[:, -L:]
            level = (ctx[:, -L:] * w).sum(1) / np.maximum(w.sum(1), 1.0)
            if spec.log:
                scale = np.ones(len(o))
            else:
                n = np.maximum(cm.sum(1), 1.0)
                mean = (ctx * cm).sum(1) / n
                sd = np.sqrt((((ctx - mean[:, None]) * cm) ** 2).sum(1) / n)
                scale = np.maximum(sd, 0.01 * np.abs(ctx * cm).sum(1) / n + 1e-8)
        else:
            level, scale = np.zeros(len(o)), np.ones(len(o))
        z = (ctx - level[:, None]) / scale[:, None] * cm
        zt = (self.fy[it] - level[:, None]) / scale[:, None] * tm
        # past: z | observed flag | feats, written into one float32 array (the values of
        # concatenate(...).astype(float32) without the float64 copy)
        nf = 2 if spec.observed_input else 1
        past = np.empty((len(o), C, nf + self.feats.shape[1]), dtype=np.float32)
        past[..., 0] = z
        if spec.observed_input:
            past[..., 1] = cm
        if self.feats.shape[1]:
            past[..., nf:] = self.feats[ip]
        fut = [self.feats[it][..., self.feats.shape[1] - self.n_known :]]
        if spec.seasonal_inputs:
            m = spec.season_length
            k = np.arange(H)
            j = C + k - m * (k // m + 1)  # context position of each step's lag-m value
            jj = np.clip(j, 0, C - 1)
            avail = (j >= 0)[None, :] & (cm[:, jj] > 0)
            fut += [(z[:, jj] * avail)[..., None], avail[..., None].astype(np.float64)]
        future = np.concatenate(fut, axis=-1).astype(np.float32)
        return {
            "past": past,
            "future": future,
            "target": zt.astype(np.float32),
            "tmask": tm.astype(np.float32),
            "observed": cm.astype(np.float32),
            "level": level,
            "scale": scale,
        }

    def to_raw(self, zq: np.ndarray, level: np.ndarray, scale: np.ndarray, sidx) -> np.ndarray:
        """Model output (N, H, Q) on the z scale → the data scale."""
        fy = zq * scale[:, None, None] + level[:, None, None]
        if self.spec.scaling == "series":
            if self._scalers is None:  # each series' statistics once, not once per window
                self._scalers = series_scalers(self.spec, self.series)
            i = np.asarray(sidx, dtype=np.int64)
            mu = self._scalers[0][i][:, None, None]
            sd = self._scalers[1][i][:, None, None]
            fy = fy * sd + mu
        return inverse(fy, self.spec)


#: the (series, step) matrix layout of a panel may hold at most this share more steps than the flat one
ROW_SLACK = 1.25


def _runs(starts: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """(size,) bool, True on ``[starts[i], starts[i] + lengths[i])`` of every i (ascending, disjoint
    runs): selects the same elements, in the same order, as the index ``concatenate(arange(s, s + l))``
    at a byte a position instead of eight (one ``np.repeat`` of False/True over the gaps and runs)."""
    ok = lengths > 0
    a = np.asarray(starts, dtype=np.int64)[ok]
    n = np.asarray(lengths, dtype=np.int64)[ok]
    ends = a + n
    counts = np.empty(2 * len(a) + 1, dtype=np.int64)
    counts[0:-1:2] = a - np.concatenate([[0], ends[:-1]])  # the gap before each run
    counts[1::2] = n
    counts[-1] = size - (ends[-1] if len(a) else 0)
    flags = np.zeros(len(counts), dtype=bool)
    flags[1::2] = True
    return np.repeat(flags, counts)


def _disjoint_ascending(starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether the runs ``[starts[i], starts[i] + lengths[i])`` lie in ascending order, none overlapping."""
    return bool(len(starts) == 0 or (starts[1:] >= starts[:-1] + lengths[:-1]).all())


def _times_with_future(series: Sequence[Series], H: int, freq: str) -> pd.Index:
    """Every series' times followed by its H forecast times, concatenated."""
    if isinstance(series, SeriesList):  # a regular grid: first + unit · k, k = 0 .. T + H − 1
        n = series.lengths + H
        k = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        if series.calendar is not None:  # positions on a calendar grid
            return pd.DatetimeIndex(series.stamps(np.repeat(series.first, n) + k).view("M8[ns]"))
        t0, unit, dates = _grid_starts(series)  # type: ignore[misc]
        t = np.repeat(t0, n) + unit * k
        return pd.DatetimeIndex(t.view("M8[ns]")) if dates else pd.Index(t)
    if freq == STEP:
        parts = []
        for s in series:
            t = s.times.to_numpy(np.int64)
            parts += [t, np.arange(t[-1] + 1, t[-1] + 1 + H, dtype=np.int64)]
        return pd.Index(np.concatenate(parts))
    try:
        unit = int(pd.tseries.frequencies.to_offset(freq).nanos)  # a fixed duration
    except ValueError:
        unit = 0
    parts = []
    for s in series:
        t = pd.DatetimeIndex(s.times).as_unit("ns").asi8
        fut = (
            t[-1] + unit * np.arange(1, H + 1, dtype=np.int64)
            if unit
            else pd.DatetimeIndex(future_times(s.times[-1], H, freq)).as_unit("ns").asi8
        )
        parts += [t, fut]
    return pd.DatetimeIndex(np.concatenate(parts).view("M8[ns]"))


def windows(
    s: Series,
    spec: DataSpec,
    origins: list[int] | np.ndarray,
    context: int,
    horizon: int,
    with_target: bool = True,
) -> dict[str, np.ndarray]:
    """:class:`Panel` windows of one series at ``origins`` (an origin may be len(s): forecast past the end)."""
    w = Panel([s], spec, context, horizon).windows(np.zeros(len(origins), np.int64), origins)
    if with_target and len(origins) and max(origins) + horizon > len(s):
        raise ValueError("target windows run past the end of the series")
    if not with_target:
        w.pop("target")
        w.pop("tmask")
    return w
