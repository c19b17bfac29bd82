"""The time axis of the forecasting data: parsing the time column (UTC offsets, day-first dates),
frequencies, season lengths, calendar features and future time stamps."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserInputError

#: ``DataSpec.freq`` of a table whose time column holds plain integer steps (no calendar)
STEP = "step"


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
