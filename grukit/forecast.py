"""Forecasting with grukit: :class:`GRUForecaster`, one global GRU forecaster over many series.

The estimator speaks the DataFrame shape statsforecast and neuralforecast share (long ``unique_id, ds, y``
in; ``unique_id, ds, GRU, GRU-lo-80, GRU-hi-80`` out; ``cross_validation`` with ``cutoff``), takes pandas or
polars frames and gives back the same kind. ``grukit forecast`` (the command) is a thin layer over it that
adds a run folder, statsforecast baselines, a metrics table and plots.

Example:
    >>> import numpy as np, pandas as pd
    >>> from grukit.forecast import GRUForecaster
    >>> t = np.arange(80)
    >>> df = pd.DataFrame({"unique_id": "a", "ds": t, "y": 10 + np.sin(t / 3)})
    >>> cv = GRUForecaster(h=4, epochs=1, hidden=4).cross_validation(df, n_windows=2)
    >>> list(cv.columns)
    ['unique_id', 'ds', 'cutoff', 'y', 'GRU', 'GRU-lo-80', 'GRU-hi-80']

The recipe's internals (data spec, windows, network, run folder) live in :mod:`grukit.tasks.forecast`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; imported on first use (pandas, torch are heavy)
    from grukit.tasks.forecast.estimator import GRUForecaster, levels_to_quantiles
    from grukit.tasks.forecast.model import ForecastNet

__all__ = ["ForecastNet", "GRUForecaster", "levels_to_quantiles"]

_LAZY = {
    "GRUForecaster": "grukit.tasks.forecast.estimator",
    "levels_to_quantiles": "grukit.tasks.forecast.estimator",
    "ForecastNet": "grukit.tasks.forecast.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
