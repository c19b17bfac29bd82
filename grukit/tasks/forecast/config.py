"""Forecast run options: the :class:`ForecastOptions` dataclass (config.json) and its checks.

Light (no torch, no pandas) so that the CLI can check options and ``--resume`` before the heavy imports.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import UserInputError
from . import calibrate as Q
from . import evaluate as E

#: options that define the data and the model; a resumed run keeps them (see resumed_config)
RESUME_KEEP = ("epochs", "devices", "num_nodes", "strategy", "accelerator", "limit_train_batches")


class SkippedSeriesWarning(UserWarning):
    """Some series were too short to train on and were left out of the backtest."""


@dataclasses.dataclass
class ForecastOptions:
    """Every option of a forecasting run (written to config.json)."""

    dataset: str = "csv"
    #: the data file of a `grukit forecast --data FILE` run (absolute), so `--resume RUN` alone finds it
    data_path: str | None = None
    time_col: str = "date"
    target: str = "value"
    covariates: list[str] = dataclasses.field(default_factory=list)
    future_covariates: list[str] = dataclasses.field(default_factory=list)
    static_covariates: list[str] = dataclasses.field(default_factory=list)
    id_col: str | None = None
    freq: str | None = None
    season_length: int | None = None
    date_format: str | None = None
    horizon: int = 7
    context: int | None = None
    backtest: int = 5
    stride: int | None = None
    log: bool | None = None
    calendar: bool = True
    scaling: str = "window"
    seasonal: str = "snaive"
    relative: bool = False
    strict: bool = False
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int | None = None
    epoch_windows: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int | None = 8
    seed: int = 0
    baselines: list[str] = dataclasses.field(default_factory=lambda: list(E.BASELINES))
    baseline_history: int = 500
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "cpu"
    limit_train_batches: int | float | None = None
    #: quantile levels (calibrate.parse_quantiles), members of the ensemble, conformal calibration
    quantiles: list[float] = dataclasses.field(default_factory=lambda: list(Q.DEFAULT_QUANTILES))
    ensemble: int = 1
    conformal: bool = True
    #: per-series selection of the default forecast on validation windows (:mod:`.selection`)
    select: bool = True


def build_options(
    target: str,
    time_col: str,
    *,
    covariates: list[str] | None = None,
    id_col: str | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    horizon: int = 7,
    context: int | None = None,
    backtest: int = 5,
    stride: int | None = None,
    log: bool | None = None,
    dataset: str = "csv",
    **options: Any,
) -> ForecastOptions:
    """:class:`ForecastOptions` from :func:`fit`'s arguments, checked (UserInputError names a bad one)."""
    known = {f.name for f in dataclasses.fields(ForecastOptions)}
    bad = sorted(set(options) - known)
    if bad:
        raise TypeError(f"unknown forecast options {bad}; expected some of {sorted(known)}")
    for name, v in (("--horizon", horizon), ("--backtest", backtest)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserInputError(f"{name} must be a positive integer, got {v!r}")
    if context is not None and int(context) < 2:
        raise UserInputError(f"--context must be at least 2, got {context}")
    if stride is not None and int(stride) < 1:
        raise UserInputError(f"stride must be at least 1, got {stride}")
    for name in ("future_covariates", "static_covariates"):  # a list of columns, or "a,b"
        if isinstance(options.get(name), str):
            options[name] = [c.strip() for c in options[name].split(",") if c.strip()]
        elif name in options:
            options[name] = list(options[name] or [])
    if "baselines" in options:
        options["baselines"] = E.parse_baselines(options["baselines"])
    if "quantiles" in options:
        options["quantiles"] = list(Q.parse_quantiles(options["quantiles"]))
    if "ensemble" in options:
        k = options["ensemble"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise UserInputError(f"--ensemble must be a positive integer, got {k!r}")
    return ForecastOptions(
        dataset=dataset,
        time_col=time_col,
        target=target,
        covariates=list(covariates or []),
        id_col=id_col,
        freq=freq,
        season_length=season_length,
        horizon=horizon,
        context=context,
        backtest=backtest,
        stride=stride,
        log=log,
        **options,
    )
