"""Forecasting data, one name for four modules: :mod:`.tables` (reading files, built-in datasets),
:mod:`.calendar` (the time axis), :mod:`.spec` (table → series) and :mod:`.panel` (scaling, windows).

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

from .calendar import (
    STEP,
    UTCConvertedWarning,
    _day_first,
    _has_offsets,
    _kind,
    _offset,
    _parse_times,
    calendar_features,
    calendar_names,
    default_season_length,
    future_times,
    infer_freq,
)
from .panel import (
    Panel,
    _standardised,
    _stats,
    fit_covariate_scalers,
    fit_scalers,
    future_feature_names,
    inverse,
    past_feature_names,
    scaler_for,
    transform,
    windows,
)
from .spec import (
    MAX_CATEGORIES,
    DataSpec,
    GapFilledWarning,
    Series,
    TrailingGapWarning,
    UnseenCategoryWarning,
    _check_columns,
    _encode_into,
    _encodings,
    _static_vectors,
    check_future_covariates,
    check_target,
    future_covariate_names,
    is_step_column,
    make_spec,
    spec_from_options,
    spec_times,
    static_names,
    to_series,
    window_times,
    window_values,
)
from .tables import BUILTIN, load_builtin, read_csv, read_table

__all__ = [
    "BUILTIN",
    "MAX_CATEGORIES",
    "STEP",
    "DataSpec",
    "GapFilledWarning",
    "Panel",
    "Series",
    "TrailingGapWarning",
    "UTCConvertedWarning",
    "UnseenCategoryWarning",
    "_check_columns",
    "_day_first",
    "_encode_into",
    "_encodings",
    "_has_offsets",
    "_kind",
    "_offset",
    "_parse_times",
    "_standardised",
    "_static_vectors",
    "_stats",
    "calendar_features",
    "calendar_names",
    "check_future_covariates",
    "check_target",
    "default_season_length",
    "fit_covariate_scalers",
    "fit_scalers",
    "future_covariate_names",
    "future_feature_names",
    "future_times",
    "infer_freq",
    "inverse",
    "is_step_column",
    "load_builtin",
    "make_spec",
    "past_feature_names",
    "read_csv",
    "read_table",
    "scaler_for",
    "spec_from_options",
    "spec_times",
    "static_names",
    "to_series",
    "transform",
    "window_times",
    "window_values",
    "windows",
]
