"""Backtest metrics and baselines: naive, seasonal-naive, statsmodels ETS and ARIMA.

Every forecaster returns quantiles (0.1, 0.5, 0.9) for steps 1..H from a history ``y`` (already on the
modelling scale, e.g. log prices). Metrics (on the reporting scale):

    mae  = mean |y − ŷ|            rmse = sqrt(mean (y − ŷ)²)
    mase = mae / scale, scale = mean_t |y_t − y_{t−m}| over the training part (Hyndman & Koehler 2006)
    coverage_80 = share of actuals inside [q0.1, q0.9]

averaged over backtest origins and horizon steps.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

Z80 = 1.2815515655446004  # standard normal 0.9 quantile
BASELINES = ("naive", "seasonal_naive", "ets", "arima")
METRICS = ("mae", "rmse", "mase", "coverage_80")


def naive(y: np.ndarray, h: int) -> np.ndarray:
    """Last value repeated; 80% band from the one-step residual sd × sqrt(step). Returns (h, 3)."""
    y = np.asarray(y, dtype=np.float64)
    point = np.full(h, y[-1])
    sd = np.sqrt(np.mean(np.diff(y) ** 2)) if len(y) > 1 else 0.0
    width = Z80 * sd * np.sqrt(np.arange(1, h + 1))
    return np.stack([point - width, point, point + width], axis=1)


def seasonal_naive(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """ŷ_{T+k} = y_{T+k−m(⌊(k−1)/m⌋+1)}; band from the seasonal residual sd × sqrt(⌊(k−1)/m⌋+1). (h, 3)."""
    y = np.asarray(y, dtype=np.float64)
    if m <= 1 or len(y) <= m:
        return naive(y, h)
    k = np.arange(1, h + 1)
    seasons = (k - 1) // m + 1
    point = y[len(y) - 1 + k - m * seasons]
    sd = np.sqrt(np.mean((y[m:] - y[:-m]) ** 2))
    width = Z80 * sd * np.sqrt(seasons)
    return np.stack([point - width, point, point + width], axis=1)


def ets(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """statsmodels ETSModel: additive error, additive damped trend, additive season of length m when the
    history holds at least two seasons (else none); 80% prediction interval. (h, 3)."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = pd.Series(
        np.asarray(y, dtype=np.float64)
    )  # statsmodels' ETS prediction wants an indexed series
    seasonal = "add" if 1 < m and len(y) >= 2 * m + 2 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ETSModel(
            y,
            error="add",
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=m if seasonal else None,
        )
        res = model.fit(disp=False, maxiter=200)
        frame = res.get_prediction(start=len(y), end=len(y) + h - 1).summary_frame(alpha=0.2)
    return np.stack(
        [frame["pi_lower"].to_numpy(), frame["mean"].to_numpy(), frame["pi_upper"].to_numpy()],
        axis=1,
    )


def arima(y: np.ndarray, h: int, m: int, max_history: int = 400) -> np.ndarray:
    """statsmodels ARIMA(2,1,1) (no seasonal part, to stay quick) on the last ``max_history`` points. (h, 3)."""
    from statsmodels.tsa.arima.model import ARIMA

    y = np.asarray(y, dtype=np.float64)[-max_history:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ARIMA(y, order=(2, 1, 1)).fit()
        fc = res.get_forecast(h)
        ci = np.asarray(fc.conf_int(alpha=0.2))
        mean = np.asarray(fc.predicted_mean)
    return np.stack([ci[:, 0], mean, ci[:, 1]], axis=1)


def baseline_forecast(name: str, y: np.ndarray, h: int, m: int) -> np.ndarray:
    if name == "naive":
        return naive(y, h)
    if name == "seasonal_naive":
        return seasonal_naive(y, h, m)
    if name == "ets":
        return ets(y, h, m)
    if name == "arima":
        return arima(y, h, m)
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")


def mase_scale(y_train: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal-naive forecast with period m (naive when the series is too short)."""
    y = np.asarray(y_train, dtype=np.float64)
    m = m if len(y) > m else 1
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    return scale if scale > 0 else float("nan")


def point_metrics(actual: np.ndarray, quantiles: np.ndarray, scale: float) -> dict[str, float]:
    """actual (N,), quantiles (N, 3) → mae, rmse, mase, coverage_80."""
    a = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    err = a - q[:, 1]
    mae = float(np.mean(np.abs(err)))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": mae / scale if scale and math.isfinite(scale) else float("nan"),
        "coverage_80": float(np.mean((a >= q[:, 0]) & (a <= q[:, 2]))),
    }


def average(per_series: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over series (NaN entries skipped)."""
    out = {}
    for k in METRICS:
        vals = [d[k] for d in per_series if d.get(k) is not None and math.isfinite(d[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def run_baselines(
    histories: list[np.ndarray], h: int, m: int, names=BASELINES, cpu_limit_s: float = 120.0
) -> dict[str, list[np.ndarray] | None]:
    """Forecasts (h, 3) of each baseline for each history. A statsmodels baseline that fails, or whose
    total CPU time (not wall time: the machine may be busy) passes ``cpu_limit_s``, is reported as None
    (left out, not guessed)."""
    out: dict[str, list[np.ndarray] | None] = {}
    for name in names:
        t0 = time.process_time()
        fcs = []
        try:
            for y in histories:
                fcs.append(baseline_forecast(name, y, h, m))
                if name in ("ets", "arima") and time.process_time() - t0 > cpu_limit_s:
                    raise TimeoutError(f"{name} took over {cpu_limit_s:.0f}s of CPU time")
            out[name] = fcs
        except Exception as e:
            warnings.warn(
                f"baseline {name} left out: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2
            )
            out[name] = None
    return out


def best_per_metric(rows: dict[str, dict[str, float]]) -> dict[str, str]:
    """Name of the best row per metric: lowest mae/rmse/mase, coverage_80 closest to 0.8."""
    best = {}
    for k in METRICS:
        cands = [
            (n, r[k]) for n, r in rows.items() if r and r.get(k) is not None and math.isfinite(r[k])
        ]
        if not cands:
            continue
        key = (lambda v: abs(v[1] - 0.8)) if k == "coverage_80" else (lambda v: v[1])
        best[k] = min(cands, key=key)[0]
    return best


def render_table(rows: dict[str, dict[str, float]], title: str):
    """A rich Table of metrics per forecaster, the best per metric in bold green with a ★."""
    from rich.table import Table

    best = best_per_metric(rows)
    table = Table(title=title)
    table.add_column("forecaster", style="bold")
    for k in METRICS:
        table.add_column(k, justify="right")
    for name, r in rows.items():
        cells = []
        for k in METRICS:
            v = None if not r else r.get(k)
            if v is None or not math.isfinite(v):
                cells.append("—")
            elif best.get(k) == name:
                cells.append(f"[bold green]{v:.4g} ★[/]")
            else:
                cells.append(f"{v:.4g}")
        table.add_row(name, *cells)
    return table
