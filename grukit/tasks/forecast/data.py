"""Forecasting data: built-in datasets, CSV checks, regular time grid, gap filling, scaling, windows.

A table (one row per timestamp, optionally per series id) becomes a list of :class:`Series` on a regular time
grid (dates, or plain integer steps: ``freq == "step"``). Past-only covariates (numeric, or categorical →
one-hot), future-known covariates (the same encodings; their values for the forecast steps come from rows
after a series' last target value), static covariates (one value per series: numeric standardised, or
categorical → one-hot) and calendar features (sin/cos of the period positions known for any future time) form
the model inputs. :class:`Panel` cuts windows (context C, horizon H) from many series at once: a context that starts
before a series does is left-padded and masked, and each window is scaled on its own (``scaling="window"``:
relative to the level of the context's last season, on the log scale where the data is positive) or, as
before, by per-series statistics (``scaling="series"``).
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
        scaling="series",  # chosen by validation loss: see docs/forecast.md "Measured"
        seasonal="none",
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
        scaling="series",
        seasonal="none",
    ),  # prices have no month-of-year season; see docs/forecast.md "Measured"
}

#: ``DataSpec.freq`` of a table whose time column holds plain integer steps (no calendar)
STEP = "step"


class GapFilledWarning(UserWarning):
    """Some series have missing target values (masked for the model, interpolated for the baselines)."""


class TrailingGapWarning(GapFilledWarning):
    """The last target cells of some series were empty and were forward-filled."""


class UnseenCategoryWarning(UserWarning):
    """A categorical covariate holds values the model did not see in training."""


def load_builtin(name: str) -> pd.DataFrame:
    """The built-in dataset ``name`` ("weather" or "stocks") as shipped in grukit/data."""
    if name not in BUILTIN:
        raise UserInputError(f"--dataset expects one of {sorted(BUILTIN)}, got {name!r}")
    with resources.files("grukit").joinpath("data").joinpath(BUILTIN[name]["file"]).open("rb") as f:
        return pd.read_csv(f)


def read_table(path: str | Path, id_col: str | None = None, flag: str = "--data") -> pd.DataFrame:
    """Read a user table (``.parquet``/``.pq``, otherwise CSV) with a one-line message when it cannot be.

    The id column (``id_col``) of a CSV is read as text exactly as written (``00501`` stays ``00501``,
    ``NA`` is a series named ``NA``); every other column keeps pandas' reading (an empty target cell is
    missing). A folder, a device such as /dev/null, an empty file or a file of NUL bytes is refused by
    what it is.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserInputError(f"{flag} {path}: no such file")
    if p.is_dir():
        raise UserInputError(f"{flag} {path}: is a folder, not a data file (.csv or .parquet)")
    if not p.is_file():
        raise UserInputError(
            f"{flag} {path}: is not a regular file (a device or pipe), not a data file"
        )
    if p.stat().st_size == 0:
        raise UserInputError(f"{flag} {path}: the file is empty")
    with open(p, "rb") as f:
        head = f.read(4096)
    parquet = p.suffix.lower() in (".parquet", ".pq") or head[:4] == b"PAR1"
    if not parquet and head.strip(b"\x00") == b"":
        raise UserInputError(f"{flag} {path}: the file holds only NUL bytes, not a CSV table")
    try:
        if parquet:
            df = pd.read_parquet(p)
            if id_col is not None and id_col in df.columns:
                df[id_col] = df[id_col].astype("string").astype(object)
        else:
            df = _read_csv(p, id_col)
    except UserInputError:
        raise
    except Exception as e:
        what = "Parquet" if parquet else "CSV"
        msg = " ".join(str(e).split())[:200]
        raise UserInputError(
            f"{flag} {path}: could not read it as {what} ({type(e).__name__}: {msg})"
        ) from None
    if df.empty:
        raise UserInputError(f"{flag} {path}: the file has no data rows")
    return df


def _read_csv(p: Path, id_col: str | None) -> pd.DataFrame:
    if id_col is None:
        return pd.read_csv(p)
    cols = list(pd.read_csv(p, nrows=0).columns)
    if id_col not in cols:
        return pd.read_csv(p)  # the column check names it later
    from pandas._libs.parsers import STR_NA_VALUES

    na = sorted(STR_NA_VALUES)
    # NA parsing off for the id column only: the other columns keep pandas' defaults
    return pd.read_csv(
        p,
        dtype={id_col: str},
        keep_default_na=False,
        na_values={c: na for c in cols if c != id_col},
    )


def read_csv(path: str | Path, id_col: str | None = None) -> pd.DataFrame:
    """:func:`read_table` of a CSV (kept for ``--csv``)."""
    return read_table(path, id_col=id_col, flag="--csv")


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
    if freq == STEP:
        return None
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise UserInputError(
            f"--freq {freq!r} is not a pandas frequency alias (e.g. D, h, W, MS, ME, QS)"
        ) from None


def _kind(freq: str) -> str:
    """'subdaily', 'daily', 'bday', 'weekly', 'monthly', 'quarterly', 'yearly', 'step' or 'other'."""
    if freq == STEP:
        return "step"
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
    """m for seasonal-naive/ETS/MASE: daily 7, business-daily 5, weekly 52, monthly 12, quarterly 4, hourly 24,
    plain integer steps 1."""
    if freq == STEP:
        return 1
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


def calendar_names(freq: str, season_length: int = 1) -> list[str]:
    """Names of the calendar features of ``freq``; for plain steps with a season m > 1, the position in the
    season (``season<m>_sin``/``_cos``)."""
    k = _kind(freq)
    if k == "step":
        return (
            [f"season{season_length}_sin", f"season{season_length}_cos"]
            if season_length > 1
            else []
        )
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
        if what.startswith("season"):
            period = int(what[len("season") :])
            frac = (np.asarray(times, dtype=np.int64) % period) / period
        elif what == "hour":
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


def future_times(last, horizon: int, freq: str) -> pd.Index:
    """The ``horizon`` time stamps after ``last`` (integer steps when ``freq == "step"``)."""
    if freq == STEP:
        return pd.Index(np.arange(int(last) + 1, int(last) + 1 + horizon, dtype=np.int64))
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
    #: "window" (each window relative to its context's level) or "series" (per-series mean/std)
    scaling: str = "series"
    #: "none", "lag" (the lag-m values of the forecast steps as inputs) or "snaive" (lag inputs, and the
    #: median is a learned correction to seasonal naive)
    seasonal: str = "none"
    date_format: str | None = None
    #: whether ``past`` holds the observed flag (0 = left padding). False only for the single-series
    #: recipe (per-series scaling, every window inside its series; see train.legacy_split), whose
    #: model never sees padding and so, like the recipe before the global model, has no flag input
    observed_input: bool = True
    #: future-known covariates (values needed for the forecast steps too), numeric and categorical
    future_numeric: list[str] = dataclasses.field(default_factory=list)
    future_categorical: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: static covariates (one value per series), numeric and categorical (the category vocabulary)
    static_numeric: list[str] = dataclasses.field(default_factory=list)
    static_categorical: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: standardisation of the numeric future and static covariates over the training data:
    #: {"future_mean", "future_std", "static_mean", "static_std"} (see fit_covariate_scalers)
    covariate_scalers: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    @property
    def covariates(self) -> list[str]:
        return [*self.numeric_covariates, *self.categorical_covariates]

    @property
    def future_covariates(self) -> list[str]:
        return [*self.future_numeric, *self.future_categorical]

    @property
    def static_covariates(self) -> list[str]:
        return [*self.static_numeric, *self.static_categorical]

    @property
    def n_future_covariates(self) -> int:
        return len(self.future_numeric) + sum(len(v) for v in self.future_categorical.values())

    @property
    def n_static(self) -> int:
        return len(self.static_numeric) + sum(len(v) for v in self.static_categorical.values())

    @property
    def n_past_covariates(self) -> int:
        return len(self.numeric_covariates) + sum(
            len(v) for v in self.categorical_covariates.values()
        )

    @property
    def seasonal_inputs(self) -> bool:
        return self.seasonal in ("lag", "snaive") and self.season_length > 1

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class Series:
    """One series on a regular grid: raw target ``y`` (T,), past covariates ``x`` (T, Fx) unscaled.

    ``xf`` (T + F, Ff) holds the future-known covariates (one-hot for categorical ones, unscaled) of the T
    steps and of the F steps after them that the data gives (NaN where a value is missing); ``static``
    (S,) the series' static covariates (numeric unscaled, categorical one-hot).
    """

    id: str
    times: pd.Index
    y: np.ndarray
    x: np.ndarray
    filled: int = 0
    xf: np.ndarray | None = None
    static: np.ndarray | None = None
    #: (T,) bool, False where the target was missing and ``y`` holds an interpolated value; None: every
    #: step observed
    observed: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.xf is None:
            self.xf = np.zeros((len(self.y), 0))
        if self.static is None:
            self.static = np.zeros(0)

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> Series:
        """The first ``n`` steps (the part a model may train on). The future-known covariates after them
        are kept: they are known in advance (they never hold the target)."""
        return Series(
            self.id,
            self.times[:n],
            self.y[:n],
            self.x[:n],
            self.filled,
            self.xf,
            self.static,
            None if self.observed is None else self.observed[:n],
        )


def _check_columns(df: pd.DataFrame, cols: list[str], what: str) -> None:
    for c in cols:
        if c not in df.columns:
            raise UserInputError(
                f"{what} column {c!r} not found; the CSV has columns {list(df.columns)}"
            )


def check_target(df: pd.DataFrame, target: str) -> pd.Series:
    """The target as floats; a non-numeric cell or ±inf is refused naming the first such row."""
    col = df[target]
    y = pd.to_numeric(col, errors="coerce")
    bad = y.isna() & col.notna()
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise UserInputError(
            f"--target {target!r} must be numeric; found non-numeric value {col.iloc[i]!r} "
            f"in data row {i + 1} ({int(bad.sum())} such rows)"
        )
    inf = np.isinf(y.to_numpy(np.float64, na_value=np.nan))
    if inf.any():
        i = inf.nonzero()[0][0]
        raise UserInputError(
            f"--target {target!r} holds an infinite value ({str(col.iloc[i])!r} in data row {i + 1}; "
            f"{int(inf.sum())} such rows); remove or replace it"
        )
    return y.astype(np.float64)


def is_step_column(col: pd.Series) -> bool:
    """True when a time column holds plain integer steps (1, 2, 3 ...) rather than dates."""
    return pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col)


def spec_from_options(df: pd.DataFrame, opts: Any) -> DataSpec:
    """:func:`make_spec` with the data options of a run (a :class:`~.config.ForecastOptions`): the one place
    the CLI's early check and :func:`~.train.fit` build the spec from."""
    return make_spec(
        df,
        opts.time_col,
        opts.target,
        opts.covariates,
        opts.id_col,
        opts.freq,
        opts.season_length,
        opts.log,
        calendar=opts.calendar,
        date_format=opts.date_format,
        scaling=opts.scaling,
        seasonal=opts.seasonal,
        future_covariates=opts.future_covariates,
        static_covariates=opts.static_covariates,
    )


def make_spec(
    df: pd.DataFrame,
    time_col: str,
    target: str,
    covariates: list[str] | None = None,
    id_col: str | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    log: bool | None = False,
    calendar: bool = True,
    date_format: str | None = None,
    scaling: str = "series",
    seasonal: str = "none",
    future_covariates: list[str] | None = None,
    static_covariates: list[str] | None = None,
) -> DataSpec:
    """Check the columns of ``df`` and work out frequency, season length and covariate encodings.

    An integer time column means plain steps (``freq="step"``, season length 1 unless given). ``log=None``
    means: the log scale when every target value is positive. ``future_covariates`` are known for the
    forecast steps too; ``static_covariates`` hold one value per series (checked by :func:`to_series`).
    """
    covariates = list(covariates or [])
    future_covariates = list(future_covariates or [])
    static_covariates = list(static_covariates or [])
    _check_columns(df, [time_col], "--time-col")
    _check_columns(df, [target], "--target")
    if id_col is not None:
        _check_columns(df, [id_col], "--id-col")
    seen: dict[str, str] = {}
    for flag, cols in (
        ("--covariates", covariates),
        ("--future-covariates", future_covariates),
        ("--static-covariates", static_covariates),
    ):
        _check_columns(df, cols, flag)
        for c in cols:
            if c in (time_col, target, id_col):
                raise UserInputError(f"{flag}: {c!r} is the time, target or id column")
            if c in seen:
                raise UserInputError(
                    f"{flag}: {c!r} is also given to {seen[c]}; a column is one kind of covariate"
                )
            seen[c] = flag
    if target == time_col:
        raise UserInputError(f"--target {target!r} is also the --time-col")
    if scaling not in ("window", "series"):
        raise UserInputError(f"--scaling expects 'window' or 'series', got {scaling!r}")
    if seasonal not in ("none", "lag", "snaive"):
        raise UserInputError(f"--seasonal expects 'none', 'lag' or 'snaive', got {seasonal!r}")
    y = check_target(df, target)
    positive = bool((y.dropna() > 0).all())
    if log is None:
        log = positive
    if log and not positive:
        raise UserInputError(
            f"a log scale needs a positive target, but {target!r} has values ≤ 0; use --no-log"
        )
    steps = is_step_column(df[time_col]) and date_format is None
    if steps:
        if freq not in (None, STEP):
            raise UserInputError(
                f"--time-col {time_col!r} holds integer steps, which have no calendar; drop --freq "
                f"{freq!r} (or give dates and --date-format)"
            )
        freq = STEP
    else:
        times = _parse_times(df[time_col], time_col, date_format)
        if freq is None:
            keys = df[id_col] if id_col is not None else pd.Series(0, index=df.index)
            # infer from the longest series (a 2-point series cannot show its frequency)
            longest = keys.value_counts().index[0]
            t = pd.DatetimeIndex(np.sort(times[(keys == longest).to_numpy()].unique()))
            freq = infer_freq(t)
        else:
            _offset(freq)
    m = default_season_length(freq) if season_length is None else int(season_length)
    if m < 1:
        raise UserInputError(f"--season-length must be at least 1, got {m}")
    numeric, categorical = _encodings(df, covariates, "--covariates")
    future_numeric, future_categorical = _encodings(df, future_covariates, "--future-covariates")
    static_numeric, static_categorical = _encodings(df, static_covariates, "--static-covariates")
    return DataSpec(
        time_col=time_col,
        target=target,
        freq=freq,
        season_length=m,
        id_col=id_col,
        numeric_covariates=numeric,
        categorical_covariates=categorical,
        log=bool(log),
        calendar=calendar_names(freq, m) if calendar else [],
        scaling=scaling,
        seasonal=seasonal,
        date_format=date_format,
        future_numeric=future_numeric,
        future_categorical=future_categorical,
        static_numeric=static_numeric,
        static_categorical=static_categorical,
    )


#: at most this many categories per categorical covariate are one-hot encoded
MAX_CATEGORIES = 50


def _encodings(
    df: pd.DataFrame, cols: list[str], flag: str
) -> tuple[list[str], dict[str, list[str]]]:
    """The numeric columns of ``cols`` and, for the others, their sorted categories (one-hot)."""
    numeric, categorical = [], {}
    for c in cols:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            numeric.append(c)
        else:
            cats = sorted(str(v) for v in col.dropna().unique())
            if len(cats) > MAX_CATEGORIES:
                raise UserInputError(
                    f"{flag} {c!r} is non-numeric with {len(cats)} distinct values; "
                    f"at most {MAX_CATEGORIES} categories are one-hot encoded"
                )
            categorical[c] = cats
    return numeric, categorical


class UTCConvertedWarning(UserWarning):
    """Timestamps with UTC offsets were converted to UTC (and the offsets dropped)."""


#: d/m/y or m/d/y dates (any of / . - between the fields), optionally followed by a time
_DMY = r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T].*)?$"


def _day_first(col: pd.Series, name: str) -> bool | None:
    """Whether text dates such as ``01/02/2024`` are day first (True), month first (False), or neither kind
    (None). Refused when the cells fit both readings (no first or second field above 12)."""
    if col.dtype.kind in "iufMm" or col.dtype == bool:
        return None
    cells = col.dropna().astype(str)
    parts = cells.str.extract(_DMY)
    if len(cells) == 0 or parts[0].isna().any():
        return None
    a, b = parts[0].astype(int), parts[2].astype(int)
    if (a > 12).any() and (b > 12).any():
        return None  # neither reading works: left to the parser, which names a bad cell
    if (a > 12).any():
        return True
    if (b > 12).any():
        return False
    sep, year = parts[1].iloc[0], "%Y" if len(parts[3].iloc[0]) == 4 else "%y"
    ex = cells.iloc[0].strip()
    raise UserInputError(
        f"--time-col {name!r}: dates such as {ex!r} read both day first and month first (no field is "
        f"above 12); pass --date-format '%d{sep}%m{sep}{year}' (day first) or "
        f"'%m{sep}%d{sep}{year}' (month first)"
    )


def _parse_times(
    col: pd.Series, name: str, date_format: str | None = None, note: bool = False
) -> pd.DatetimeIndex:
    """Dates of a time column; the first cell that does not parse is named (value and data row).

    Text dates written d/m/y or m/d/y are read the way every cell allows (refused, naming
    --date-format, when both do). Timestamps with UTC offsets (a file spanning a daylight-saving change
    has two) are converted to UTC; ``note`` says so once (UTCConvertedWarning).
    """
    day_first = _day_first(col, name) if date_format is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if date_format is None:
            kw: dict[str, Any] = {"dayfirst": bool(day_first)}
            try:
                t = pd.to_datetime(col, **kw)
            except (ValueError, TypeError, OverflowError):
                t = None
            if t is not None and t.dtype == object:  # mixed UTC offsets: one instant each, in UTC
                t = None
            if t is None or t.isna().any():
                try:
                    t = pd.to_datetime(col, utc=True, format="mixed", errors="coerce", **kw)
                    if not _has_offsets(col):
                        t = t.dt.tz_localize(None)
                except (ValueError, TypeError, OverflowError):
                    t = pd.to_datetime(col, errors="coerce", format="mixed", **kw)
        else:
            cells = col.astype(str)
            t = pd.to_datetime(cells, errors="coerce", format=date_format)
            if t.isna().any():  # strftime fields want two digits: read '1-01' as '01-01'
                padded = cells.str.replace(r"(?<!\d)(\d)(?!\d)", r"0\1", regex=True)
                t = t.fillna(pd.to_datetime(padded, errors="coerce", format=date_format))
    bad = t.isna().to_numpy()
    if bad.any():
        i = bad.nonzero()[0][0]
        how = f"with --date-format {date_format!r}" if date_format else "as a date/time"
        raise UserInputError(
            f"--time-col {name!r}: could not parse {col.iloc[i]!r} (data row {i + 1}) {how}"
            + (f"; {int(bad.sum())} such cells" if bad.sum() > 1 else "")
            + ("" if date_format else "; pass --date-format (e.g. '%y-%m')")
        )
    if getattr(t.dt, "tz", None) is not None:
        if note:
            warnings.warn(
                f"--time-col {name!r}: the timestamps carry UTC offsets (e.g. {str(col.iloc[0])!r}); "
                f"they were converted to UTC",
                UTCConvertedWarning,
                stacklevel=3,
            )
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.DatetimeIndex(t)


def _has_offsets(col: pd.Series) -> bool:
    """Whether text timestamps carry a UTC offset or zone (``+01:00``, ``Z``)."""
    if col.dtype.kind == "M":
        return getattr(col.dt, "tz", None) is not None
    cells = col.dropna().astype(str)
    return bool(cells.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)\s*$", regex=True).any())


def spec_times(df: pd.DataFrame, spec: DataSpec) -> pd.Index:
    """The time column as dates, or as int64 steps when ``spec.freq == "step"``."""
    col = df[spec.time_col]
    if spec.freq == STEP:
        if not is_step_column(col):
            raise UserInputError(
                f"--time-col {spec.time_col!r}: the model was trained on integer steps, got "
                f"{col.iloc[0]!r}"
            )
        return pd.Index(col.to_numpy(np.int64))
    return _parse_times(col, spec.time_col, spec.date_format, note=True)


def to_series(df: pd.DataFrame, spec: DataSpec) -> list[Series]:
    """Split ``df`` by id, put each series on a regular ``spec.freq`` grid and fill short gaps.

    Gaps (missing timestamps or empty target cells) are kept as such: ``Series.observed`` is False there
    (the model masks them, the metrics skip them) and ``y`` holds a copy interpolated in time (what the
    statistical baselines see); one GapFilledWarning says how many. Empty last cells are forward-filled
    (TrailingGapWarning) and also marked unobserved. A series without any value and duplicated timestamps
    are errors.

    With future-known covariates, the rows after a series' last target value are its future rows: they give
    the covariates of the steps to forecast (``Series.xf``; kept as they are, NaN where empty) and are not
    part of the series. Static covariates must hold one value per series (empty cells take it); a series
    with two values, or none, and a category training never saw are refused, naming the series.
    """
    _check_columns(
        df,
        [spec.time_col, spec.target, *spec.covariates, *spec.future_covariates]
        + [*spec.static_covariates]
        + ([spec.id_col] if spec.id_col else []),
        "the model's",
    )
    times = spec_times(df, spec)
    steps = spec.freq == STEP
    work = pd.DataFrame({"_t": times.to_numpy()}, index=df.index)
    work["_y"] = check_target(df, spec.target)
    _encode_into(work, df, spec.numeric_covariates, spec.categorical_covariates, "--covariates")
    xcols = [c for c in work.columns if c not in ("_t", "_y")]
    _encode_into(
        work,
        df,
        spec.future_numeric,
        spec.future_categorical,
        "--future-covariates",
        prefix="future:",
    )
    fcols = [c for c in work.columns if c not in ("_t", "_y", *xcols)]
    ids = df[spec.id_col].astype(str) if spec.id_col else pd.Series("series", index=df.index)
    statics = _static_vectors(df, spec, ids)
    out = []
    trailing: dict[str, int] = {}
    gaps: dict[str, tuple[int, int]] = {}
    method = "index" if steps else "time"
    for sid, part in work.groupby(ids.to_numpy(), sort=False):
        part = part.sort_values("_t")
        dup = part["_t"].duplicated()
        if dup.any():
            raise UserInputError(
                f"series {sid!r}: timestamp {part['_t'][dup].iloc[0]} appears more than once"
                + ("" if spec.id_col else "; pass --id-col if the file holds several series")
            )
        first, last = part["_t"].iloc[0], part["_t"].iloc[-1]
        if steps:
            grid = pd.Index(np.arange(int(first), int(last) + 1, dtype=np.int64))
        else:
            grid = pd.date_range(first, last, freq=spec.freq)
        if len(grid) == 0 or not part["_t"].isin(grid).all():
            off_grid = part["_t"][~part["_t"].isin(grid)]
            raise UserInputError(
                f"series {sid!r}: timestamp {off_grid.iloc[0] if len(off_grid) else '?'} is not on "
                f"the {spec.freq!r} grid starting {first}; pass the right --freq"
            )
        part = part.set_index("_t").reindex(grid)
        future_rows = part.iloc[:0]
        if fcols:  # the rows after the last target value give the future covariates, not the series
            isna = part["_y"].isna().to_numpy()
            n_future = 0 if isna.all() else int(np.argmin(isna[::-1]))
            if n_future:
                future_rows = part.iloc[len(part) - n_future :]
                part, grid = part.iloc[: len(part) - n_future], grid[: len(grid) - n_future]
        isna = part["_y"].isna().to_numpy()
        n_tail = 0 if isna.all() else int(np.argmin(isna[::-1]))
        if n_tail and n_tail < len(isna):
            trailing[str(sid)] = n_tail  # empty last cells: forward-filled, reported once below
        missing = int(isna.sum()) - n_tail
        if isna.all():
            raise UserInputError(
                f"series {sid!r} has no {spec.target!r} value (every cell is empty)"
            )
        if missing:
            gaps[str(sid)] = (missing, len(grid))
        if missing or n_tail:
            part["_y"] = part["_y"].interpolate(method=method, limit_direction="both")
        if xcols or fcols:
            cols = [*xcols, *fcols]
            part[cols] = part[cols].interpolate(method=method, limit_direction="both").fillna(0.0)
        if spec.log and (part["_y"] <= 0).any():
            raise UserInputError(
                f"series {sid!r}: a log scale needs a positive target; use --no-log"
            )
        out.append(
            Series(
                id=str(sid),
                times=grid,
                y=part["_y"].to_numpy(np.float64),
                x=part[xcols].to_numpy(np.float64) if xcols else np.zeros((len(grid), 0)),
                filled=missing + n_tail,
                observed=~isna if isna.any() else None,
                xf=np.concatenate([part[fcols], future_rows[fcols]]).astype(np.float64)
                if fcols
                else None,
                static=statics.get(str(sid)),
            )
        )
    if gaps:
        ex = ", ".join(f"{k!r}: {m} of {n}" for k, (m, n) in list(gaps.items())[:5])
        warnings.warn(
            f"{len(gaps)} series have missing {spec.target!r} values ({ex}"
            f"{' ...' if len(gaps) > 5 else ''} steps): the model trains with them masked, the "
            f"baselines see them interpolated in time, the metrics skip them",
            GapFilledWarning,
            stacklevel=2,
        )
    if trailing:
        ex = ", ".join(f"{k!r}: {v}" for k, v in list(trailing.items())[:5])
        warnings.warn(
            f"the last {spec.target!r} value(s) are empty in {len(trailing)} series ({ex}"
            f"{' ...' if len(trailing) > 5 else ''} step(s)); they were forward-filled with the last "
            f"observed value",
            TrailingGapWarning,
            stacklevel=2,
        )
    return out


def _encode_into(
    work: pd.DataFrame,
    df: pd.DataFrame,
    numeric: list[str],
    categorical: dict[str, list[str]],
    flag: str,
    prefix: str = "",
) -> None:
    """Numeric columns as floats and categorical ones one-hot (NaN where empty) into ``work``; values
    training never saw are warned about (UnseenCategoryWarning) and encoded as no known category."""
    for c in numeric:
        work[prefix + c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c, cats in categorical.items():
        vals = df[c].astype("string")
        unseen = sorted(set(vals.dropna().unique()) - set(cats))
        if unseen:
            warnings.warn(
                f"{flag} {c!r}: {len(unseen)} value(s) not seen in training "
                f"({', '.join(map(repr, unseen[:5]))}{' ...' if len(unseen) > 5 else ''}); they are "
                f"encoded as no known category",
                UnseenCategoryWarning,
                stacklevel=3,
            )
        for cat in cats:
            work[f"{prefix}{c}={cat}"] = (vals == cat).astype(float).where(vals.notna())


def _static_vectors(df: pd.DataFrame, spec: DataSpec, ids: pd.Series) -> dict[str, np.ndarray]:
    """Each series' static covariates, (S,): numeric values as they are, categories one-hot.

    Every non-empty cell of a series must hold the same value, and at least one must; a category
    training never saw is refused (a static input has no "unknown" value to fall back on).
    """
    if not spec.static_covariates:
        return {}
    key = ids.to_numpy()
    parts: dict[str, list[np.ndarray]] = {}
    for c in spec.static_covariates:
        numeric = c in spec.static_numeric
        col = df[c]
        if numeric:
            vals = pd.to_numeric(col, errors="coerce")
            bad = vals.isna() & col.notna()
            if bad.any():
                i = bad.to_numpy().nonzero()[0][0]
                raise UserInputError(
                    f"--static-covariates {c!r} was numeric in training; found {col.iloc[i]!r} in "
                    f"data row {i + 1}"
                )
        else:
            vals = col.astype("string")
        g = vals.groupby(key, sort=False)
        n = g.nunique(dropna=True)
        if (n > 1).any():
            sid = str(n.index[(n > 1).to_numpy()][0])
            seen = pd.unique(vals[key == sid].dropna())
            raise UserInputError(
                f"--static-covariates {c!r} must be constant within a series; series {sid!r} has "
                f"{int(n[sid])} values ({', '.join(repr(str(v)) for v in seen[:5])})"
                f"{f' and {int((n > 1).sum()) - 1} more series' if (n > 1).sum() > 1 else ''}"
            )
        if (n == 0).any():
            sid = str(n.index[(n == 0).to_numpy()][0])
            raise UserInputError(
                f"--static-covariates {c!r}: series {sid!r} has no value (every cell is empty)"
            )
        first = g.first()
        for sid, v in first.items():
            if numeric:
                enc = np.array([float(v)])
            else:
                cats = spec.static_categorical[c]
                if str(v) not in cats:
                    raise UserInputError(
                        f"--static-covariates {c!r}: series {sid!r} has the category {str(v)!r}, "
                        f"which training never saw; known: {', '.join(map(repr, cats))}"
                    )
                enc = (np.asarray(cats) == str(v)).astype(np.float64)
            parts.setdefault(str(sid), []).append(enc)
    return {sid: np.concatenate(v) for sid, v in parts.items()}


def check_future_covariates(series: list[Series], spec: DataSpec, horizon: int) -> None:
    """Refuse (UserInputError, one line) when a series lacks future-covariate values for any of the
    ``horizon`` steps after its last target value; the message names the series, steps and columns."""
    if not spec.future_covariates:
        return
    names = future_covariate_names(spec)
    bad = []
    for s in series:
        assert s.xf is not None
        fut = np.full((horizon, len(names)), np.nan)
        have = s.xf[len(s) : len(s) + horizon]
        fut[: len(have)] = have
        miss = np.isnan(fut)
        if miss.any():
            bad.append((s, miss))
    if not bad:
        return
    s, miss = bad[0]
    steps = np.nonzero(miss.any(1))[0]
    times = future_times(s.times[-1], horizon, spec.freq)
    when = ", ".join(
        str(t.date() if hasattr(t, "date") and spec.freq != STEP else t) for t in times[steps[:5]]
    ) + (" ..." if len(steps) > 5 else "")
    cols = sorted({n.split("=")[0] for n in np.asarray(names)[miss.any(0)]})
    raise UserInputError(
        f"--future-covariates: series {s.id!r} has no {', '.join(map(repr, cols))} value for "
        f"{len(steps)} of the {horizon} forecast steps (step(s) "
        f"{', '.join(str(int(k) + 1) for k in steps[:5])}{' ...' if len(steps) > 5 else ''}: {when})"
        + (f", and {len(bad) - 1} more series lack some" if len(bad) > 1 else "")
        + f"; add rows after the last {spec.target!r} value with the target empty and the future "
        f"covariates filled"
    )


def future_covariate_names(spec: DataSpec) -> list[str]:
    """Columns of ``Series.xf``: the numeric future covariates, then one per category."""
    return list(spec.future_numeric) + [
        f"{c}={v}" for c, cats in spec.future_categorical.items() for v in cats
    ]


def static_names(spec: DataSpec) -> list[str]:
    """Columns of ``Series.static``: the numeric static covariates, then one per category."""
    return list(spec.static_numeric) + [
        f"{c}={v}" for c, cats in spec.static_categorical.items() for v in cats
    ]


# ----------------------------------------------------------------------------------------- scaling
def _stats(s: Series, spec: DataSpec, k: int) -> dict[str, Any]:
    n_num = len(spec.numeric_covariates)
    fy = transform(s.y[:k], spec)
    xs = s.x[:k, :n_num]
    return {
        "y_mean": float(fy.mean()),
        "y_std": float(max(fy.std(), 1e-8)),
        "x_mean": xs.mean(0).tolist() if n_num else [],
        "x_std": np.maximum(xs.std(0), 1e-8).tolist() if n_num else [],
    }


def fit_scalers(series: list[Series], spec: DataSpec, until: dict[str, int]) -> None:
    """Per-series mean/std of f(y) and of the numeric covariates over ``[:until[id]]``, into ``spec``."""
    for s in series:
        spec.scalers[s.id] = _stats(s, spec, until[s.id])


def fit_covariate_scalers(series: list[Series], spec: DataSpec) -> None:
    """Mean/std of the numeric future covariates over every step of ``series`` (their known part), and of
    the numeric static covariates over the series (one value each), into ``spec.covariate_scalers``.

    One pair per column for all series (not per series, as for past covariates): a series whose history
    never shows, say, a promotion still gets a sensible input when one is planned. A constant column
    gets std 1.
    """
    n_f, n_s = len(spec.future_numeric), len(spec.static_numeric)
    out: dict[str, list[float]] = {}
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
    are zeros with ``observed = 0``) and targets o .. o+H−1 (those past the end are masked).

    Args:
        series: the series (already cut to the part that may be used).
        spec: the data spec (scaling, log, seasonal inputs, covariate scalers in ``spec.scalers``).
        context: C.
        horizon: H.

    Example:
        >>> import numpy as np, pandas as pd
        >>> spec = DataSpec("t", "y", STEP, 1, scaling="window", log=True)
        >>> s = Series("a", pd.Index(np.arange(5)), np.array([1.0, 2, 4, 8, 16]), np.zeros((5, 0)))
        >>> w = Panel([s], spec, context=4, horizon=2).windows([0], [2])
        >>> w["past"].shape, w["target"].shape, w["observed"].tolist()
        ((1, 4, 2), (1, 2), [[0.0, 0.0, 1.0, 1.0]])
    """

    def __init__(self, series: list[Series], spec: DataSpec, context: int, horizon: int) -> None:
        self.series, self.spec, self.C, self.H = series, spec, int(context), int(horizon)
        C, H = self.C, self.H
        n_num = len(spec.numeric_covariates)
        n_x, n_s, n_f = spec.n_past_covariates, spec.n_static, spec.n_future_covariates
        fys, obs, feats, starts, lengths = [], [], [], [], []
        off = 0
        for s in series:
            T = len(s)
            sc = scaler_for(spec, s)
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
        self.obs = np.concatenate(obs) if obs else np.zeros(0)
        self.feats = (
            np.concatenate(feats)
            if feats
            else np.zeros((0, n_x + n_s + n_f + len(spec.calendar)), dtype=np.float32)
        )
        self.start = np.asarray(starts, dtype=np.int64)
        self.length = np.asarray(lengths, dtype=np.int64)
        self.n_cal = len(spec.calendar)
        #: the last columns of ``feats`` that the forecast steps see: future covariates and calendar
        self.n_known = n_f + self.n_cal

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
        flag = [cm[..., None]] if spec.observed_input else []
        past = np.concatenate([z[..., None], *flag, self.feats[ip]], axis=-1).astype(np.float32)
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
            sc = [scaler_for(self.spec, self.series[i]) for i in np.asarray(sidx)]
            mu = np.array([s["y_mean"] for s in sc])[:, None, None]
            sd = np.array([s["y_std"] for s in sc])[:, None, None]
            fy = fy * sd + mu
        return inverse(fy, self.spec)


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
