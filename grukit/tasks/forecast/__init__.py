"""Forecasting recipe (the main job): data → model → train → evaluate → cli.

Python API (mirrors ``grukit forecast``)::

    from grukit.tasks import forecast

    df = forecast.load_builtin("weather")  # or pandas.read_csv(...)
    res = forecast.fit(
        df,
        target="temp_max",
        time_col="date",
        horizon=7,
        covariates=["precipitation", "temp_min", "wind", "weather"],
    )
    print(res.metrics["model"]["mase"], res.run.path)  # runs/forecast-YYYYmmdd-HHMMSS/
    future = forecast.predict(res.run.path, df)  # series, time, step, q10, q50, q90

Heavy imports (pandas, Lightning) happen on first attribute access, so the CLI stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUILTIN",
    "ForecastOptions",
    "ForecastResult",
    "ForecasterConfig",
    "GRUForecaster",
    "fit",
    "load_builtin",
    "predict",
    "run_builtin",
]

_LAZY = {
    "fit": ".train",
    "predict": ".train",
    "ForecastResult": ".train",
    "ForecastOptions": ".config",
    "SkippedSeriesWarning": ".config",
    "run_builtin": ".train",
    "load_builtin": ".data",
    "BUILTIN": ".data",
    "GRUForecaster": ".model",
    "ForecasterConfig": ".model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
