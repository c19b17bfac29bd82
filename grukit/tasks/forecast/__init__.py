"""Forecasting recipe (the main job): data → windows → model → train → estimator → report → cli.

The public face is :mod:`grukit.forecast` (``GRUForecaster``, the estimator in the shape statsforecast and
neuralforecast share); this package is the recipe's home: ``grukit forecast`` (:mod:`.cli`) runs
:func:`.report.run_forecast`, which backtests the estimator against the statsforecast baselines and writes a
run folder::

    from grukit.forecast import GRUForecaster

    model = GRUForecaster(h=7, freq="D")
    cv = model.cross_validation(
        df, n_windows=5
    )  # unique_id, ds, cutoff, y, GRU, GRU-lo-80, GRU-hi-80
    future = model.predict()  # unique_id, ds, GRU, GRU-lo-80, GRU-hi-80

``fit`` and ``predict`` of this package (run folder in, run folder out) are deprecated (DeprecationWarning)
and kept for one release. Heavy imports (pandas, Lightning) happen on first attribute access, so the CLI
stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUILTIN",
    "ForecastNet",
    "ForecastOptions",
    "ForecastResult",
    "ForecasterConfig",
    "GRUForecaster",
    "fit",
    "load_builtin",
    "predict",
    "run_builtin",
    "run_forecast",
]

_LAZY = {
    "fit": ".report",
    "predict": ".report",
    "ForecastResult": ".report",
    "run_forecast": ".report",
    "run_builtin": ".report",
    "ForecastOptions": ".config",
    "SkippedSeriesWarning": ".config",
    "load_builtin": ".data",
    "BUILTIN": ".data",
    "ForecastNet": ".model",
    "ForecasterConfig": ".model",
    "GRUForecaster": ".estimator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
