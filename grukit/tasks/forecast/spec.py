"""How a table becomes series: :class:`DataSpec` (stored in the model file), :class:`Series`, the column
checks, covariate encodings and :func:`to_series` (regular grid, gaps, future and static covariates)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserInputError
from .calendar import (
    STEP,
    _offset,
    _parse_times,
    calendar_names,
    default_season_length,
    future_times,
    infer_freq,
)


class GapFilledWarning(UserWarning):
    """Some series have missing target values (masked for the model, interpolated for the baselines)."""


class TrailingGapWarning(GapFilledWarning):
    """The last target cells of some series were empty and were forward-filled."""


class UnseenCategoryWarning(UserWarning):
    """A categorical covariate holds values the model did not see in training."""


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


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (back on after it, as it was): a block that
    makes hundreds of thousands of small objects (a Series per series, per-series metric rows) would
    otherwise set off full collections that walk every live object, again and again (at 100k series
    about a second). Only for blocks that make no big reference cycles of their own."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class ColumnStore:
    """The target values of many series in one contiguous array (each :class:`Series`' ``y`` a view into
    it, at ``Series.at``) and its log, computed once for every series and every panel cut from them (a
    100k-series panel's log is ~0.5 s a pass). The values must not be changed in place once the log is
    asked for."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = y
        self._log: np.ndarray | None = None

    def log(self) -> np.ndarray:
        if self._log is None:
            self._log = np.log(self.y)
        return self._log


class _StepGrid:
    """The integer steps ``first .. first + n − 1`` of a series, before anything asks for them as a pandas
    index (:attr:`Series.times` makes the ``RangeIndex`` then): 100k series' indexes cost ~0.3 s to make
    and as much again to cut with ``head``, and most of them are never looked at."""

    __slots__ = ("first", "n")

    def __init__(self, first: int, n: int) -> None:
        self.first, self.n = int(first), int(n)


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
    #: where ``y`` lives when it is a view into a :class:`ColumnStore` (``y`` = ``store.y[at : at + len]``)
    store: ColumnStore | None = dataclasses.field(default=None, repr=False, compare=False)
    at: int = dataclasses.field(default=0, repr=False, compare=False)

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
        t = self.__dict__["times"]
        if type(t) is _StepGrid or (type(t) is pd.RangeIndex and t.step == 1):
            first, k = _step_first(self), len(range(len(self.y))[:n])
            times: Any = _StepGrid(first, k)  # type: ignore[arg-type]
        else:
            times = t[:n]
        return Series(
            self.id,
            times,
            self.y[:n],
            self.x[:n],
            self.filled,
            self.xf,
            self.static,
            None if self.observed is None else self.observed[:n],
            self.store,
            self.at,
        )


@dataclasses.dataclass
class SeriesCovariates:
    """The covariates of a :class:`SeriesList`'s series as columns: ``x`` (past covariates, laid out like
    the store's target values: a series' rows at ``at .. at + length``), ``xf`` (future-known covariates
    of each series' steps and of the future rows after them: series i's rows ``xf[xf_at[i] : xf_at[i] +
    xf_len[i]]``; None without future covariates) and ``static`` (n, S) (None without static
    covariates). Per-series arrays (``xf_at``, ``xf_len``, ``static``) follow ``take``."""

    x: np.ndarray
    xf: np.ndarray | None
    xf_at: np.ndarray
    xf_len: np.ndarray
    static: np.ndarray | None

    def take(self, idx: np.ndarray) -> SeriesCovariates:
        return SeriesCovariates(
            self.x,
            self.xf,
            self.xf_at[idx],
            self.xf_len[idx],
            None if self.static is None else self.static[idx],
        )


class SeriesList(Sequence[Series]):
    """Many complete series held as columns, not as one :class:`Series` object each: the target values
    in one :class:`ColumnStore`, and per series its id, where its values start in the store (``at``),
    its length and its first time (an integer step, or a ``datetime64[ns]`` value as int64 on a grid of
    ``unit`` nanoseconds; on a calendar grid, its position on ``calendar``). What :func:`to_series`
    returns (a regular or calendar grid, with or without gaps; 100k series: no 100k objects made). With gaps, ``observed`` is a
    bool column laid out like the store's values (False where the target was missing and ``y`` holds the
    interpolated value) and ``filled`` each series' number of such steps (``Series.observed`` is None for
    a series with none, as :func:`to_series` makes it).

    It is a sequence of :class:`Series`: ``series[i]`` makes that one series' object (views into the
    store; made once, then kept, so ``series[i] is series[i]``), a slice or :meth:`take` gives another
    ``SeriesList``. Code whose cost grows with the panel reads the columns instead (:func:`lengths_of`,
    :func:`ids_of`, :func:`starts_of`, :func:`heads`, :func:`subset`).

    >>> sl = SeriesList(
    ...     ColumnStore(np.arange(5.0)),
    ...     ["a", "b"],
    ...     np.array([0, 2]),
    ...     np.array([2, 3]),
    ...     np.array([0, 10]),
    ...     STEP,
    ... )
    >>> len(sl), sl[1].id, sl[1].y.tolist(), list(sl[1].times)
    (2, 'b', [2.0, 3.0, 4.0], [10, 11, 12])
    """

    def __init__(
        self,
        store: ColumnStore,
        ids: list[str],
        at: np.ndarray,
        lengths: np.ndarray,
        first: np.ndarray,
        freq: str,
        unit: int = 1,
        observed: np.ndarray | None = None,
        filled: np.ndarray | None = None,
        covariates: SeriesCovariates | None = None,
        calendar: np.ndarray | None = None,
    ) -> None:
        self.store, self.ids = store, ids
        #: a calendar grid (months, quarters, years, anchored weeks ...): its stamps as int64 ns, one
        #: grid for all series; ``first`` then holds each series' first position on it (None: a
        #: fixed-length grid, ``first`` its first time)
        self.calendar = calendar
        self.at = np.asarray(at, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.first = np.asarray(first, dtype=np.int64)
        self.freq, self.unit = freq, int(unit)
        if (observed is None) != (filled is None):
            raise ValueError("observed and filled come together (both or neither)")
        self.observed = observed
        self.filled = None if filled is None else np.asarray(filled, dtype=np.int64)
        self.covariates = covariates
        self._made: dict[int, Series] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _one(self, i: int) -> Series:
        made = self._made.get(i)
        if made is not None:
            return made
        a, n, t0 = int(self.at[i]), int(self.lengths[i]), int(self.first[i])
        y = self.store.y[a : a + n]
        if self.freq == STEP:
            times: Any = _StepGrid(t0, n)
        elif self.calendar is not None:
            stamps = self.stamps(t0 + np.arange(n, dtype=np.int64))
            times = pd.DatetimeIndex(pd.Index(stamps.view("M8[ns]"), copy=False), freq=self.freq)
        else:
            stamps = (t0 + self.unit * np.arange(n, dtype=np.int64)).view("M8[ns]")
            times = pd.DatetimeIndex(pd.Index(stamps, copy=False), freq=self.freq)
        filled = 0 if self.filled is None else int(self.filled[i])
        observed = None if not filled or self.observed is None else self.observed[a : a + n]
        cov = self.covariates
        x, xf, static = np.zeros((n, 0)), None, None
        if cov is not None:
            x = cov.x[a : a + n]
            if cov.xf is not None:
                xa = int(cov.xf_at[i])
                xf = cov.xf[xa : xa + int(cov.xf_len[i])]
            if cov.static is not None:
                static = cov.static[i]
        s = Series(
            self.ids[i],
            times,
            y,
            x,
            filled,
            xf,
            static,
            observed,
            store=self.store,
            at=a,
        )
        self._made[i] = s
        return s

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"series index {i} out of range for {len(self)} series")
        return self._one(i)

    def __iter__(self) -> Iterator[Series]:
        return (self._one(i) for i in range(len(self)))

    def take(self, idx: Any) -> SeriesList:
        """The series at positions ``idx`` (an integer array), in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        ids = self.ids
        return SeriesList(
            self.store,
            [ids[i] for i in idx.tolist()],
            self.at[idx],
            self.lengths[idx],
            self.first[idx],
            self.freq,
            self.unit,
            self.observed,
            None if self.filled is None else self.filled[idx],
            None if self.covariates is None else self.covariates.take(idx),
            self.calendar,
        )

    def head(self, n: Any) -> SeriesList:
        """Each series cut to its first ``n[i]`` steps (``Series.head`` of each: ``y[:n]``)."""
        n = np.asarray(n, dtype=np.int64)
        L = self.lengths
        keep = np.where(n < 0, np.maximum(L + n, 0), np.minimum(n, L))
        return SeriesList(
            self.store,
            self.ids,
            self.at,
            keep,
            self.first,
            self.freq,
            self.unit,
            self.observed,
            self.filled,
            self.covariates,
            self.calendar,
        )

    def stamps(self, pos: Any) -> np.ndarray:
        """The calendar grid's stamps (int64 ns) at positions ``pos`` (any shape), the grid continued
        past its end where ``pos`` asks (what ``pd.date_range`` from its first stamp gives)."""
        assert self.calendar is not None
        pos = np.asarray(pos, dtype=np.int64)
        need = int(pos.max()) + 1 if pos.size else 0
        if need > len(self.calendar):
            grid = pd.date_range(pd.Timestamp(self.calendar[0]), periods=need, freq=self.freq)
            self.calendar = grid.as_unit("ns").asi8
        return self.calendar[pos]

    def has_gaps(self) -> bool:
        """Whether any series has an unobserved step."""
        return self.filled is not None and bool(self.filled.any())


def lengths_of(series: Sequence[Series]) -> np.ndarray:
    """Each series' length, (n,) int64 (a :class:`SeriesList`'s column, no object made)."""
    if isinstance(series, SeriesList):
        return series.lengths
    return np.fromiter((len(s) for s in series), dtype=np.int64, count=len(series))


def ids_of(series: Sequence[Series]) -> list[str]:
    """Each series' id, in order."""
    if isinstance(series, SeriesList):
        return series.ids
    return [s.id for s in series]


def starts_of(series: Sequence[Series]) -> np.ndarray:
    """Where each series' values start in their shared :class:`ColumnStore` (``Series.at``), (n,)."""
    if isinstance(series, SeriesList):
        return series.at
    return np.fromiter((s.at for s in series), dtype=np.int64, count=len(series))


def heads(series: Sequence[Series], n: Any) -> Sequence[Series]:
    """``[s.head(k) for s, k in zip(series, n)]`` (a :class:`SeriesList` stays one; a series kept whole
    is itself)."""
    if isinstance(series, SeriesList):
        return series.head(n)
    return [s if k == len(s) else s.head(k) for s, k in zip(series, np.asarray(n).tolist())]


def subset(series: Sequence[Series], idx: Any) -> Sequence[Series]:
    """``[series[i] for i in idx]`` (a :class:`SeriesList` stays one)."""
    if isinstance(series, SeriesList):
        return series.take(idx)
    return [series[i] for i in np.asarray(idx, dtype=np.int64).tolist()]


def has_gaps(series: Sequence[Series]) -> bool:
    """Whether any series has an unobserved step marked (``Series.observed`` not None)."""
    if isinstance(series, SeriesList):
        return series.has_gaps()
    return any(s.observed is not None for s in series)


def observed_windows(series: Sequence[Series], sidx: Any, start: Any, width: int) -> np.ndarray:
    """``series[i].observed[o : o + width]`` of every row (i, o) of ``sidx``, ``start`` (all True for a
    series without gaps), as one (N, width) bool array (each window inside its series): one gather from
    a :class:`SeriesList`'s observed column, no object per series.

    >>> s = [Series("a", pd.RangeIndex(4), np.arange(4.0), np.zeros((4, 0)))]
    >>> s[0].observed = np.array([True, False, True, True])
    >>> observed_windows(s, [0, 0], [0, 2], 2).tolist()
    [[True, False], [True, True]]
    """
    sidx = np.asarray(sidx, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    out = np.ones((len(sidx), width), dtype=bool)
    if not len(sidx) or not has_gaps(series):
        return out
    if isinstance(series, SeriesList):
        assert series.observed is not None
        return series.observed[(series.at[sidx] + start)[:, None] + np.arange(width)[None, :]]
    for r, (i, o) in enumerate(zip(sidx.tolist(), start.tolist())):
        obs = series[i].observed
        if obs is not None:
            out[r] = obs[o : o + width]
    return out


def flat_observed(series: Sequence[Series]) -> np.ndarray:
    """Every series' observed flags (all True for a series without gaps), concatenated: (sum of lengths,)
    bool; one gather from a :class:`SeriesList`'s observed column."""
    if isinstance(series, SeriesList):
        n = series.lengths
        if series.observed is None:
            return np.ones(int(n.sum()), dtype=bool)
        pos = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        return series.observed[np.repeat(series.at, n) + pos]
    if not len(series):
        return np.zeros(0, dtype=bool)
    return np.concatenate(
        [np.ones(len(s), dtype=bool) if s.observed is None else s.observed for s in series]
    )


def _times_get(self: Series) -> pd.Index:
    t = self.__dict__["times"]
    if type(t) is _StepGrid:
        t = pd.RangeIndex.from_range(range(t.first, t.first + t.n))
        self.__dict__["times"] = t
    return t


def _times_set(self: Series, value: Any) -> None:
    self.__dict__["times"] = value


# the field stays a dataclass field (constructor, repr, equality); reading it builds a _StepGrid's index
setattr(Series, "times", property(_times_get, _times_set))  # noqa: B010


def _step_first(s: Series) -> int | None:
    """The first step of a series whose times are integer steps of 1 (a _StepGrid or a RangeIndex of step
    1), without building its index; None for other times."""
    t = s.__dict__["times"]
    if type(t) is _StepGrid:
        return t.first
    if type(t) is pd.RangeIndex and t.step == 1:
        return int(t.start)
    return None


def _shared_store(series: Sequence[Series]) -> ColumnStore | None:
    """The one :class:`ColumnStore` every series' ``y`` is a view into, or None."""
    if isinstance(series, SeriesList):
        return series.store
    store = series[0].store if series else None
    if store is None:
        return None
    owner = store.y if store.y.base is None else store.y.base
    if all(s.store is store and s.y.base is owner for s in series):
        return store
    return None


def window_values(series: Sequence[Series], sidx: Any, start: Any, width: int) -> np.ndarray:
    """``series[i].y[o : o + width]`` of every row (i, o) of ``sidx``, ``start``, as one (N, width) float64
    array (each window inside its series): one gather from the shared column when there is one.

    >>> s = [Series("a", pd.RangeIndex(4), np.arange(4.0), np.zeros((4, 0)))]
    >>> window_values(s, [0, 0], [0, 2], 2).tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    sidx = np.asarray(sidx, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    if not len(sidx):
        return np.zeros((0, width))
    store = _shared_store(series)
    if store is not None:
        at = starts_of(series)
        return store.y[(at[sidx] + start)[:, None] + np.arange(width)[None, :]].astype(np.float64)
    return np.stack(
        [series[i].y[o : o + width] for i, o in zip(sidx.tolist(), start.tolist())]
    ).astype(np.float64)


def _grid_starts(series: Sequence[Series]) -> tuple[np.ndarray, int, bool] | None:
    """(first time of each series as int64, step in its units, whether dates) when every series' times
    are a regular grid whose k-th value is first + k·step: integer steps as a ``RangeIndex`` of step 1, or
    a ``DatetimeIndex`` (no time zone) with a fixed-duration ``freq``; else None."""
    if isinstance(series, SeriesList):
        if series.calendar is not None:
            return None
        return series.first, series.unit, series.freq != STEP
    firsts = [_step_first(s) for s in series]
    if all(f is not None for f in firsts):
        return np.asarray(firsts, dtype=np.int64), 1, False
    unit = None
    for s in series:
        t = s.times
        if not isinstance(t, pd.DatetimeIndex) or t.tz is not None or t.freq is None:
            return None
        try:
            u = int(t.freq.nanos)  # a fixed duration only
        except ValueError:
            return None
        if t.unit != "ns" or (unit is not None and u != unit):
            return None
        unit = u
    if unit is None:
        return None
    return np.fromiter((s.times.asi8[0] for s in series), np.int64, len(series)), unit, True


def window_times(series: Sequence[Series], sidx: Any, start: Any, width: int) -> np.ndarray:
    """``np.asarray(series[i].times)[o : o + width]`` of every row (i, o), as one (N, width) array; on a
    regular grid (:func:`_grid_starts`) a window may run past the series' end (the grid continued).

    >>> s = [Series("a", pd.RangeIndex(3, 7), np.ones(4), np.zeros((4, 0)))]
    >>> window_times(s, [0], [1], 5).tolist()
    [[4, 5, 6, 7, 8]]
    """
    sidx = np.asarray(sidx, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    if isinstance(series, SeriesList) and series.calendar is not None:
        k = np.arange(width, dtype=np.int64)[None, :]
        return series.stamps((series.first[sidx] + start)[:, None] + k).view("M8[ns]")
    grid = _grid_starts(series) if len(sidx) else None
    if grid is None:
        if not len(sidx):
            return np.zeros((0, width), dtype=np.int64)
        times = {i: np.asarray(series[i].times) for i in set(sidx.tolist())}
        return np.stack([times[i][o : o + width] for i, o in zip(sidx.tolist(), start.tolist())])
    t0, unit, dates = grid
    out = t0[sidx][:, None] + unit * (start[:, None] + np.arange(width, dtype=np.int64)[None, :])
    return out.view("M8[ns]") if dates else out


def _check_columns(df: pd.DataFrame, cols: list[str], what: str) -> None:
    for c in cols:
        if c not in df.columns:
            raise UserInputError(
                f"{what} column {c!r} not found; the CSV has columns {list(df.columns)}"
            )


def check_target(df: pd.DataFrame, target: str) -> pd.Series:
    """The target as floats; a non-numeric cell or ±inf is refused naming the first such row."""
    col = df[target]
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiu":  # numbers: no text to refuse
        inf = np.isinf(col.to_numpy(np.float64))
        if not inf.any():
            return col.astype(np.float64)
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
    positive = not bool((y.to_numpy() <= 0).any())  # every present value > 0 (NaN <= 0 is False)
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


def to_series(df: pd.DataFrame, spec: DataSpec) -> Sequence[Series]:
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

    A panel on a fixed-length grid (integer steps, or a fixed duration such as "D" or "h") or on a
    calendar grid (months, quarters, years, anchored weeks), with or without gaps and covariates, comes
    back as a :class:`SeriesList` (columns, no object per series; see :func:`_columnar_series`), any
    other as a list of :class:`Series`.
    """
    _check_columns(
        df,
        [spec.time_col, spec.target, *spec.covariates, *spec.future_covariates]
        + [*spec.static_covariates]
        + ([spec.id_col] if spec.id_col else []),
        "the model's",
    )
    times = spec_times(df, spec)
    with paused_gc():
        fast = _columnar_series(df, spec, times, warn=True)
    if fast is not None:
        return fast
    return _to_series_general(df, spec, times)


def _complete_series(df: pd.DataFrame, spec: DataSpec, times: pd.Index) -> SeriesList | None:
    """:func:`_columnar_series` when its panel is complete (every step of every series has a target
    value) and has no covariates, else None."""
    out = _columnar_series(df, spec, times)
    return None if out is None or out.has_gaps() or out.covariates is not None else out


def _columnar_series(
    df: pd.DataFrame, spec: DataSpec, times: pd.Index, warn: bool = False
) -> SeriesList | None:
    """:func:`to_series` columnar: every series on a grid of a fixed-length step (integer steps or a
    fixed duration such as "D" or "h") or on one calendar grid (:func:`_calendar_positions`: months,
    quarters, years, anchored weeks; the gaps then filled at the grid's real times), with or without
    gaps (missing rows or empty cells) and covariates. One sort of the whole table; each row's place in its series' grid from its code and
    time; the target and each covariate column scattered into one preallocated array (NaN where the grid
    has no value); the gaps filled by linear interpolation in time over the whole array
    (:func:`_interp_segments`: what pandas' per-series ``interpolate`` gave, bit for bit; an empty
    covariate stays 0); the rows after a series' last target value are its future-covariate rows when
    there are future covariates; held as a :class:`SeriesList` (no object per series). ``warn``: give
    the GapFilledWarning/TrailingGapWarning of :func:`to_series`. None when the table is not such a case
    (:func:`_to_series_general` then handles other frequencies and the errors of off-grid or duplicated
    timestamps, a series without any value and a non-positive value on a log scale)."""
    calendar = None
    if spec.freq == STEP:
        t, unit = times.to_numpy(np.int64), 1
    else:
        if not isinstance(times, pd.DatetimeIndex) or times.tz is not None:
            return None
        try:
            off = pd.tseries.frequencies.to_offset(spec.freq)
            unit = int(off.nanos)  # a fixed duration only (a month has none: ValueError)
        except ValueError:
            unit = 0
        except AttributeError:
            return None
        if unit < 0:
            return None
        if unit:
            t = times.as_unit("ns").asi8
        else:  # months, quarters, years ...: each row's position on one calendar grid
            placed = _calendar_positions(times, spec.freq)
            if placed is None:
                return None
            t, calendar = placed
            unit = 1
    y = check_target(df, spec.target).to_numpy(np.float64)
    if spec.log and (y <= 0).any():
        return None
    if spec.id_col:
        codes, uniques = _factorized(df[spec.id_col])
        names = [str(u) for u in uniques]
        if len(set(names)) != len(names):  # two raw ids with one text: the general path groups them
            return None
    else:
        codes, names = np.zeros(len(df), dtype=np.int64), ["series"]
    if not len(names):
        return None
    covs = None
    nx = 0
    static = None
    if spec.covariates or spec.future_covariates or spec.static_covariates:
        work = pd.DataFrame(index=df.index)
        nx = _encode_covariates(work, df, spec)
        covs = work.to_numpy(np.float64) if work.shape[1] else np.zeros((len(df), 0))
        if spec.static_covariates:
            key = (
                df[spec.id_col].astype(str) if spec.id_col else pd.Series("series", index=df.index)
            )
            static = _static_matrix(df, spec, key, names)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        codes = codes.astype(np.int64)
    same = codes[1:] == codes[:-1]
    d = np.diff(t)
    # sorted: ids ascending, times rising within each id (one diff, no boolean-indexed copies)
    if not ((codes[1:] >= codes[:-1]).all() and not (same & (d <= 0)).any()):
        order = np.lexsort((t, codes))  # rows of one series together, in time order
        codes, t, y = codes[order], t[order], y[order]
        if covs is not None:
            covs = covs[order]
        same = codes[1:] == codes[:-1]
        d = np.diff(t)
    dup = same & (d == 0)
    if dup.any():
        return None  # the general path names the series and timestamp
    # the runs of equal codes, in code order (factorize's codes are 0 .. k−1, each present)
    starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
    if len(starts) != len(names):
        return None  # (not expected) the general path
    rows = np.diff(np.append(starts, len(codes)))
    first = t[starts]
    if not (same & (d != unit)).any():  # every series a complete grid
        if covs is None and not np.isnan(y).any():
            return SeriesList(
                ColumnStore(y), names, starts, rows, first, spec.freq, unit, calendar=calendar
            )
        n, at, flat, cflat = rows, starts, y, covs
    else:
        if unit > 1 and (same & (d % unit != 0)).any():
            return None  # off the grid: the general path names the timestamp
        last = t[starts + rows - 1]
        n = (last - first) // unit + 1
        at = np.cumsum(n) - n
        pos = np.repeat(at, rows) + (t - np.repeat(first, rows)) // unit
        flat = np.full(int(n.sum()), np.nan)
        flat[pos] = y
        cflat = None
        if covs is not None:
            cflat = np.full((len(flat), covs.shape[1]), np.nan)
            cflat[pos] = covs
    T, cut = n, None
    has_future = cflat is not None and cflat.shape[1] > nx
    if has_future:  # the rows after a series' last target value: its future covariates
        idx = np.arange(len(flat), dtype=np.int64)
        last_y = np.maximum.reduceat(np.where(np.isnan(flat), -1, idx), at)
        if (last_y < at).any():
            return None  # a series without any value: the general path names it
        T = last_y + 1 - at
        if (T < n).any():
            cut = np.repeat(at, T) + (
                np.arange(int(T.sum()), dtype=np.int64) - np.repeat(np.cumsum(T) - T, T)
            )
    yt = flat if cut is None else flat[cut]
    at_t = at if cut is None else np.cumsum(T) - T
    yf, na_count, last_valid = _interp_segments(yt, at_t, T, first, unit, calendar)
    if (na_count == T).any():
        return None  # a series without any value: the general path names it
    if spec.log and (yf <= 0).any():
        return None
    cols = None
    if cflat is not None:
        ct = cflat if cut is None else cflat[cut]
        cols = np.empty_like(ct)
        for j in range(ct.shape[1]):  # a column at a time (a few), all series at once
            cj, _, _ = _interp_segments(
                np.ascontiguousarray(ct[:, j]), at_t, T, first, unit, calendar
            )
            cols[:, j] = np.where(np.isnan(cj), 0.0, cj)
    n_tail = at_t + T - 1 - last_valid
    if warn:
        _warn_gaps(spec, names, na_count - n_tail, T, n_tail)
    filled = na_count.astype(np.int64)
    extra: dict[str, Any] = {}
    if filled.any():
        extra = {"observed": ~np.isnan(yt), "filled": filled}
    if cols is not None:
        xf = None
        if has_future:
            assert cflat is not None
            xf = cflat[:, nx:].copy()  # the grid's layout: the future rows kept as they are
            if cut is None:
                xf = cols[:, nx:]
            else:
                xf[cut] = cols[:, nx:]
            extra["covariates"] = SeriesCovariates(cols[:, :nx], xf, at, n, static)
        else:
            extra["covariates"] = SeriesCovariates(cols[:, :nx], None, at_t, T, static)
    return SeriesList(
        ColumnStore(yf), names, at_t, T, first, spec.freq, unit, calendar=calendar, **extra
    )


#: a calendar grid longer than this many stamps is left to the per-series path
_MAX_CALENDAR = 10_000_000


def _calendar_positions(times: pd.DatetimeIndex, freq: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Each time's position on one grid of a step without a fixed length (months, quarters, years,
    anchored weeks): ``pd.date_range`` from the earliest to the latest time (computed once, over the
    distinct times), and that grid's stamps as int64 ns. A series' grid ``pd.date_range(first, last,
    freq)`` is then the grid's run between its first and last positions (``first`` on the grid, the same
    offset steps). None when a time is not on the grid (the per-series path names it)."""
    ns = times.as_unit("ns").asi8
    if not len(ns):
        return None
    u, inv = np.unique(ns, return_inverse=True)
    grid = pd.date_range(pd.Timestamp(u[0]), pd.Timestamp(u[-1]), freq=freq)
    if len(grid) > _MAX_CALENDAR:
        return None
    g = grid.as_unit("ns").asi8
    pos = np.searchsorted(g, u)
    if (pos >= len(g)).any() or (g[np.minimum(pos, len(g) - 1)] != u).any():
        return None
    return pos[inv].astype(np.int64), g


def _interp_segments(
    flat: np.ndarray,
    at: np.ndarray,
    lengths: np.ndarray,
    first: np.ndarray,
    unit: int,
    calendar: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The segments ``flat[at[i] : at[i] + lengths[i]]`` (one after another, covering ``flat``; the
    i-th on the grid ``first[i] + unit · k``) with their NaN filled linearly in time, each on its own:
    what pandas' ``interpolate(method="index"/"time", limit_direction="both")`` of each segment gives,
    bit for bit (``np.interp``'s formula at the grid times as float64; before the first value the first,
    after the last the last). A segment without any value stays NaN. Returns (filled copy, NaN count
    of each segment, index of each segment's last value, −1 where none). With ``calendar`` (a grid's
    stamps in ns), ``first`` holds positions on it and step k of segment i is at
    ``calendar[first[i] + k]``."""
    n_all = len(flat)
    isna = np.isnan(flat)
    valid = ~isna
    idx = np.arange(n_all, dtype=np.int64)
    na_count = np.add.reduceat(isna, at, dtype=np.int64)
    end = at + lengths  # one past each segment's last step
    first_valid = np.minimum.reduceat(np.where(valid, idx, n_all), at)
    last_valid = np.maximum.reduceat(np.where(valid, idx, -1), at)
    out = flat.copy()
    holes = np.flatnonzero(isna)
    if not len(holes):
        return out, na_count, last_valid
    sid = np.repeat(np.arange(len(at), dtype=np.int64), lengths)  # each step's segment
    prev = np.maximum.accumulate(np.where(valid, idx, -1))  # the last valid step at or before
    nxt = np.minimum.accumulate(np.where(valid, idx, n_all)[::-1])[::-1]  # the first at or after
    s = sid[holes]
    keep = na_count[s] < lengths[s]  # a segment without values stays NaN
    holes, s = holes[keep], s[keep]
    p, q = prev[holes], nxt[holes]
    before = p < at[s]  # leading gap: the first value (np.interp's left)
    after = q >= end[s]  # trailing gap: the last value (np.interp's right)
    inner = ~(before | after)
    out[holes[before]] = flat[first_valid[s[before]]]
    out[holes[after]] = flat[last_valid[s[after]]]
    h, p, q = holes[inner], p[inner], q[inner]
    if len(h):
        # np.interp at the grid times (int64 steps or ns, as float64), as pandas calls it
        x0 = np.repeat(first, lengths)
        tx, tp, tq = (
            (
                x0[j] + unit * (j - at[sid[j]])
                if calendar is None
                else calendar[x0[j] + (j - at[sid[j]])]
            ).astype(np.float64)
            for j in (h, p, q)
        )
        with np.errstate(all="ignore"):
            slope = (flat[q] - flat[p]) / (tq - tp)
            v = slope * (tx - tp) + flat[p]
            bad = np.isnan(v)
            if bad.any():  # np.interp's fallbacks: from the right end, then the flat segment
                v[bad] = slope[bad] * (tx[bad] - tq[bad]) + flat[q][bad]
                flat_seg = np.isnan(v) & (flat[p] == flat[q])
                v[flat_seg] = flat[p][flat_seg]
        out[h] = v
    return out, na_count, last_valid


def _warn_gaps(
    spec: DataSpec,
    names: list[str],
    missing: np.ndarray,
    lengths: np.ndarray,
    n_tail: np.ndarray,
) -> None:
    """The GapFilledWarning and TrailingGapWarning of :func:`to_series` (series in their order; at most
    five named)."""
    g = np.flatnonzero(missing > 0)
    if len(g):
        ex = ", ".join(
            f"{names[k]!r}: {int(missing[k])} of {int(lengths[k])}" for k in g[:5].tolist()
        )
        warnings.warn(
            f"{len(g)} series have missing {spec.target!r} values ({ex}"
            f"{' ...' if len(g) > 5 else ''} steps): the model trains with them masked, the "
            f"baselines see them interpolated in time, the metrics skip them",
            GapFilledWarning,
            stacklevel=5,
        )
    tr = np.flatnonzero((n_tail > 0) & (n_tail < lengths))
    if len(tr):
        ex = ", ".join(f"{names[k]!r}: {int(n_tail[k])}" for k in tr[:5].tolist())
        warnings.warn(
            f"the last {spec.target!r} value(s) are empty in {len(tr)} series ({ex}"
            f"{' ...' if len(tr) > 5 else ''} step(s)); they were forward-filled with the last "
            f"observed value",
            TrailingGapWarning,
            stacklevel=5,
        )


def _factorized(col: pd.Series) -> tuple[np.ndarray, Any]:
    """``pd.factorize(col, use_na_sentinel=False)``: codes numbering the distinct values in their order
    of first appearance (an integer array, not always int64), and those values. A categorical column without missing cells (the ids
    :func:`~.tables.read_table` reads) is renumbered from its category codes — one pass over the runs of
    equal codes, not a hash of every row (0.4 s at 20M rows)."""
    if isinstance(col.dtype, pd.CategoricalDtype) and len(col):
        cat = col.cat.codes.to_numpy()
        if not (cat < 0).any():
            starts = np.flatnonzero(cat[1:] != cat[:-1]) + 1
            seen = pd.unique(np.concatenate([cat[:1], cat[starts]]))  # first appearance order
            if np.array_equal(seen, np.arange(len(seen))):  # the categories in that order already
                return cat, col.cat.categories[: len(seen)]  # its own integer type
            rank = np.full(len(col.cat.categories), -1, dtype=np.int64)
            rank[seen] = np.arange(len(seen), dtype=np.int64)
            return rank[cat], col.cat.categories.take(seen)
    return pd.factorize(col, use_na_sentinel=False)


def _to_series_general(df: pd.DataFrame, spec: DataSpec, times: pd.Index) -> Sequence[Series]:
    """:func:`to_series` one series at a time (gaps, covariates, irregular frequencies)."""
    steps = spec.freq == STEP
    work = pd.DataFrame({"_t": times.to_numpy()}, index=df.index)
    work["_y"] = check_target(df, spec.target)
    nx = _encode_covariates(work, df, spec)
    xcols = list(work.columns[2 : 2 + nx])
    fcols = list(work.columns[2 + nx :])
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
            stacklevel=3,
        )
    if trailing:
        ex = ", ".join(f"{k!r}: {v}" for k, v in list(trailing.items())[:5])
        warnings.warn(
            f"the last {spec.target!r} value(s) are empty in {len(trailing)} series ({ex}"
            f"{' ...' if len(trailing) > 5 else ''} step(s)); they were forward-filled with the last "
            f"observed value",
            TrailingGapWarning,
            stacklevel=3,
        )
    return out


def _encode_covariates(work: pd.DataFrame, df: pd.DataFrame, spec: DataSpec) -> int:
    """The past covariates, then the future-known ones (``future:`` prefix), encoded into ``work`` after
    its columns; returns the number of past-covariate columns."""
    before = work.shape[1]
    _encode_into(work, df, spec.numeric_covariates, spec.categorical_covariates, "--covariates")
    nx = work.shape[1] - before
    _encode_into(
        work,
        df,
        spec.future_numeric,
        spec.future_categorical,
        "--future-covariates",
        prefix="future:",
    )
    return nx


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
                stacklevel=4,
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
    order, mat = _static_table(df, spec, ids)
    return dict(zip(order, mat))


def _static_table(df: pd.DataFrame, spec: DataSpec, ids: pd.Series) -> tuple[list[str], np.ndarray]:
    """(the series ids in order of first appearance, their static covariates as one (n, S) array):
    the checks and encodings of :func:`_static_vectors`, in whole-column operations."""
    key = ids.to_numpy()
    parts: list[np.ndarray] = []
    order: list[str] | None = None
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
        if order is None:
            order = [str(k) for k in first.index]
        if numeric:
            parts.append(first.to_numpy(np.float64)[:, None])
        else:
            cats = spec.static_categorical[c]
            v = first.astype(str).to_numpy()
            unseen = ~np.isin(v, np.asarray(cats, dtype=object))
            if unseen.any():
                k = int(np.flatnonzero(unseen)[0])
                raise UserInputError(
                    f"--static-covariates {c!r}: series {order[k]!r} has the category {v[k]!r}, "
                    f"which training never saw; known: {', '.join(map(repr, cats))}"
                )
            parts.append((v[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
    return order or [], np.concatenate(parts, axis=1)


def _static_matrix(
    df: pd.DataFrame, spec: DataSpec, ids: pd.Series, names: list[str]
) -> np.ndarray:
    """:func:`_static_vectors` as one (len(names), S) array, its rows in the order of ``names``."""
    order, mat = _static_table(df, spec, ids)
    if order == names:
        return mat
    where = pd.Index(order).get_indexer(names)
    return mat[where]


def check_future_covariates(series: Sequence[Series], spec: DataSpec, horizon: int) -> None:
    """Refuse (UserInputError, one line) when a series lacks future-covariate values for any of the
    ``horizon`` steps after its last target value; the message names the series, steps and columns."""
    if not spec.future_covariates:
        return
    names = future_covariate_names(spec)
    cov = series.covariates if isinstance(series, SeriesList) else None
    if cov is not None and cov.xf is not None:  # every series at once from the columns
        rowpos = lengths_of(series)[:, None] + np.arange(horizon, dtype=np.int64)[None, :]
        inside = rowpos < cov.xf_len[:, None]
        vals = cov.xf[cov.xf_at[:, None] + np.minimum(rowpos, cov.xf_len[:, None] - 1)]
        missing = np.isnan(vals) | ~inside[..., None]
        rows_bad = np.flatnonzero(missing.any(axis=(1, 2)))
        if not len(rows_bad):
            return
        bad = [(series[int(rows_bad[0])], missing[rows_bad[0]])] * len(rows_bad)
    else:
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
