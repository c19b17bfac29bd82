"""The forecasting estimator, :class:`GRUForecaster`, in the shape the forecasting ecosystem shares.

Long data in (``unique_id, ds, y`` plus covariate columns), forecasts out as ``unique_id, ds, GRU,
GRU-lo-80, GRU-hi-80`` (Nixtla's statsforecast/neuralforecast column convention), so ``utilsforecast``'s
``evaluate`` and hierarchicalforecast take its output without glue. pandas, polars or any frame narwhals
knows goes in; the same kind comes out. Nothing is written to disk unless asked (:meth:`GRUForecaster.save`);
the run folder, baselines, tables and plots of ``grukit forecast`` are built from this estimator's output by
:mod:`.report`. Public face: ``from grukit.forecast import GRUForecaster``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserInputError
from . import calibrate as Q
from . import data as D
from .config import ForecastOptions, SkippedSeriesWarning, build_options
from .spec import paused_gc
from .windows import MIN_FIT_POINTS, check_sizes, default_context

#: the defaults of every option (one home: :class:`~.config.ForecastOptions`)
_O = ForecastOptions()
#: the file :meth:`GRUForecaster.save` writes beside the model files (its constructor arguments)
ESTIMATOR_FILE = "estimator.json"
#: trainer_kwargs that are ForecastOptions fields (recorded in a run's config.json)
#: the file :meth:`GRUForecaster.save` writes the source of each series' forecast to (``selection_``)
SELECTION_FILE = "selection.json"
#: the file :meth:`GRUForecaster.save` writes the weights of the ``blend`` source to (``selection_weights_``)
SELECTION_WEIGHTS_FILE = "selection_weights.json"
_TRAINER_FIELDS = ("accelerator", "devices", "num_nodes", "strategy")


def levels_to_quantiles(level: Sequence[float]) -> tuple[float, ...]:
    """Interval levels in percent → the quantile levels the network is trained on (0.5 always among them).

    >>> levels_to_quantiles((80,))
    (0.1, 0.5, 0.9)
    >>> levels_to_quantiles([95, 80])
    (0.025, 0.1, 0.5, 0.9, 0.975)
    """
    qs = {0.5}
    for lv in level:
        try:
            v = float(lv)
        except (TypeError, ValueError):
            raise UserInputError(f"level expects numbers in (0, 100), got {lv!r}") from None
        if not 0.0 < v < 100.0:
            raise UserInputError(f"level expects numbers in (0, 100), got {lv!r}")
        lo = round((100.0 - v) / 200.0, 4)
        qs |= {lo, round(1.0 - lo, 4)}
    return Q.parse_quantiles(sorted(qs))


def quantiles_to_levels(quantiles: Sequence[float]) -> list[int | float]:
    """The interval levels (percent, widest first) of a set of quantile levels.

    >>> quantiles_to_levels((0.025, 0.1, 0.5, 0.9, 0.975))
    [95, 80]
    """
    return [_pct(cov) for _, _, cov in Q.intervals(quantiles)]


def _pct(coverage: float) -> int | float:
    v = round(100 * coverage, 4)
    return int(v) if v == int(v) else v


def output_columns(alias: str, quantiles: Sequence[float]) -> list[str]:
    """The forecast column of each quantile level, in quantile order: ``<alias>-lo-<L>`` for the lower
    bound of the L% interval, ``<alias>`` for the median, ``<alias>-hi-<L>`` for the upper bound.

    >>> output_columns("GRU", (0.1, 0.5, 0.9))
    ['GRU-lo-80', 'GRU', 'GRU-hi-80']
    """
    cols = [alias] * len(quantiles)
    for lo, hi, cov in Q.intervals(quantiles):
        cols[lo], cols[hi] = f"{alias}-lo-{_pct(cov)}", f"{alias}-hi-{_pct(cov)}"
    return cols


def _ordered(alias: str, quantiles: Sequence[float], level: Sequence[float] | None) -> list[int]:
    """Positions (into the quantiles) of the columns to show, Nixtla's order: the median, then the lower
    bounds (widest first), then the upper bounds (narrowest first); only the intervals of ``level``."""
    ivs = Q.intervals(quantiles)  # outermost first
    if level is not None:
        have = {float(_pct(cov)): (lo, hi) for lo, hi, cov in ivs}
        want = [float(v) for v in level]
        missing = [v for v in want if v not in have]
        if missing:
            raise UserInputError(
                f"level {[_fmt(v) for v in missing]} was not trained; this model has the levels "
                f"{[_fmt(v) for v in have]} (pass level=... to GRUForecaster(...) before fit)"
            )
        ivs = [iv for iv in ivs if float(_pct(iv[2])) in want]
    mid = Q.median_index(quantiles)
    return [mid, *(lo for lo, _, _ in ivs), *(hi for _, hi, _ in reversed(ivs))]


def _fmt(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


# --------------------------------------------------------------------------------------- frames
class _Frame:
    """A user frame as pandas, and how to give results back in the kind it came in (narwhals)."""

    def __init__(self, df: Any, what: str = "df") -> None:
        if isinstance(df, pd.DataFrame):
            self.pandas, self.backend = df, None
            return
        try:
            import narwhals as nw

            frame = nw.from_native(df, eager_only=True)
        except (TypeError, ImportError):
            raise UserInputError(
                f"{what} must be a pandas or polars DataFrame (or another frame narwhals reads), "
                f"got {type(df).__name__}"
            ) from None
        self.backend = frame.implementation
        self.pandas = frame.to_pandas()

    def out(self, pdf: pd.DataFrame) -> Any:
        if self.backend is None:
            return pdf
        import narwhals as nw

        table = nw.from_native(pdf.reset_index(drop=True), eager_only=True).to_arrow()
        return nw.from_arrow(table, backend=self.backend).to_native()


@dataclasses.dataclass
class _Prepared:
    """The checked data of a call: the spec, the series and the id of each series as given."""

    spec: D.DataSpec
    series: Sequence[D.Series]
    ids: dict[str, Any]


class GRUForecaster:
    """One global GRU forecaster over many series, with calibrated intervals (the estimator).

    Speaks the shape statsforecast and neuralforecast share: long data with one row per series and time
    step (``unique_id``, ``ds``, ``y`` by default; other names through ``fit``'s ``id_col``, ``time_col``,
    ``target_col``), forecasts as ``unique_id, ds, <alias>, <alias>-lo-<L>, <alias>-hi-<L>``.

    Args:
        h: forecast horizon (steps).
        freq: pandas frequency alias (``"D"``, ``"MS"``, ...); inferred from the data when None; integer
            ``ds`` values are plain steps.
        season_length: season m (seasonal inputs, scaling, MASE); default from the frequency.
        level: interval levels in percent (default the 80% interval); the network learns their quantiles.
        context: context window length (default from h and m: 4h or 2m, 24 to 96).
        hidden: GRU hidden size.
        layers: GRU layers.
        dropout: dropout.
        epochs: most training epochs (early stopping on held-out windows).
        batch_size: windows per batch (default 64; 256 with over 16,384 training windows).
        epoch_windows: windows drawn per epoch (default all, at most 16,384).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: early-stopping patience in epochs (None: no early stopping).
        scaling: "window" (each window relative to its context's level) or "series" (per-series mean/std).
        seasonal: "snaive" (median = learned correction to seasonal naive), "lag" or "none".
        log: model the log of the target (None: when every value is positive).
        calendar: calendar features of the frequency as known-future inputs.
        relative: the encoder sees the target relative to its last value.
        hist_exog_list: past-only covariate columns (neuralforecast's name).
        futr_exog_list: future-known covariate columns; their values for the forecast steps come from
            ``predict``'s ``futr_df``.
        stat_exog_list: static covariate columns (one value per series), from ``static_df`` or constant
            columns of ``df``.
        date_format: strftime format of ``ds`` when it is text that pandas cannot read unaided.
        ensemble: members (seeds seed, seed + 1, ...); the forecast is the median of their quantiles.
        conformal: calibrate the intervals on the held-out windows (split conformal, per horizon step).
        select: per series, return the forecast of the candidate (the GRU, naive, seasonal naive, AutoETS,
            AutoTheta, or the mean of the GRU, AutoETS and AutoTheta) chosen on validation windows before
            the scored origin; in a panel of more than 20 series a weighted mean of the GRU, AutoETS and
            AutoTheta with weights chosen for the panel (:mod:`.selection`). Its intervals come with it.
            The choice is in ``selection_`` (series id → source) and ``selection_weights_``. False:
            always the GRU's forecast.
        seed: seed of member 0.
        alias: the forecast column's name.
        strict: refuse series too short to train on instead of skipping them (SkippedSeriesWarning).
        trainer_kwargs: passed to ``lightning.Trainer`` (``logger``, ``accelerator``, ``devices``, ...).

    Example:
        >>> import numpy as np, pandas as pd
        >>> t = np.arange(60)
        >>> df = pd.DataFrame({"unique_id": "a", "ds": t, "y": 10 + np.sin(t / 3)})
        >>> model = GRUForecaster(h=3, epochs=1, hidden=4).fit(df)
        >>> fc = model.predict()
        >>> list(fc.columns), len(fc)
        (['unique_id', 'ds', 'GRU', 'GRU-lo-80', 'GRU-hi-80'], 3)
    """

    def __init__(
        self,
        h: int,
        freq: str | None = None,
        season_length: int | None = None,
        level: Sequence[float] = (80,),
        *,
        context: int | None = None,
        hidden: int = _O.hidden,
        layers: int = _O.layers,
        dropout: float = _O.dropout,
        epochs: int = _O.epochs,
        batch_size: int | None = None,
        epoch_windows: int | None = None,
        lr: float = _O.lr,
        weight_decay: float = _O.weight_decay,
        patience: int | None = _O.patience,
        scaling: str = _O.scaling,
        seasonal: str = _O.seasonal,
        log: bool | None = None,
        calendar: bool = _O.calendar,
        relative: bool = _O.relative,
        hist_exog_list: Sequence[str] = (),
        futr_exog_list: Sequence[str] = (),
        stat_exog_list: Sequence[str] = (),
        date_format: str | None = None,
        ensemble: int = _O.ensemble,
        conformal: bool = _O.conformal,
        select: bool = _O.select,
        seed: int = _O.seed,
        alias: str = "GRU",
        strict: bool = _O.strict,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.h, self.freq, self.season_length, self.level = h, freq, season_length, tuple(level)
        self.context, self.hidden, self.layers, self.dropout = context, hidden, layers, dropout
        self.epochs, self.batch_size, self.epoch_windows = epochs, batch_size, epoch_windows
        self.lr, self.weight_decay, self.patience = lr, weight_decay, patience
        self.scaling, self.seasonal, self.log, self.calendar = scaling, seasonal, log, calendar
        self.relative = relative
        self.hist_exog_list = list(hist_exog_list)
        self.futr_exog_list = list(futr_exog_list)
        self.stat_exog_list = list(stat_exog_list)
        self.date_format, self.ensemble, self.conformal = date_format, ensemble, conformal
        self.seed, self.alias, self.strict = seed, alias, strict
        self.select = select
        #: the source of each series' forecast (series id → "GRU", "naive", "snaive", "ets", "theta",
        #: "combo", "blend"), chosen on its validation window (:mod:`.selection`); empty before fit / with
        #: select off
        self.selection_: dict[str, str] = {}
        #: the weights of the "blend" source (a panel of more than 20 series): member → weight; else empty
        self.selection_weights_: dict[str, float] = {}
        #: series id → candidate → validation MASE (the numbers the choice was made on)
        self.selection_scores_: dict[str, dict[str, float]] = {}
        #: series id → how many validation windows it was selected on
        self.selection_windows_: dict[str, int] = {}
        self.trainer_kwargs = dict(trainer_kwargs or {})
        #: options without an estimator argument (set by from_options: dataset, backtest, baselines ...)
        self._extra: dict[str, Any] = {}
        # fitted state
        self.model_: Any = None
        self.spec_: D.DataSpec | None = None
        self.options_: ForecastOptions | None = None
        self.series_: Sequence[D.Series] | None = None
        self.ids_: dict[str, Any] = {}
        #: how training went: history, epochs_run, best_epoch, ... (see :func:`~.train.train_model`)
        self.training_: Any = None
        #: after cross_validation: (panel, series index, origins, first origin per series id)
        self.cv_windows_: Any = None
        self._frame: _Frame | None = None
        self._static: Any = None  # the static_df of the last fit, for predict
        # a check now, not after an hour of training
        self._base_options("y", "ds", None)

    # ----------------------------------------------------------------------------- options
    @classmethod
    def from_options(
        cls, opts: ForecastOptions, trainer_kwargs: dict[str, Any] | None = None
    ) -> GRUForecaster:
        """The estimator of a :class:`~.config.ForecastOptions` (what ``grukit forecast`` builds)."""
        qs = tuple(opts.quantiles)
        est = cls(
            h=opts.horizon,
            freq=opts.freq,
            season_length=opts.season_length,
            level=quantiles_to_levels(qs),
            context=opts.context,
            hidden=opts.hidden,
            layers=opts.layers,
            dropout=opts.dropout,
            epochs=opts.epochs,
            batch_size=opts.batch_size,
            epoch_windows=opts.epoch_windows,
            lr=opts.lr,
            weight_decay=opts.weight_decay,
            patience=opts.patience,
            scaling=opts.scaling,
            seasonal=opts.seasonal,
            log=opts.log,
            calendar=opts.calendar,
            relative=opts.relative,
            hist_exog_list=opts.covariates,
            futr_exog_list=opts.future_covariates,
            stat_exog_list=opts.static_covariates,
            date_format=opts.date_format,
            ensemble=opts.ensemble,
            conformal=opts.conformal,
            select=opts.select,
            seed=opts.seed,
            strict=opts.strict,
            trainer_kwargs={
                **{k: getattr(opts, k) for k in _TRAINER_FIELDS},
                **(trainer_kwargs or {}),
            },
        )
        est._extra = {  # the options the estimator has no argument for, kept as given
            k: getattr(opts, k)
            for k in ("dataset", "data_path", "backtest", "stride", "baselines", "baseline_history")
        }
        if opts.limit_train_batches is not None:
            est._extra["limit_train_batches"] = opts.limit_train_batches
        if tuple(levels_to_quantiles(quantiles_to_levels(qs))) != qs:
            raise UserInputError(f"quantiles {qs} are not symmetric intervals")
        return est

    def _base_options(self, target: str, time_col: str, id_col: str | None) -> ForecastOptions:
        tk = self.trainer_kwargs
        extra = dict(self._extra)
        if self.ensemble is None or isinstance(self.ensemble, bool) or int(self.ensemble) < 1:
            raise UserInputError(f"ensemble must be a positive integer, got {self.ensemble!r}")
        return build_options(
            target,
            time_col,
            covariates=list(self.hist_exog_list),
            id_col=id_col,
            freq=self.freq,
            season_length=self.season_length,
            horizon=self.h,
            context=self.context,
            log=self.log,
            future_covariates=list(self.futr_exog_list),
            static_covariates=list(self.stat_exog_list),
            date_format=self.date_format,
            calendar=self.calendar,
            scaling=self.scaling,
            seasonal=self.seasonal,
            relative=self.relative,
            strict=self.strict,
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            epochs=self.epochs,
            batch_size=self.batch_size,
            epoch_windows=self.epoch_windows,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            seed=self.seed,
            quantiles=list(levels_to_quantiles(self.level)),
            ensemble=self.ensemble,
            conformal=self.conformal,
            select=self.select,
            **{k: tk[k] for k in _TRAINER_FIELDS if k in tk},
            **extra,
        )

    def _trainer_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.trainer_kwargs.items() if k not in _TRAINER_FIELDS}

    # ----------------------------------------------------------------------------- data
    def _prepare(
        self,
        df: Any,
        static_df: Any,
        id_col: str | None,
        time_col: str,
        target_col: str,
        futr_df: Any = None,
    ) -> tuple[_Frame, ForecastOptions, _Prepared]:
        frame = _Frame(df)
        pdf = _with_static(frame.pandas, static_df, id_col)
        self._static = static_df
        if futr_df is not None:
            pdf = _with_future(pdf, _Frame(futr_df, "futr_df").pandas, target_col)
        opts = self._base_options(target_col, time_col, id_col)
        spec = D.spec_from_options(pdf, opts)
        return frame, opts, self.prepared(pdf, spec)

    @staticmethod
    def prepared(pdf: pd.DataFrame, spec: D.DataSpec) -> _Prepared:
        """The series of a pandas table under ``spec`` (checked: one pass over the table)."""
        series = D.to_series(pdf, spec)
        ids: dict[str, Any] = {}
        if spec.id_col is not None:
            col = pdf[spec.id_col].drop_duplicates(keep="last")  # one row per id, not per row
            ids = dict(zip(col.astype(str), col))
        return _Prepared(spec, series, ids)

    def _resolved(self, opts: ForecastOptions, spec: D.DataSpec) -> ForecastOptions:
        H = opts.horizon
        C = default_context(spec, H) if opts.context is None else int(opts.context)
        return dataclasses.replace(
            opts,
            freq=spec.freq,
            season_length=spec.season_length,
            context=C,
            stride=H if opts.stride is None else int(opts.stride),
            log=spec.log,
        )

    # ----------------------------------------------------------------------------- fit
    def fit(
        self,
        df: Any,
        static_df: Any = None,
        id_col: str | None = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> GRUForecaster:
        """Train on every step of every series of ``df``; returns self.

        Args:
            df: long frame (pandas, polars, ...): ``id_col``, ``time_col``, ``target_col`` and the covariate
                columns. ``id_col=None``: the whole frame is one series.
            static_df: one row per series: ``id_col`` and the static covariates (``stat_exog_list``).
            id_col: the series id column (None: one series).
            time_col: the time column (dates, or integer steps).
            target_col: the column to forecast.
        """
        frame, opts, prep = self._prepare(df, static_df, id_col, time_col, target_col)
        opts = self.check(prep, opts, backtest=False)
        series = self._usable(prep.series, _lengths(prep.series), opts)
        D.fit_scalers(series, prep.spec, _lengths(series))
        self.cv_windows_ = None  # a backtest's panel before this fit is not this fit's
        self._train(series, prep, opts, frame)
        self.series_ = series
        self._select(series, _lengths(series), opts)
        return self

    def check(
        self,
        prep: _Prepared,
        opts: ForecastOptions,
        backtest: bool = True,
        future: bool = False,
    ) -> ForecastOptions:
        """The options resolved on the data (context, stride, frequency, season, log scale), checked:
        sizes against the data and the memory, with ``future`` the future covariates of the forecast steps
        after the data, and, for a backtest, that some series is long enough (``strict``: every series). Raises UserInputError;
        no warning, nothing allocated: ``grukit forecast`` runs it before importing Lightning."""
        opts = self._resolved(opts, prep.spec)
        check_sizes(prep.series, prep.spec, opts)
        if future:
            D.check_future_covariates(prep.series, prep.spec, opts.horizon)
        if backtest:
            self._usable(prep.series, self._first(prep.series, opts), opts, warn=False)
        return opts

    @staticmethod
    def _first(series: Sequence[D.Series], opts: ForecastOptions) -> dict[str, int]:
        """Each series' first backtest origin (``backtest_origins(len(s), ...)[0]``, for all at once)."""
        n = D.lengths_of(series)
        back = opts.horizon + (opts.backtest - 1) * (opts.stride or opts.horizon)
        return dict(zip(D.ids_of(series), (n - back).tolist()))

    def _usable(
        self,
        series: Sequence[D.Series],
        first: dict[str, int],
        opts: ForecastOptions,
        warn: bool = True,
    ) -> Sequence[D.Series]:
        """The series with at least MIN_FIT_POINTS points before their first origin; the others are
        skipped with one SkippedSeriesWarning (an error with ``strict`` or when none is left)."""
        H, n_bt, S = opts.horizon, opts.backtest, opts.stride or opts.horizon
        ids = D.ids_of(series)
        short = np.fromiter((first[i] for i in ids), np.int64, len(ids)) < MIN_FIT_POINTS
        skipped = [ids[k] for k in np.flatnonzero(short).tolist()]
        if skipped:
            need = MIN_FIT_POINTS + H + (n_bt - 1) * S
            msg = (
                f"{len(skipped)} of {len(series)} series have fewer than {need} points (horizon "
                f"{H} + {n_bt} backtest origin(s) + {MIN_FIT_POINTS} to train on): "
                + ", ".join(map(repr, skipped[:20]))
                + (f" and {len(skipped) - 20} more" if len(skipped) > 20 else "")
            )
            if opts.strict or len(skipped) == len(series):
                raise UserInputError(
                    msg
                    + ("" if opts.strict else "; nothing left to train on")
                    + " (lower --horizon or --backtest)"
                )
            if warn:
                warnings.warn(msg + "; they are skipped", SkippedSeriesWarning, stacklevel=3)
        if warn:
            self.skipped_ = skipped
        if not skipped:
            return series
        return D.subset(series, np.flatnonzero(~short))

    def _train(
        self,
        fit_series: Sequence[D.Series],
        prep: _Prepared,
        opts: ForecastOptions,
        frame: _Frame | None,
        run: Any = None,
        resume: Any = None,
        progress: bool = False,
        fit_options: dict[str, Any] | None = None,
    ) -> None:
        from .train import train_model

        D.fit_covariate_scalers(fit_series, prep.spec)
        if callable(run):  # made only now, once every check of the data passed
            run = run()
        trained = train_model(
            fit_series,
            prep.spec,
            opts,
            run=run,
            resume=resume,
            progress=progress,
            trainer_kwargs=self._trainer_kwargs() or None,
            fit_options=fit_options,
        )
        self.model_, self.spec_, self.options_ = trained.model, prep.spec, opts
        self.training_, self.ids_, self._frame = trained, prep.ids, frame

    # ----------------------------------------------------------------------------- cross-validation
    def cross_validation(
        self,
        df: Any,
        n_windows: int = 1,
        step_size: int | None = None,
        level: Sequence[float] | None = None,
        refit: bool = False,
        static_df: Any = None,
        id_col: str | None = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> Any:
        """Backtest: train once on what comes before each series' first cutoff, forecast ``n_windows``
        windows of ``h`` steps, ``step_size`` apart (default h), the last ending at the series' end.

        With ``refit=True`` each window trains its own model on what comes before its cutoff
        (``n_windows`` trainings; the estimator keeps the last).

        Returns ``unique_id, ds, cutoff, y, GRU, GRU-lo-80, GRU-hi-80`` (the names of ``id_col``,
        ``time_col``, ``target_col``, ``alias``), one row per series, window and step, in the kind of frame
        ``df`` is. A series with fewer than 2 points before its first cutoff is left out
        (SkippedSeriesWarning). Afterwards the estimator is fitted (on those parts): :meth:`predict`
        forecasts after the end of ``df``.
        """
        for name, v in (("n_windows", n_windows), ("step_size", step_size)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UserInputError(f"{name} must be a positive integer, got {v!r}")
        frame, opts, prep = self._prepare(df, static_df, id_col, time_col, target_col)
        opts = dataclasses.replace(opts, backtest=n_windows, stride=step_size)
        if not refit:
            return self.cross_validation_prepared(prep, opts, frame=frame, level=level)
        # refit: window k trains on what comes before its own cutoff (each series cut to end with it)
        S = step_size or opts.horizon
        parts = []
        for k in range(n_windows):
            back = (n_windows - 1 - k) * S
            lens = D.lengths_of(prep.series)
            long = np.flatnonzero(lens > back)
            cut = D.heads(D.subset(prep.series, long), lens[long] - back)
            window = _Prepared(prep.spec, cut, prep.ids)
            one = dataclasses.replace(opts, backtest=1, stride=S)
            parts.append(self.cross_validation_prepared(window, one, level=level))
        out = pd.concat(parts, ignore_index=True)
        order = {sid: i for i, sid in enumerate(dict.fromkeys(out[self._id_name()]))}
        key = out[self._id_name()].map(order)
        out = out.assign(_k=key).sort_values(["_k", "cutoff"], kind="stable").drop(columns="_k")
        return frame.out(out.reset_index(drop=True))

    def cross_validation_prepared(
        self,
        prep: _Prepared,
        opts: ForecastOptions,
        *,
        frame: _Frame | None = None,
        level: Sequence[float] | None = None,
        run: Any = None,
        resume: Any = None,
        progress: bool = False,
        fit_options: dict[str, Any] | None = None,
    ) -> Any:
        """:meth:`cross_validation` on already checked data (``grukit forecast`` reads its table once);
        ``opts.backtest`` windows, ``opts.stride`` apart. With ``run`` the members train in that run
        folder (``resume`` continues it; ``fit_options`` go to the first member's
        :func:`grukit.train.fit`)."""
        spec = prep.spec
        opts = self.check(prep, opts)
        H, S = opts.horizon, int(opts.stride or opts.horizon)
        with paused_gc():  # 100k series: 100k heads, dict entries
            first = self._first(prep.series, opts)
            scored = self._usable(prep.series, first, opts)
            ids = D.ids_of(scored)
            D.fit_scalers(scored, spec, {i: first[i] for i in ids})
            fit_series = D.heads(scored, np.fromiter((first[i] for i in ids), np.int64, len(ids)))
        self._train(
            fit_series,
            prep,
            opts,
            frame,
            run=run,
            resume=resume,
            progress=progress,
            fit_options=fit_options,
        )
        self.series_ = prep.series  # predict() forecasts every series, the skipped ones too
        if not self.training_.rank_zero:
            return None
        from .train import predict_quantiles

        panel = D.Panel(scored, spec, int(opts.context or 0), H)
        # backtest_origins(len(s), H, n, S) of every series, series after series
        n_bt = int(opts.backtest)
        lens = D.lengths_of(scored)
        sidx_a = np.repeat(np.arange(len(scored), dtype=np.int64), n_bt)
        back = (n_bt - 1 - np.arange(n_bt, dtype=np.int64)) * S
        orig_a = (lens[:, None] - H - back[None, :]).reshape(-1)
        q = predict_quantiles(self.model_, panel, sidx_a, orig_a)  # (N, H, Q)
        self._select(scored, first, opts)
        q = self._apply_selection(q, scored, sidx_a, orig_a)
        self.cv_windows_ = (panel, sidx_a, orig_a, first)
        self.cv_quantiles_ = q
        return self._cv_frame(q, scored, sidx_a, orig_a, level, frame)

    def _cv_frame(self, q, series, sidx, origins, level, frame) -> Any:
        spec = self.spec_
        assert spec is not None
        H = q.shape[1]
        qs = self.model_.quantiles
        cols = output_columns(self.alias, qs)
        pick = _ordered(self.alias, qs, level)
        n = len(sidx)
        idv = np.array([self._id(i) for i in D.ids_of(series)])  # the ids as given, once a series
        st = D.window_times(series, sidx, origins - 1, H + 1) if n else np.zeros((0, H + 1))
        ys = D.window_values(series, sidx, origins, H) if n else np.zeros((0, H))
        if n and D.has_gaps(series):
            ys[~D.observed_windows(series, sidx, origins, H)] = np.nan
        out = pd.DataFrame(
            {
                self._id_name(): np.repeat(idv[sidx], H) if n else [],
                spec.time_col: st[:, 1:].ravel() if n else [],
                "cutoff": np.repeat(st[:, 0], H) if n else [],
                spec.target: ys.ravel() if n else [],
            }
        )
        flat = q.reshape(-1, q.shape[-1])
        for j in pick:
            out[cols[j]] = flat[:, j]
        return (frame or _Frame(out)).out(out)

    # ----------------------------------------------------------------------------- predict
    def predict(
        self,
        h: int | None = None,
        df: Any = None,
        futr_df: Any = None,
        level: Sequence[float] | None = None,
        static_df: Any = None,
    ) -> Any:
        """Forecast the ``h`` steps (default and at most the trained horizon) after the end of each series.

        Args:
            h: steps to forecast (≤ the trained ``h``).
            df: the history to forecast from (the columns of ``fit``); default the data of the last
                ``fit``/``cross_validation``.
            futr_df: the future-known covariates (``futr_exog_list``) of the forecast steps: ``id``, ``ds``
                and those columns, one row per series and step.
            level: the intervals to return (a subset of the trained ``level``; default all).
            static_df: static covariates of the series of ``df``.

        Returns:
            ``unique_id, ds, GRU, GRU-lo-<L>, GRU-hi-<L>`` (the fitted column names and ``alias``), one row
            per series and step, in the kind of frame ``df`` (or the fitted data) is.
        """
        if self.model_ is None or self.spec_ is None:
            raise UserInputError(
                "this GRUForecaster is not fitted: call fit(df) or load(path) first"
            )
        spec, H = self.spec_, self.model_.config.horizon
        if h is None:
            h = H
        if not isinstance(h, int) or isinstance(h, bool) or not 1 <= h <= H:
            raise UserInputError(
                f"h must be an integer from 1 to the trained horizon {H}, got {h!r}"
            )
        frame = self._frame
        if df is None and futr_df is None and self.series_ is not None:
            series, ids = self.series_, self.ids_
        else:
            if df is None:
                if self._frame is None:
                    raise UserInputError("predict needs df: this model was loaded, not fitted")
                frame = self._frame
                pdf = frame.pandas
            else:
                frame = _Frame(df)
                pdf = frame.pandas
            pdf = _with_static(pdf, self._static if static_df is None else static_df, spec.id_col)
            if futr_df is not None:
                pdf = _with_future(pdf, _Frame(futr_df, "futr_df").pandas, spec.target)
            prep = self.prepared(pdf, spec)
            series, ids = prep.series, prep.ids
        return self._forecast_frame(series, ids, h, level, frame)

    def predict_prepared(
        self, prep: _Prepared, h: int | None = None, level: Sequence[float] | None = None
    ) -> Any:
        """:meth:`predict` from already checked data (:meth:`prepared`), as a pandas frame."""
        if self.model_ is None:
            raise UserInputError(
                "this GRUForecaster is not fitted: call fit(df) or load(path) first"
            )
        return self._forecast_frame(
            prep.series, prep.ids, h or self.model_.config.horizon, level, None
        )

    def _forecast_frame(self, series, ids, h, level, frame) -> Any:
        from .train import future_quantiles

        spec = self.spec_
        assert spec is not None
        cv = getattr(self, "cv_windows_", None)
        same = (  # the backtest's panel holds exactly these series: forecast from it, not a copy
            cv is not None
            and len(cv[0].series) == len(series)
            and (cv[0].series is series or all(a is b for a, b in zip(cv[0].series, series)))
            and cv[0].C == self.model_.config.context
        )
        try:
            q = future_quantiles(
                self.model_, series, spec, panel=cv[0] if same and cv is not None else None
            )
        except UserInputError as e:
            if not spec.future_covariates or "--future-covariates" not in str(e):
                raise
            raise UserInputError(
                f"{e}; with the estimator: predict(futr_df=...) with {spec.id_col or 'unique_id'!r}, "
                f"{spec.time_col!r} and {spec.future_covariates} for each forecast step"
            ) from None
        if self.selection_ and not spec.future_covariates:
            n = np.arange(len(series))
            q = self._apply_selection(q, series, n, D.lengths_of(series))
        q = q[:, :h]
        qs = self.model_.quantiles
        cols = output_columns(self.alias, qs)
        pick = _ordered(self.alias, qs, level)
        idv = np.array([ids.get(i, i) for i in D.ids_of(series)] if ids else D.ids_of(series))
        out = pd.DataFrame(
            {
                self._id_name(): np.repeat(idv, h),
                spec.time_col: _future_stamps(series, h, spec.freq),
            }
        )
        flat = q.reshape(-1, q.shape[-1])
        for j in pick:
            out[cols[j]] = flat[:, j]
        return (frame or _Frame(out)).out(out)

    # ----------------------------------------------------------------------------- selection
    def _stat_forecasts(self, hists: list[np.ndarray], H: int, names) -> dict[str, np.ndarray]:
        """The statistical candidates' forecasts, each fitted on the last
        :data:`~.selection.STAT_HISTORY` points of its history (as the baselines' default)."""
        from . import evaluate as E
        from . import selection as SEL

        assert self.spec_ is not None
        m = int(self.spec_.season_length or 1)
        hists = [h[-SEL.STAT_HISTORY :] for h in hists]
        return E.statsforecast_baselines(
            hists, H, m, list(names), quantiles=tuple(self.model_.quantiles)
        )

    def _select(
        self, scored: Sequence[D.Series], first: dict[str, int], opts: ForecastOptions
    ) -> None:
        """Choose each series' source on validation windows before its first scored origin (``first``):
        :mod:`.selection`. Sets ``selection_`` and ``selection_scores_``."""
        from . import selection as SEL
        from .train import predict_quantiles

        self.selection_, self.selection_scores_, self.selection_windows_ = {}, {}, {}
        self.selection_weights_ = {}
        spec = self.spec_
        if not self.select or spec is None or spec.future_covariates or not scored:
            return
        H = int(opts.horizon)
        small = len(scored) <= SEL.PER_SERIES_MAX
        K = SEL.MAX_WINDOWS if small else 1
        rows = []  # (series index, validation origin, window number: 0 = the latest)
        for i, s in enumerate(scored):
            for k, v in enumerate(SEL.validation_origins(first[s.id], H, K)):
                if np.isfinite(np.asarray(s.y[: v + H], dtype=float)).all():
                    rows.append((i, v, k))
        self.selection_ = {s.id: "GRU" for s in scored}
        held_from = dict(getattr(self.training_, "held_from", {}) or {})
        never = np.iinfo(np.int64).max
        if not small and rows:
            # one blend for every series with a validation window; its weights are decided on the series
            # whose window the GRU held out, so only those windows are forecast and scored (the others
            # are windows the GRU trained on: they would flatter it, and fitting the statistical
            # candidates there would cost time for nothing)
            for i in {r[0] for r in rows}:
                self.selection_[scored[i].id] = SEL.BLEND
            rows = [r for r in rows if r[1] >= held_from.get(scored[r[0]].id, never)]
            if not rows:  # no held-out window: equal weights (as blend_weights gives then)
                self.selection_weights_ = dict.fromkeys(SEL.COMBO, round(1 / len(SEL.COMBO), 4))
                return
        if not rows:
            return
        sidx = np.asarray([r[0] for r in rows], dtype=np.int64)
        orig = np.asarray([r[1] for r in rows], dtype=np.int64)
        panel = D.Panel(scored, spec, int(opts.context or 0), H)
        gru = predict_quantiles(self.model_, panel, sidx, orig)
        hists = [np.asarray(scored[i].y[:v], dtype=np.float64) for i, v, _ in rows]
        m = int(spec.season_length or 1)
        names = SEL.small_stat_candidates(m) if small else SEL.STAT_CANDIDATES
        fc = SEL.with_combo({"GRU": gru, **self._stat_forecasts(hists, H, names)}, stat=small)
        mid = Q.median_index(self.model_.quantiles)
        actual = np.stack(
            [
                scored[i].y[v : v + H] if scored[i].observed is None else _masked(scored[i], v, H)
                for i, v, _ in rows
            ]
        ).astype(np.float64)
        scale = np.asarray([SEL.naive_scale(h, m) for h in hists])
        flat = SEL.validation_scores(actual, {k: f[:, :, mid] for k, f in fc.items()}, scale)
        # per selected series × window tables (NaN: no such window)
        order = sorted({i for i, _, _ in rows})
        at = {i: r for r, i in enumerate(order)}
        ri = np.asarray([at[i] for i, _, _ in rows])
        ki = np.asarray([k for _, _, k in rows])
        scores = {}
        for c, per_row in flat.items():
            t = np.full((len(order), K), np.nan)
            t[ri, ki] = per_row
            scores[c] = t
        ok = np.zeros((len(order), K), dtype=bool)
        for i, v, k in rows:
            ok[at[i], k] = v >= held_from.get(scored[i].id, never)
        if small:
            chosen = SEL.choose_small(scores, ok)
        else:  # one panel-weighted blend for every series (the module doc)
            own = ok[ri, ki]
            w = SEL.blend_weights(actual, {c: fc[c][:, :, mid] for c in SEL.COMBO}, scale, own)
            self.selection_weights_ = w
            comb = SEL.weighted({c: fc[c][:, :, mid : mid + 1] for c in w}, w)[:, :, 0]
            per_row = SEL.validation_scores(actual, {SEL.BLEND: comb}, scale)[SEL.BLEND]
            t = np.full((len(order), K), np.nan)
            t[ri, ki] = per_row
            scores[SEL.BLEND] = t
            chosen = [SEL.BLEND] * len(order)
        # the GRU's, combo's and blend's means: over the windows the GRU held out, where it has any
        gru_like = ("GRU", "combo", SEL.BLEND)
        with np.errstate(all="ignore"):
            for r, (i, c) in enumerate(zip(order, chosen)):
                sid = scored[i].id
                self.selection_[sid] = c
                self.selection_scores_[sid] = {
                    k: float(np.nanmean(t[r][ok[r]] if k in gru_like and ok[r].any() else t[r]))
                    for k, t in scores.items()
                }
        self.selection_windows_ = {scored[i].id: int((ki[ri == at[i]]).size) for i in order}

    def _apply_selection(
        self, q: np.ndarray, series: Sequence[D.Series], sidx: np.ndarray, origins: np.ndarray
    ) -> np.ndarray:
        """``q`` (N, H, Q: the GRU's quantiles at ``origins`` of ``series[sidx]``) with each row of a
        series whose source is not the GRU replaced by that source's forecast from the history before the
        origin."""
        from . import selection as SEL

        if not self.selection_:
            return q
        rows = [j for j, i in enumerate(sidx) if self.selection_.get(series[i].id, "GRU") != "GRU"]
        if not rows:
            return q
        chosen = [self.selection_[series[sidx[j]].id] for j in rows]
        need = set()
        assert self.spec_ is not None
        stat = SEL.small_stat_candidates(int(self.spec_.season_length or 1))
        for c in chosen:
            if c in ("combo", SEL.BLEND):
                need |= set(SEL.COMBO) - {"GRU"}
            elif c == SEL.STAT_COMBO:
                need |= set(SEL.STAT_COMBO_MEMBERS) & set(stat)
            else:
                need.add(c)
        H = q.shape[1]
        hists = [np.asarray(series[sidx[j]].y[: origins[j]], dtype=np.float64) for j in rows]
        fc = SEL.with_combo(
            {"GRU": q[rows], **self._stat_forecasts(hists, H, sorted(need))},
            stat=SEL.STAT_COMBO in chosen,
        )
        if SEL.BLEND in chosen:
            if not self.selection_weights_:
                raise UserInputError(
                    "a series' source is 'blend' but the estimator has no blend weights "
                    f"({SELECTION_WEIGHTS_FILE} missing from the folder it was loaded from?)"
                )
            fc[SEL.BLEND] = SEL.weighted(fc, self.selection_weights_)
        out = np.array(q, dtype=np.float64, copy=True)
        out[rows] = SEL.blend(q[rows], chosen, fc)
        return out

    def _id_name(self) -> str:
        assert self.spec_ is not None
        return self.spec_.id_col or "unique_id"

    def _id(self, sid: str) -> Any:
        return self.ids_.get(sid, sid) if self.ids_ else sid

    # ----------------------------------------------------------------------------- files
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted model to the folder ``path``: ``model.safetensors`` (+ ``member-<k>/`` for an
        ensemble), ``ensemble.json`` and ``estimator.json`` (the constructor arguments). No pickle.

        A folder that already holds files is refused unless ``overwrite``. Returns the folder."""
        import shutil
        import tempfile

        from .train import save_model

        if self.model_ is None or self.spec_ is None:
            raise UserInputError("this GRUForecaster is not fitted: nothing to save")
        folder = Path(path).expanduser()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
            raise UserInputError(f"{folder} exists and is not an empty folder; pass overwrite=True")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        try:
            save_model(self.model_, self.spec_, tmp)
            (tmp / ESTIMATOR_FILE).write_text(json.dumps(self._params(), indent=2) + "\n")
            if self.selection_:
                (tmp / SELECTION_FILE).write_text(json.dumps(self.selection_, indent=2) + "\n")
            if self.selection_weights_:
                text = json.dumps(self.selection_weights_, indent=2) + "\n"
                (tmp / SELECTION_WEIGHTS_FILE).write_text(text)
            if folder.exists():
                shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
            tmp.replace(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def _params(self) -> dict[str, Any]:
        names = [
            "h", "freq", "season_length", "level", "context", "hidden", "layers", "dropout",
            "epochs", "batch_size", "epoch_windows", "lr", "weight_decay", "patience", "scaling",
            "seasonal", "log", "calendar", "relative", "hist_exog_list", "futr_exog_list",
            "stat_exog_list", "date_format", "ensemble", "conformal", "select", "seed", "alias", "strict",
        ]  # fmt: skip
        out = {n: getattr(self, n) for n in names}
        out["level"] = list(out["level"])
        return out

    @classmethod
    def load(cls, path: str | Path) -> GRUForecaster:
        """A fitted estimator from a folder written by :meth:`save`, a ``grukit forecast`` run folder or a
        model file (also ones written before 0.2). ``predict`` then needs ``df``."""
        from .train import load_forecaster

        model, spec = load_forecaster(path)
        folder = Path(path).expanduser()
        folder = folder if folder.is_dir() else folder.parent
        params: dict[str, Any] = {}
        f = folder / ESTIMATOR_FILE
        if f.is_file():
            try:
                params = json.loads(f.read_text())
            except ValueError:
                raise UserInputError(f"{f}: not valid JSON") from None
        c = model.config
        params.update(h=c.horizon, level=quantiles_to_levels(c.quantiles), context=c.context)
        params.setdefault("freq", spec.freq)
        params.setdefault("season_length", spec.season_length)
        est = cls(**params)
        est.model_, est.spec_ = model, spec
        sel = folder / SELECTION_FILE
        if sel.is_file():
            est.selection_ = {str(k): str(v) for k, v in json.loads(sel.read_text()).items()}
        wf = folder / SELECTION_WEIGHTS_FILE
        if wf.is_file():
            est.selection_weights_ = {
                str(k): float(v) for k, v in json.loads(wf.read_text()).items()
            }
        return est

    def __repr__(self) -> str:
        state = "fitted" if self.model_ is not None else "not fitted"
        return f"GRUForecaster(h={self.h}, level={list(self.level)}, alias={self.alias!r}; {state})"


def _lengths(series: Sequence[D.Series]) -> dict[str, int]:
    """``{s.id: len(s)}`` of every series."""
    return dict(zip(D.ids_of(series), D.lengths_of(series).tolist()))


def _future_stamps(series: Sequence[D.Series], h: int, freq: str) -> np.ndarray:
    """The ``h`` time stamps after each series' end, series after series (N·h,): what
    ``D.future_times(s.times[-1], h, freq)`` gives each, in whole-array arithmetic for integer steps
    and fixed-duration frequencies ("D", "h", ...)."""
    if not series:
        return np.zeros(0, dtype=np.int64)
    from .spec import _grid_starts

    k = np.arange(1, h + 1, dtype=np.int64)
    if isinstance(series, D.SeriesList) and series.calendar is not None and series.freq == freq:
        last = series.first + D.lengths_of(series) - 1  # positions on the calendar grid
        return series.stamps((last[:, None] + k[None, :]).ravel()).view("M8[ns]")
    grid = _grid_starts(series)  # regular grids: no array of times per series
    if grid is not None:
        t0, unit, dates = grid
        if dates == (freq != D.STEP) and (not dates or _fixed_nanos(freq) == unit):
            n = D.lengths_of(series)
            out = ((t0 + unit * (n - 1))[:, None] + unit * k[None, :]).ravel()
            return out.view("M8[ns]") if dates else out
    if freq == D.STEP:
        last = np.array([np.asarray(s.times)[-1] for s in series], dtype=np.int64)
        return (last[:, None] + k[None, :]).ravel()
    try:
        unit = int(pd.tseries.frequencies.to_offset(freq).nanos)  # a fixed duration only
    except (ValueError, AttributeError):
        unit = 0
    if unit > 0 and all(
        isinstance(s.times, pd.DatetimeIndex) and s.times.tz is None for s in series
    ):
        last = np.array([s.times.as_unit("ns").asi8[-1] for s in series], dtype=np.int64)
        return (last[:, None] + unit * k[None, :]).ravel().view("M8[ns]")
    return np.concatenate([np.asarray(D.future_times(s.times[-1], h, freq)) for s in series])


def _fixed_nanos(freq: str) -> int:
    """The length of a fixed-duration frequency in ns; 0 for one without (a month)."""
    try:
        return int(pd.tseries.frequencies.to_offset(freq).nanos)
    except (ValueError, AttributeError):
        return 0


def _masked(s: D.Series, o: int, H: int) -> np.ndarray:
    y = np.array(s.y[o : o + H], dtype=np.float64)
    obs = s.observed[o : o + H]  # type: ignore[index]
    y[~obs] = np.nan
    return y


def _with_static(pdf: pd.DataFrame, static_df: Any, id_col: str | None) -> pd.DataFrame:
    """``pdf`` with the columns of ``static_df`` (one row per series) joined on ``id_col``."""
    if static_df is None:
        return pdf
    st = _Frame(static_df, "static_df").pandas
    if id_col is None or id_col not in st.columns:
        raise UserInputError(f"static_df needs the id column {id_col!r}; it has {list(st.columns)}")
    if st[id_col].duplicated().any():
        raise UserInputError("static_df must hold one row per series; some id appears twice")
    clash = [c for c in st.columns if c != id_col and c in pdf.columns]
    if clash:
        raise UserInputError(f"static_df columns {clash} are also columns of df")
    key = pdf[id_col].astype(str)
    st = st.assign(**{id_col: st[id_col].astype(str)}).set_index(id_col)
    return pdf.assign(**{c: key.map(st[c]) for c in st.columns})


def _with_future(pdf: pd.DataFrame, fut: pd.DataFrame, target: str) -> pd.DataFrame:
    """``pdf`` with the rows of ``futr_df`` after it (their target empty): the future-known covariates
    of the forecast steps, as a table gives them."""
    if target in fut.columns:
        raise UserInputError(f"futr_df must not hold the target {target!r}")
    return pd.concat([pdf, fut.assign(**{target: np.nan})], ignore_index=True)
