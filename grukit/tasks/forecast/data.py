"""Forecasting data: built-in datasets, CSV checks, regular time grid, gap filling, scaling, windows.

A table (one row per timestamp, optionally per series id) becomes a list of :class:`Series` on a regular time
grid. Past-only covariates (numeric, or categorical → one-hot) and calendar features (sin/cos of the period
positions known for any future time) form the model inputs. Scaling is per series: z = (f(y) − mean) / std with
f = log when ``log=True``, statistics from the part of the series before the first backtest origin.
"""

from __future__ import annotations

import dataclasses
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserInputError

#: Built-in datasets: file in grukit/data, columns and defaults.
BUILTIN: dict[str, dict[str, Any]] = {
    "weather": dict(
        file="seattle-weather.csv",
        time_col="date",
        target="temp_max",
        id_col=None,
        covariates=["precipitation", "temp_min", "wind", "weather"],
        horizon=7,
        context=56,
        backtest=20,
        log=False,
        calendar=True,
    ),
    "stocks": dict(
        file="stocks.csv",
        time_col="date",
        target="price",
        id_col="symbol",
        covariates=[],
        horizon=6,
        context=24,
        backtest=6,
        stride=3,
        log=True,
        calendar=False,
    ),  # prices have no month-of-year season; see docs/forecast.md "Measured"
}

MAX_GAP_SHARE = 0.02


class GapFilledWarning(UserWarning):
    """Some missing timestamps were filled by time interpolation."""


def load_builtin(name: str) -> pd.DataFrame:
    """The built-in dataset ``name`` ("weather" or "stocks") as shipped in grukit/data."""
    if name not in BUILTIN:
        raise UserInputError(f"--dataset expects one of {sorted(BUILTIN)}, got {name!r}")
    with resources.files("grukit").joinpath("data").joinpath(BUILTIN[name]["file"]).open("rb") as f:
        return pd.read_csv(f)


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a user CSV with a clear message when it cannot be read."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserInputError(f"--csv {path}: no such file")
    try:
        df = pd.read_csv(p)
    except Exception as e:
        raise UserInputError(
            f"--csv {path}: could not read it as CSV ({type(e).__name__}: {e})"
        ) from None
    if df.empty:
        raise UserInputError(f"--csv {path}: the file has no data rows")
    return df


# ----------------------------------------------------------------------------------------- frequency
def infer_freq(times: pd.DatetimeIndex) -> str:
    """Frequency alias of sorted unique ``times``; with gaps, from the most common spacing."""
    if len(times) < 3:
        raise UserInputError(
            f"need at least 3 timestamps to infer the frequency, got {len(times)}; pass --freq"
        )
    f = pd.infer_freq(times)
    if f is not None:
        return f
    diffs = pd.Series(times[1:] - times[:-1])
    step = diffs.mode().iloc[0]
    days = step / pd.Timedelta(days=1)
    if 28 <= days <= 31:
        return "MS" if (times.day == 1).mean() > 0.9 else "ME"
    if 89 <= days <= 92:
        return "QS" if (times.day == 1).mean() > 0.9 else "QE"
    if 365 <= days <= 366:
        return "YS" if (times.dayofyear == 1).mean() > 0.9 else "YE"
    if days == 7:
        return "W-" + times[0].day_name()[:3].upper()
    if days >= 1 and float(days).is_integer():
        return "D" if days == 1 else f"{int(days)}D"
    return pd.tseries.frequencies.to_offset(step).freqstr


def _offset(freq: str):
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise UserInputError(
            f"--freq {freq!r} is not a pandas frequency alias (e.g. D, h, W, MS, ME, QS)"
        ) from None


def _kind(freq: str) -> str:
    """'subdaily', 'daily', 'bday', 'weekly', 'monthly', 'quarterly', 'yearly' or 'other'."""
    off = _offset(freq)
    name = type(off).__name__
    if name in ("Hour", "Minute", "Second", "Milli", "Micro", "Nano"):
        return "subdaily"
    if name == "Day":
        return "daily"
    if name in ("BusinessDay", "CustomBusinessDay"):
        return "bday"
    if name == "Week":
        return "weekly"
    if name.startswith(("Month", "BusinessMonth", "SemiMonth")):
        return "monthly"
    if name.startswith(("Quarter", "BusinessQuarter")):
        return "quarterly"
    if name.startswith(("Year", "BusinessYear")):
        return "yearly"
    return "other"


def default_season_length(freq: str) -> int:
    """m for seasonal-naive/ETS/MASE: daily 7, business-daily 5, weekly 52, monthly 12, quarterly 4, hourly 24."""
    off = _offset(freq)
    k = _kind(freq)
    if k == "subdaily":
        return 24 if type(off).__name__ == "Hour" and off.n == 1 else 1
    return {
        "daily": 7 if off.n == 1 else 1,
        "bday": 5,
        "weekly": 52,
        "monthly": 12 if off.n == 1 else 1,
        "quarterly": 4,
        "yearly": 1,
    }.get(k, 1)


def calendar_names(freq: str) -> list[str]:
    k = _kind(freq)
    return {
        "subdaily": ["hour_sin", "hour_cos", "dow_sin", "dow_cos"],
        "daily": ["dow_sin", "dow_cos", "doy_sin", "doy_cos"],
        "bday": ["dow_sin", "dow_cos", "doy_sin", "doy_cos"],
        "weekly": ["doy_sin", "doy_cos"],
        "monthly": ["month_sin", "month_cos"],
        "quarterly": ["month_sin", "month_cos"],
    }.get(k, [])


def calendar_features(
    times: pd.DatetimeIndex, freq: str, names: list[str] | None = None
) -> np.ndarray:
    """(len(times), F) sin/cos positions in the day, week, year — known for future times too. ``names``
    (default: :func:`calendar_names` of ``freq``) picks the features."""
    cols = []
    for name in calendar_names(freq) if names is None else names:
        what, fn = name.rsplit("_", 1)
        if what == "hour":
            frac = (times.hour + times.minute / 60) / 24
        elif what == "dow":
            frac = times.dayofweek / 7
        elif what == "doy":
            frac = (times.dayofyear - 1) / 365.25
        else:
            frac = (times.month - 1) / 12
        ang = 2 * np.pi * np.asarray(frac, dtype=np.float64)
        cols.append(np.sin(ang) if fn == "sin" else np.cos(ang))
    if not cols:
        return np.zeros((len(times), 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def future_times(last: pd.Timestamp, horizon: int, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


# ----------------------------------------------------------------------------------------- spec + series
@dataclasses.dataclass
class DataSpec:
    """How a table becomes model inputs; stored in the model file so ``predict`` needs nothing else."""

    time_col: str
    target: str
    freq: str
    season_length: int
    id_col: str | None = None
    numeric_covariates: list[str] = dataclasses.field(default_factory=list)
    categorical_covariates: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    log: bool = False
    calendar: list[str] = dataclasses.field(default_factory=list)
    #: per series id: {"y_mean", "y_std", "x_mean": [...], "x_std": [...]}
    scalers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def covariates(self) -> list[str]:
        return [*self.numeric_covariates, *self.categorical_covariates]

    @property
    def n_past_covariates(self) -> int:
        return len(self.numeric_covariates) + sum(
            len(v) for v in self.categorical_covariates.values()
        )

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class Series:
    """One series on a regular grid: raw target ``y`` (T,), past covariates ``x`` (T, Fx) unscaled."""

    id: str
    times: pd.DatetimeIndex
    y: np.ndarray
    x: np.ndarray
    filled: int = 0

    def __len__(self) -> int:
        return len(self.y)


def _check_columns(df: pd.DataFrame, cols: list[str], what: str) -> None:
    for c in cols:
        if c not in df.columns:
            raise UserInputError(
                f"{what} column {c!r} not found; the CSV has columns {list(df.columns)}"
            )


def make_spec(
    df: pd.DataFrame,
    time_col: str,
    target: str,
    covariates: list[str] | None = None,
    id_col: str | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    log: bool = False,
    calendar: bool = True,
) -> DataSpec:
    """Check the columns of ``df`` and work out frequency, season length and covariate encodings."""
    covariates = list(covariates or [])
    _check_columns(df, [time_col], "--time-col")
    _check_columns(df, [target], "--target")
    if id_col is not None:
        _check_columns(df, [id_col], "--id-col")
    _check_columns(df, covariates, "--covariates")
    for c in covariates:
        if c in (time_col, target, id_col):
            raise UserInputError(f"--covariates: {c!r} is the time, target or id column")
    y = pd.to_numeric(df[target], errors="coerce")
    bad = y.isna() & df[target].notna()
    if bad.any():
        example = df[target][bad].iloc[0]
        raise UserInputError(
            f"--target {target!r} must be numeric; found non-numeric value {example!r} "
            f"({int(bad.sum())} such rows)"
        )
    if log and (y.dropna() <= 0).any():
        raise UserInputError(
            f"a log scale needs a positive target, but {target!r} has values ≤ 0; use --no-log"
        )
    times = _parse_times(df[time_col], time_col)
    if freq is None:
        keys = df[id_col] if id_col is not None else pd.Series(0, index=df.index)
        first = keys.iloc[0]
        t = pd.DatetimeIndex(np.sort(times[(keys == first).to_numpy()].unique()))
        freq = infer_freq(t)
    else:
        _offset(freq)
    m = default_season_length(freq) if season_length is None else int(season_length)
    if m < 1:
        raise UserInputError(f"--season-length must be at least 1, got {m}")
    numeric, categorical = [], {}
    for c in covariates:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            numeric.append(c)
        else:
            cats = sorted(str(v) for v in col.dropna().unique())
            if len(cats) > 50:
                raise UserInputError(
                    f"--covariates {c!r} is non-numeric with {len(cats)} distinct values; "
                    f"at most 50 categories are one-hot encoded"
                )
            categorical[c] = cats
    return DataSpec(
        time_col=time_col,
        target=target,
        freq=freq,
        season_length=m,
        id_col=id_col,
        numeric_covariates=numeric,
        categorical_covariates=categorical,
        log=bool(log),
        calendar=calendar_names(freq) if calendar else [],
    )


def _parse_times(col: pd.Series, name: str) -> pd.DatetimeIndex:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = pd.to_datetime(col)
    except (ValueError, TypeError) as e:
        raise UserInputError(
            f"--time-col {name!r}: could not parse {col.iloc[0]!r} as a date/time ({e})"
        ) from None
    if t.isna().any():
        raise UserInputError(
            f"--time-col {name!r}: {int(t.isna().sum())} empty or unparseable timestamps"
        )
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_localize(None)
    return pd.DatetimeIndex(t)


def to_series(df: pd.DataFrame, spec: DataSpec) -> list[Series]:
    """Split ``df`` by id, put each series on a regular ``spec.freq`` grid and fill short gaps.

    Gaps (missing timestamps or empty target cells) up to 2% of a series' grid are filled by time
    interpolation (GapFilledWarning says how many); more is an error. Duplicated timestamps are an error.
    """
    _check_columns(
        df,
        [spec.time_col, spec.target, *spec.covariates] + ([spec.id_col] if spec.id_col else []),
        "the model's",
    )
    times = _parse_times(df[spec.time_col], spec.time_col)
    work = pd.DataFrame({"_t": times.to_numpy()}, index=df.index)
    work["_y"] = pd.to_numeric(df[spec.target], errors="coerce")
    bad = work["_y"].isna() & df[spec.target].notna()
    if bad.any():
        raise UserInputError(
            f"--target {spec.target!r} must be numeric; found {df[spec.target][bad].iloc[0]!r}"
        )
    for c in spec.numeric_covariates:
        work[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c, cats in spec.categorical_covariates.items():
        vals = df[c].astype("string")
        for cat in cats:
            work[f"{c}={cat}"] = (vals == cat).astype(float).where(vals.notna())
    xcols = [c for c in work.columns if c not in ("_t", "_y")]
    ids = df[spec.id_col].astype(str) if spec.id_col else pd.Series("series", index=df.index)
    out = []
    for sid in pd.unique(ids):
        part = work[(ids == sid).to_numpy()].sort_values("_t")
        dup = part["_t"].duplicated()
        if dup.any():
            raise UserInputError(
                f"series {sid!r}: timestamp {part['_t'][dup].iloc[0]} appears more than once"
                + ("" if spec.id_col else "; pass --id-col if the file holds several series")
            )
        grid = pd.date_range(part["_t"].iloc[0], part["_t"].iloc[-1], freq=spec.freq)
        if len(grid) == 0 or not part["_t"].isin(grid).all():
            off_grid = part["_t"][~part["_t"].isin(grid)]
            raise UserInputError(
                f"series {sid!r}: timestamp {off_grid.iloc[0] if len(off_grid) else '?'} is not on "
                f"the {spec.freq!r} grid starting {part['_t'].iloc[0]}; pass the right --freq"
            )
        part = part.set_index("_t").reindex(grid)
        missing = int(part["_y"].isna().sum())
        if missing:
            share = missing / len(grid)
            if share > MAX_GAP_SHARE:
                raise UserInputError(
                    f"series {sid!r}: {missing} of {len(grid)} timestamps ({share:.1%}) have no {spec.target!r} "
                    f"value at frequency {spec.freq!r}; at most {MAX_GAP_SHARE:.0%} can be filled by interpolation"
                )
            warnings.warn(
                f"series {sid!r}: filled {missing} missing {spec.target!r} value(s) of {len(grid)} by "
                f"time interpolation",
                GapFilledWarning,
                stacklevel=2,
            )
        part["_y"] = part["_y"].interpolate(method="time", limit_direction="both")
        if xcols:
            part[xcols] = part[xcols].interpolate(method="time", limit_direction="both").fillna(0.0)
        if spec.log and (part["_y"] <= 0).any():
            raise UserInputError(
                f"series {sid!r}: a log scale needs a positive target; use --no-log"
            )
        out.append(
            Series(
                id=str(sid),
                times=pd.DatetimeIndex(grid),
                y=part["_y"].to_numpy(np.float64),
                x=part[xcols].to_numpy(np.float64) if xcols else np.zeros((len(grid), 0)),
                filled=missing,
            )
        )
    return out


# ----------------------------------------------------------------------------------------- scaling
def fit_scalers(series: list[Series], spec: DataSpec, until: dict[str, int]) -> None:
    """Per-series mean/std of f(y) and of the numeric covariates over ``[:until[id]]``, into ``spec``."""
    n_num = len(spec.numeric_covariates)
    for s in series:
        k = until[s.id]
        fy = transform(s.y[:k], spec)
        xs = s.x[:k, :n_num]
        spec.scalers[s.id] = {
            "y_mean": float(fy.mean()),
            "y_std": float(max(fy.std(), 1e-8)),
            "x_mean": xs.mean(0).tolist() if n_num else [],
            "x_std": np.maximum(xs.std(0), 1e-8).tolist() if n_num else [],
        }


def scaler_for(spec: DataSpec, s: Series) -> dict[str, Any]:
    """The stored statistics of series ``s``; a series unseen in training is scaled by its own history."""
    if s.id in spec.scalers:
        return spec.scalers[s.id]
    n_num = len(spec.numeric_covariates)
    fy = transform(s.y, spec)
    xs = s.x[:, :n_num]
    return {
        "y_mean": float(fy.mean()),
        "y_std": float(max(fy.std(), 1e-8)),
        "x_mean": xs.mean(0).tolist() if n_num else [],
        "x_std": np.maximum(xs.std(0), 1e-8).tolist() if n_num else [],
    }


def transform(y: np.ndarray, spec: DataSpec) -> np.ndarray:
    return np.log(y) if spec.log else np.asarray(y, dtype=np.float64)


def inverse(fy: np.ndarray, spec: DataSpec) -> np.ndarray:
    return np.exp(fy) if spec.log else fy


def scaled_inputs(s: Series, spec: DataSpec) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """z (T,) and past features (T, 1 + Fx + Fcal): [z, scaled numeric covs, one-hot, calendar]."""
    sc = scaler_for(spec, s)
    z = (transform(s.y, spec) - sc["y_mean"]) / sc["y_std"]
    n_num = len(spec.numeric_covariates)
    x = s.x.copy()
    if n_num:
        x[:, :n_num] = (x[:, :n_num] - np.asarray(sc["x_mean"])) / np.asarray(sc["x_std"])
    cal = calendar_features(s.times, spec.freq, spec.calendar)
    feats = np.concatenate([z[:, None], x, cal], axis=1).astype(np.float32)
    return z.astype(np.float32), feats, sc


def windows(
    s: Series,
    spec: DataSpec,
    origins: list[int] | np.ndarray,
    context: int,
    horizon: int,
    with_target: bool = True,
) -> dict[str, np.ndarray]:
    """Model inputs at each origin o (forecast steps o .. o+H-1 from steps o-C .. o-1).

    Returns past (N, C, 1+Fx+Fcal), future (N, H, Fcal) calendar features, target z (N, H) when
    ``with_target``. An origin may be len(s) (forecast past the end): its calendar comes from future_times.
    """
    z, feats, _ = scaled_inputs(s, spec)
    T = len(s)
    fut_times = future_times(s.times[-1], horizon, spec.freq)
    cal_all = np.concatenate(
        [
            calendar_features(s.times, spec.freq, spec.calendar),
            calendar_features(fut_times, spec.freq, spec.calendar),
        ]
    )
    origins = np.asarray(origins, dtype=np.int64)
    if len(origins) and (origins.min() < context or origins.max() > T):
        raise ValueError(
            f"origins must lie in [{context}, {T}], got {origins.min()}..{origins.max()}"
        )
    idx_p = origins[:, None] + np.arange(-context, 0)[None, :]
    idx_f = origins[:, None] + np.arange(horizon)[None, :]
    out = {"past": feats[idx_p], "future": cal_all[idx_f]}
    if with_target:
        if len(origins) and origins.max() + horizon > T:
            raise ValueError("target windows run past the end of the series")
        out["target"] = z[idx_f]
    return out
