"""Backtest metrics and the baselines forecasters know, computed with statsforecast.

Every forecaster gives quantiles (default 0.1, 0.5, 0.9; any symmetric set, see calibrate.py) for steps 1..H from a history ``y`` on the data scale.
Metrics (per series, averaged over its backtest origins and horizon steps; then a plain mean over series):

    mae   = mean |y − ŷ|            rmse = sqrt(mean (y − ŷ)²)
    mase  = mae / scale, scale = mean_t |y_t − y_{t−m}| over the part before the first origin
            (Hyndman & Koehler 2006; m = 1 when that part is not longer than m)
    smape = mean 200·|y − ŷ| / (|y| + |ŷ|)   (0 where both are 0; the M3 recalculation's definition)
    coverage_80 = share of actuals inside [q0.1, q0.9]; in general coverage_<100(1 − 2q)> for each
                  interval [q, 1 − q] of the quantile levels (calibrate.coverage_key)

Baselines (``--baselines``): ``naive``, ``snaive`` (seasonal naive), ``ets`` (AutoETS), ``theta`` (AutoTheta),
``arima`` (AutoARIMA, slow), all from ``statsforecast`` with their own prediction intervals (80% for the
default levels).
"""

from __future__ import annotations

import math
import warnings
from typing import cast

import numpy as np

from ...errors import UserInputError
from . import calibrate as Q

#: default ``--baselines`` and every known name (``arima`` is opt-in: ~10x the CPU of the others together)
BASELINES = ("naive", "snaive", "ets", "theta")
KNOWN_BASELINES = ("naive", "snaive", "ets", "theta", "arima")
METRICS = ("mae", "rmse", "mase", "smape", "coverage_80")
#: statsforecast's column name of each baseline
SF_NAMES = {
    "naive": "Naive",
    "snaive": "SeasonalNaive",
    "ets": "AutoETS",
    "theta": "AutoTheta",
    "arima": "AutoARIMA",
}


def parse_baselines(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--baselines`` value → list of names. ``"none"`` (or empty) → ``[]``; unknown names are refused.

    >>> parse_baselines("naive,snaive,ets")
    ['naive', 'snaive', 'ets']
    >>> parse_baselines("none")
    []
    """
    if text is None:
        return list(BASELINES)
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip().lower() for s in items if s.strip()]
    if names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in KNOWN_BASELINES]
    if bad or "none" in names:
        raise UserInputError(
            f"--baselines expects a comma-separated list of {', '.join(KNOWN_BASELINES)} or 'none', "
            f"got {text!r}"
        )
    return list(dict.fromkeys(names))


def _sf_models(names: list[str], m: int):
    from statsforecast.models import (
        AutoARIMA,
        AutoETS,
        AutoTheta,
        Naive,
        SeasonalNaive,
    )

    make = {
        "naive": lambda: Naive(),
        "snaive": lambda: SeasonalNaive(season_length=m),
        "ets": lambda: AutoETS(season_length=m),
        "theta": lambda: AutoTheta(season_length=m),
        "arima": lambda: AutoARIMA(season_length=m),
    }
    return [make[n]() for n in names]


def statsforecast_baselines(
    histories: list[np.ndarray],
    h: int,
    m: int,
    names: list[str] | tuple[str, ...] = BASELINES,
    quantiles: tuple[float, ...] = Q.DEFAULT_QUANTILES,
) -> dict[str, np.ndarray]:
    """Forecasts of each baseline for each history: ``{name: (N, h, Q)}`` (the point forecast as the median,
    the bounds of its prediction interval of level 100(1 − 2q) as quantiles q and 1 − q; default q0.1 = lower
    80% bound, q0.9 = upper), from one ``StatsForecast(..., freq=1, n_jobs=1).forecast`` call.

    Histories are plain steps (the calendar does not matter to these models). Where a model fails on a
    series, statsforecast's fallback (seasonal naive) is used for it, as statsforecast documents.

    >>> import numpy as np
    >>> out = statsforecast_baselines([np.arange(1.0, 30.0)], h=3, m=1, names=["naive"])
    >>> out["naive"][0, :, 1].tolist()
    [29.0, 29.0, 29.0]
    """
    names = list(names)
    if not names or not histories:  # nothing forecast: NaN, never a score of 0
        return {n: np.full((len(histories), h, len(quantiles)), np.nan) for n in names}
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    ids = np.concatenate([np.full(len(y), i, dtype=np.int64) for i, y in enumerate(histories)])
    ds = np.concatenate([np.arange(len(y), dtype=np.int64) for y in histories])
    ys = np.concatenate([np.asarray(y, dtype=np.float64) for y in histories])
    df = pd.DataFrame({"unique_id": ids, "ds": ds, "y": ys})
    sf = StatsForecast(
        models=_sf_models(names, m),
        freq=1,
        n_jobs=1,
        fallback_model=SeasonalNaive(season_length=m),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ivs = Q.intervals(quantiles)
        levels: list[int | float] = [_level(cov) for _, _, cov in ivs]
        out = sf.forecast(df=df, h=h, level=sorted(set(levels)))  # type: ignore[arg-type]
    fc = cast(pd.DataFrame, out).sort_values(["unique_id", "ds"])
    if len(fc) != len(histories) * h:
        raise RuntimeError(
            f"statsforecast returned {len(fc)} rows for {len(histories)} series × {h} steps"
        )
    out = {}
    for n in names:
        col = SF_NAMES[n]
        point = fc[col].to_numpy()
        cols: list[np.ndarray] = [point] * len(quantiles)
        for (lo, hi, _), lv in zip(ivs, levels):
            cols[lo] = fc[f"{col}-lo-{lv}"].to_numpy()
            cols[hi] = fc[f"{col}-hi-{lv}"].to_numpy()
        arr = np.stack(cols, axis=-1).reshape(len(histories), h, len(quantiles))
        # a point forecast without an interval (statsforecast gives NaN bounds on degenerate series)
        mid = Q.median_index(quantiles)
        for k in range(len(quantiles)):
            bad = ~np.isfinite(arr[..., k])
            arr[..., k][bad] = arr[..., mid][bad]
        out[n] = arr.astype(np.float64)
    return out


def _level(coverage: float) -> int | float:
    """statsforecast's ``level`` of an interval (80 for 0.8; an int when whole, so the column is "lo-80")."""
    v = round(100 * coverage, 4)
    return int(v) if v == int(v) else v


def mase_scale(y_train: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal-naive forecast with period m (naive when the series is too short).

    >>> mase_scale(np.array([1.0, 2.0, 4.0]), 1)
    1.5
    """
    y = np.asarray(y_train, dtype=np.float64)
    m = m if len(y) > m else 1
    if len(y) <= m:
        return float("nan")
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    return scale if scale > 0 else float("nan")


def smape(actual: np.ndarray, point: np.ndarray) -> float:
    """Mean of 200·|y − ŷ| / (|y| + |ŷ|) (a term is 0 where y = ŷ = 0).

    >>> smape(np.array([100.0]), np.array([50.0]))
    66.66666666666667
    """
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(point, dtype=np.float64)
    den = np.abs(a) + np.abs(f)
    terms = np.where(den > 0, 200.0 * np.abs(a - f) / np.where(den > 0, den, 1.0), 0.0)
    return float(np.mean(terms))


def point_metrics(
    actual: np.ndarray,
    quantiles: np.ndarray,
    scale: float,
    levels: tuple[float, ...] = Q.DEFAULT_QUANTILES,
) -> dict[str, float]:
    """actual (N,), quantiles (N, Q) at ``levels`` → mae, rmse, mase, smape (of the median) and
    ``coverage_<level>`` of every interval (coverage_80 for the default levels)."""
    a = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if a.size == 0:  # nothing to score
        nan = float("nan")
        covs = {Q.coverage_key(cov): nan for _, _, cov in Q.intervals(levels)}
        return {"mae": nan, "rmse": nan, "mase": nan, "smape": nan, **covs}
    point = q[:, Q.median_index(levels)]
    err = a - point
    mae = float(np.mean(np.abs(err)))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": mae / scale if scale and math.isfinite(scale) else float("nan"),
        "smape": smape(a, point),
        **Q.coverages(a, q, levels),
    }


def metric_names(rows) -> list[str]:
    """The metric keys of some metric dicts, in first-seen order (the point metrics first)."""
    names = list(METRICS[:4])
    for r in rows:
        for k in r or {}:
            if k not in names:
                names.append(k)
    return names


def _coverage_target(key: str) -> float | None:
    if not key.startswith("coverage_"):
        return None
    try:
        return float(key.removeprefix("coverage_")) / 100
    except ValueError:
        return None


def average(per_series: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over series (NaN entries skipped)."""
    out = {}
    for k in metric_names(per_series):
        vals = [d[k] for d in per_series if d.get(k) is not None and math.isfinite(d[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def best_per_metric(rows: dict[str, dict[str, float]]) -> dict[str, str]:
    """Name of the best row per metric: lowest mae/rmse/mase/smape, coverage_<p> closest to p/100."""
    best = {}
    for k in metric_names(rows.values()):
        cands = [
            (n, r[k]) for n, r in rows.items() if r and r.get(k) is not None and math.isfinite(r[k])
        ]
        if not cands:
            continue
        target = _coverage_target(k)
        best[k] = min(cands, key=lambda v: v[1] if target is None else abs(v[1] - target))[0]
    return best


def render_table(
    rows: dict[str, dict[str, float]],
    title: str,
    notes: list[str] | None = None,
    partial: set[str] | None = None,
):
    """A rich Table of metrics per forecaster, the best per metric in bold green with a ★; ``notes``
    (e.g. how many actuals were missing) are its caption; the ``partial`` forecasters (they covered
    fewer steps than the others) are marked so and never starred."""
    from rich.table import Table

    partial = partial or set()
    best = best_per_metric({n: r for n, r in rows.items() if n not in partial})
    names = metric_names(rows.values())
    table = Table(title=title, caption="\n".join(notes) if notes else None)
    table.add_column("forecaster", style="bold")
    for k in names:
        table.add_column(k, justify="right")
    for name, r in rows.items():
        cells = []
        for k in names:
            v = None if not r else r.get(k)
            if v is None or not math.isfinite(v):
                cells.append("—")
            elif best.get(k) == name:
                cells.append(f"[bold green]{v:.4g} ★[/]")
            else:
                cells.append(f"{v:.4g}")
        table.add_row(f"{name} (partial)" if name in partial else name, *cells)
    return table
