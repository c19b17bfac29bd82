"""``grukit forecast`` — the main job — and ``grukit forecast predict``. Light: heavy imports inside commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import UserInputError
from ...train.options import AllowIncomplete, OutputDir, Overwrite
from ...train.recipe import RunOptions, check_choice, recipe_app, train_command
from .config import ForecastOptions

NAME = "forecast"
#: every option's default lives in ForecastOptions (config.py, light); the built-in datasets' presets in
#: data.BUILTIN
_O = ForecastOptions()

app = recipe_app(
    "Forecast time series with a GRU: fit one model over all series, backtest it against statsforecast "
    "baselines, forecast.",
    main_command=True,
)


def _print_warnings():
    """Show warnings (gap filling, a left-out baseline) as one 'warning: ...' line each on stderr."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def _split(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


_FREEZE_REGISTERED = False


def _freeze_gc_at_exit() -> None:
    """At interpreter exit, move every object still tracked into the garbage collector's permanent
    generation (``gc.freeze``) before the final collection: that collection would walk the millions of
    objects of a big panel's run only to find them alive (~2 s at 100k series); the OS takes the
    memory back. Registered once per process; atexit handlers registered before it still run after it."""
    global _FREEZE_REGISTERED
    if not _FREEZE_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _FREEZE_REGISTERED = True


def _given(run: RunOptions) -> set[str]:
    """The ForecastOptions fields the user set on the command line (``dataset`` always counts: the data;
    a resumed run without --data/--dataset takes its own). With ``--resume``, stored options win unless
    given (``--epochs`` included)."""
    return {"dataset", *run.given({"csv": "data_path"})}


@train_command(app, epochs=_O.epochs, name=None, devices="1", without=("data_dir", "threads"))
def forecast(
    run: RunOptions,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="Built-in data: weather (Seattle temp_max, 7 days "
            "ahead) or stocks (monthly prices, 6 months ahead). Ignored with --data.",
        ),
    ] = "weather",
    csv: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "--csv",
            help="Your own table, .csv or .parquet (one row per time step, optionally per series); "
            "--csv is the same option.",
            show_default=False,
        ),
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            "--time-col",
            help="Time column: dates, or integer steps (no calendar; season length 1 unless given). "
            "Default: 'date' if present, else the first column.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Column to forecast (default with --csv: the "
            "only other column of a two-column file).",
            show_default=False,
        ),
    ] = None,
    covariates: Annotated[
        str | None,
        typer.Option(
            "--covariates",
            help="Comma-separated past-only covariate columns (numeric or categorical).",
            show_default=False,
        ),
    ] = None,
    future_covariates: Annotated[
        str | None,
        typer.Option(
            "--future-covariates",
            help="Comma-separated columns known for the forecast steps too (promotions, holidays, "
            "prices; numeric or categorical): rows after a series' last target value, target empty, "
            "give their future values.",
            show_default=False,
        ),
    ] = None,
    static_covariates: Annotated[
        str | None,
        typer.Option(
            "--static-covariates",
            help="Comma-separated per-series constant columns (e.g. a category; numeric or "
            "categorical).",
            show_default=False,
        ),
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(
            "--id-col",
            help="Series id column: one global model over all series.",
            show_default=False,
        ),
    ] = None,
    freq: Annotated[
        str | None,
        typer.Option(
            "--freq",
            help="pandas frequency (D, h, W, MS, ...); inferred when omitted.",
            show_default=False,
        ),
    ] = None,
    season_length: Annotated[
        int | None,
        typer.Option(
            "--season-length",
            min=1,
            help="Season m for seasonal inputs, baselines and MASE (default from the frequency; 1 for steps).",
            show_default=False,
        ),
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(
            "--date-format",
            help="strftime format of the time column, e.g. '%y-%m' for shampoo.csv's '1-01'.",
            show_default=False,
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            min=1,
            help="Steps to forecast (weather 7, stocks 6, CSV 7).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        int | None,
        typer.Option(
            "--context",
            min=2,
            help="Context window length (shorter series are left-padded and masked).",
            show_default=False,
        ),
    ] = None,
    backtest: Annotated[
        int | None,
        typer.Option(
            "--backtest",
            min=1,
            help="Backtest origins per series, ending at each series' own end (1: the competition "
            "protocol, the last --horizon points). Default with --csv: 5, fewer if the longest series "
            "would keep under half its points for training.",
            show_default=False,
        ),
    ] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--no-log",
            help="Model the log of the target (default: on when every value is positive).",
            show_default=False,
        ),
    ] = None,
    calendar: Annotated[
        bool | None,
        typer.Option(
            "--calendar/--no-calendar",
            help="Calendar features "
            "(day of week/year, month, hour) as known-future inputs (default: on, off for stocks).",
            show_default=False,
        ),
    ] = None,
    scaling: Annotated[
        str | None,
        typer.Option(
            "--scaling",
            help="window: each window relative to its context's level (default); series: per-series "
            "mean/std (the weather preset).",
            show_default=False,
        ),
    ] = None,
    seasonal: Annotated[
        str | None,
        typer.Option(
            "--seasonal",
            help="snaive: lag-m inputs and a learned correction to seasonal naive (default); lag: lag-m "
            "inputs only; none.",
            show_default=False,
        ),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="statsforecast baselines: comma-separated naive, snaive, ets, theta, arima (slow), or none.",
        ),
    ] = ",".join(_O.baselines),
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Refuse series too short to train on instead of skipping them."
        ),
    ] = False,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="GRU hidden size.")] = _O.hidden,
    layers: Annotated[int, typer.Option("--layers", min=1, help="GRU layers.")] = _O.layers,
    dropout: Annotated[
        float, typer.Option("--dropout", min=0.0, max=0.95, help="Dropout.")
    ] = _O.dropout,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="Windows per batch (default 64; 256 with over 16,384 training windows).",
            show_default=False,
        ),
    ] = None,
    epoch_windows: Annotated[
        int | None,
        typer.Option(
            "--epoch-windows",
            min=1,
            help="Windows drawn per epoch (default: all training windows, at most 16,384).",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Learning rate (AdamW).")] = _O.lr,
    patience: Annotated[
        int | None, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")
    ] = _O.patience,
    quantiles: Annotated[
        str | None,
        typer.Option(
            "--quantiles",
            help="Quantile levels to forecast: increasing, with 0.5 and symmetric pairs (q, 1-q), each "
            "pair an interval (default 0.1,0.5,0.9: the 80% band).",
            show_default=False,
        ),
    ] = None,
    ensemble: Annotated[
        int,
        typer.Option(
            "--ensemble",
            min=1,
            help="Train this many models (seeds seed, seed+1, ...) and forecast the median of their "
            "quantiles.",
        ),
    ] = _O.ensemble,
    conformal: Annotated[
        bool | None,
        typer.Option(
            "--conformal/--no-conformal",
            help="Calibrate the intervals on the validation windows (split conformal, per horizon "
            "step; default: on).",
            show_default=False,
        ),
    ] = None,
    select: Annotated[
        bool | None,
        typer.Option(
            "--select/--no-select",
            help="Per series, forecast with whichever of the GRU, naive, seasonal naive, AutoETS, "
            "AutoTheta or the GRU/ETS/Theta mean did best on the validation window before the scored "
            "origin (default: on; the run report names each series' source).",
            show_default=False,
        ),
    ] = None,
    accelerator: Annotated[
        str,
        typer.Option(
            "--accelerator",
            help="Lightning accelerator: cpu (default), gpu, cuda, mps or auto.",
        ),
    ] = _O.accelerator,
    threads: Annotated[
        int,
        typer.Option(
            "--threads", min=1, help="CPU threads for torch (small GRUs run best on one)."
        ),
    ] = 1,
) -> None:
    """Fit a GRU forecaster, backtest it against baselines, forecast the future; write a run folder."""
    import time

    from ...train.run import check_output_dir

    _print_warnings()
    _freeze_gc_at_exit()
    t0 = time.perf_counter()
    resume = run.resume
    check_output_dir(run.output_dir, resume=resume, overwrite=run.overwrite)
    if csv is not None and Path(csv).expanduser().is_dir():
        from .sharded import is_sharded

        if is_sharded(csv):  # a partitioned parquet panel: DDP, each rank reading only its shard
            _sharded(**locals())
            return
    if (
        resume is not None
    ):  # a resumed run's data and columns come from its config.json unless given
        stored = _stored_config(resume)
        time_col = time_col or stored.get("time_col")
        target = target or stored.get("target")
        if csv is None and "dataset" not in run.typed:
            if stored.get("data_path"):
                csv = Path(stored["data_path"])
                id_col = id_col if id_col is not None else stored.get("id_col")
            else:  # a built-in dataset's run
                from .data import BUILTIN

                dataset = str(stored["dataset"]) if stored.get("dataset") in BUILTIN else dataset
        from ...train.run import resolve_input

        recorded = ((stored.get("inputs") or {}).get("--csv") or {}).get("path")
        if csv is not None and (
            recorded is None or Path(csv).expanduser().resolve() == Path(recorded)
        ):
            # refuses data changed since the run started (its fingerprint in config.json) before
            # reading it; another file is refused by resumed_config (--dataset, --data differ)
            csv = resolve_input(resume, "--csv", csv)
    df, name, preset, time_col, target = _table(
        dataset, csv, time_col, target, id_col, horizon, context, backtest
    )
    given_values: dict[str, Any] = dict(
        target=target,
        time_col=time_col,
        covariates=None if covariates is None else _split(covariates),
        id_col=id_col,
        horizon=horizon,
        context=context,
        backtest=backtest,
        log=log,
        calendar=calendar,
        scaling=scaling,
        seasonal=seasonal,
        quantiles=quantiles,
        conformal=conformal,
        select=select,
        freq=freq,
        season_length=season_length,
        date_format=date_format,
        batch_size=batch_size,
        epoch_windows=epoch_windows,
        future_covariates=_split(future_covariates) or None,
        static_covariates=_split(static_covariates) or None,
    )
    always = dict(
        dataset=name,
        data_path=None if csv is None else str(Path(csv).expanduser().resolve()), strict=strict, hidden=hidden, layers=layers, dropout=dropout, epochs=run.epochs,
        lr=lr, patience=patience, seed=run.seed, baselines=baselines, ensemble=ensemble, devices=run.devices,
        num_nodes=run.num_nodes, strategy=run.strategy, accelerator=accelerator,
    )  # fmt: skip
    opts, prep = _checked(
        _given(run), df, preset, given_values, always, resume, auto_backtest=csv is not None
    )
    import torch

    from ..._console import stdout_console
    from .report import run_forecast

    torch.set_num_threads(threads)
    del df  # the series hold what the run needs: the table's memory goes back before training
    res = run_forecast(
        None,
        opts,
        prepared=prep,
        output_dir=run.output_dir,
        resume=resume,
        overwrite=run.overwrite,
        progress=sys.stderr.isatty(),
        inputs={"--csv": csv},
    )
    if res is None:  # a DDP rank other than 0
        return
    console = stdout_console()
    console.print(res.table())
    members = len(res.model.members) - 1
    console.print(
        res.run.summary()
        + (f" (and {members} member folder(s))" if members else "")
        + f"  in {time.perf_counter() - t0:.0f}s",
        markup=False,
        highlight=False,
    )


def _sharded(run: RunOptions, **opts: Any) -> None:
    """``grukit forecast --data FOLDER`` of a sharded panel (:func:`~.sharded.run_from_cli`)."""
    from ..._console import stdout_console
    from .sharded import run_from_cli

    shared = ("epochs", "seed", "devices", "num_nodes", "strategy", "output_dir", "overwrite")
    opts = {**opts, **{k: getattr(run, k) for k in shared}, "resume": run.resume}

    unsupported = {
        "--covariates": opts["covariates"],
        "--future-covariates": opts["future_covariates"],
        "--static-covariates": opts["static_covariates"],
        "--resume": opts["resume"],
        "--ensemble": opts["ensemble"] > 1,
    }
    keys = ("id_col", "time_col", "target", "horizon", "context", "log", "scaling", "epochs")
    more = ("batch_size", "epoch_windows", "hidden", "seed", "devices", "num_nodes", "strategy")
    res = run_from_cli(
        Path(opts["csv"]).expanduser(),
        **{k: opts[k] for k in (*keys, *more, "accelerator", "output_dir", "overwrite", "threads")},
        unsupported=unsupported,
    )
    if res is not None:
        stdout_console().print(
            f"sharded panel {opts['csv']}: trained over its shards; {res.run.summary()}",
            markup=False,
            highlight=False,
        )


def _table(dataset, csv, time_col, target, id_col, horizon, context, backtest):
    """The table (read once: a file's, or a built-in dataset's), its name, the dataset's preset options
    and the time and target columns (defaults: 'date' or the first column; the only other column)."""
    from . import data as D

    if csv is not None:
        df = D.read_table(csv, id_col=id_col)
        if time_col is not None and time_col not in df.columns:
            raise UserInputError(
                f"--time-col {time_col!r} is not a column of {csv}; it has columns {list(df.columns)}"
            )
        time_col = time_col or ("date" if "date" in df.columns else str(df.columns[0]))
        if target is None:
            others = [c for c in df.columns if c not in (time_col, id_col)]
            if len(others) != 1:
                raise UserInputError(
                    f"--target is needed: {csv} has {len(others)} columns besides the time column "
                    f"{time_col!r}: {others}"
                )
            target = str(others[0])
        return df, csv.stem, {}, time_col, target
    check_choice(dataset, sorted(D.BUILTIN), "--dataset")
    from .report import builtin_options

    preset = builtin_options(dataset)
    if horizon is not None or context is not None:
        preset.pop("context")  # the preset's context goes with its horizon
    if backtest is not None or horizon is not None:
        preset.pop("stride")
    return D.load_builtin(dataset), dataset, preset, time_col, target


def _checked(given, df, preset, given_values, always, resume, auto_backtest):
    """The run's options — ForecastOptions' defaults < the dataset's preset < what the command line gave
    (a resumed run: its config.json) — and the table checked once under them (columns, numbers, dates,
    grid, sizes, memory, future covariates), all before Lightning is imported."""
    import dataclasses

    from . import data as D
    from .config import build_options
    from .estimator import GRUForecaster

    args = {**preset, **{k: v for k, v in given_values.items() if v is not None}, **always}
    opts = build_options(args.pop("target"), args.pop("time_col"), **args)
    if resume is not None:
        from ...train import resumed_config

        opts = resumed_config(
            resume, opts, keep=("epochs",), given=given, flags={"data_path": "--data"}
        )
    prep = GRUForecaster.prepared(df, D.spec_from_options(df, opts))
    if auto_backtest and given_values["backtest"] is None and resume is None:
        # default: 5 origins, fewer when the longest series would keep under half its points to train on
        longest = int(D.lengths_of(prep.series).max())
        S = opts.stride or opts.horizon
        n = min(opts.backtest, max(1, (longest // 2 - opts.horizon) // S + 1))
        opts = dataclasses.replace(opts, backtest=n)
    GRUForecaster.from_options(opts).check(prep, opts, future=True)
    return opts, prep


def _stored_config(resume: Path) -> dict:
    import json

    from ...train import resolve_resume

    path = resolve_resume(resume)[0] / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="A forecast run folder or its model.safetensors.")
    ],
    csv: Annotated[
        Path,
        typer.Option(
            "--data",
            "--csv",
            help="New data with the training columns; the forecast starts after its last time "
            "step (with future covariates: after each series' last target value; the rows after it, "
            "target empty, give their values for the horizon).",
        ),
    ],
    output_dir: OutputDir = None,
    overwrite: Overwrite = False,
    allow_incomplete: AllowIncomplete = False,
) -> None:
    """Forecast the next horizon after the end of NEW.csv with a trained run's model."""
    from rich.table import Table

    from ..._console import stdout_console
    from ...train import RunDir
    from ...train.run import check_output_dir
    from . import data as D

    _print_warnings()
    check_output_dir(output_dir, overwrite=overwrite)
    from ...serialization import read_header
    from ...train.run import check_run_complete, resolve_checkpoint

    model_file = resolve_checkpoint(checkpoint)
    check_run_complete(model_file, allow_incomplete)  # an interrupted/killed/diverged run: refused
    # the table is read (ids as written) and checked before the model (and Lightning) is loaded
    header = read_header(model_file)
    df = D.read_table(csv, id_col=((header.get("extra") or {}).get("spec") or {}).get("id_col"))
    from .estimator import GRUForecaster
    from .report import _write_csv, check_finite, forecast_table, plot_forecast

    est = GRUForecaster.load(checkpoint)
    model, spec = est.model_, est.spec_
    assert spec is not None
    prep = est.prepared(df, spec)
    fc = forecast_table(est.predict_prepared(prep), spec, est.alias, model.quantiles)
    check_finite(fc.drop(columns=["series", "time", "step"]).to_numpy(), "forecast")
    run = RunDir.create("forecast-predict", output_dir=output_dir, overwrite=overwrite)
    with run.guard():
        _write_csv(fc, run.file("forecast.csv"))
        import pandas as pd

        plot_forecast(
            prep.series, pd.DataFrame(columns=["series"]), fc, spec, run.file("forecast.png")
        )
    qcols = [c for c in fc.columns if c not in ("series", "time", "step")]
    k = len(model.members)
    table = Table(
        title=f"forecast of {spec.target} ({model.config.horizon} steps"
        + (f", median of {k} models" if k > 1 else "")
        + (", calibrated" if model.offsets is not None else "")
        + ")"
    )
    for c in ("series", "time", *qcols):
        table.add_column(c, justify="right" if c in qcols else "left")
    for _, r in fc.iterrows():
        table.add_row(
            str(r["series"]),
            str(r["time"].date() if hasattr(r["time"], "date") else r["time"]),
            *(f"{r[c]:.4g}" for c in qcols),
        )
    console = stdout_console()
    console.print(table)
    console.print(f"written: [bold]{run.file('forecast.csv')}[/], {run.file('forecast.png')}")
