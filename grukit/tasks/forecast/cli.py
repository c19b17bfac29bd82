"""``grukit forecast`` — the main job — and ``grukit forecast predict``. Light: heavy imports inside commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import UserInputError
from ...train.options import Devices, Epochs, NumNodes, OutputDir, Resume, Seed, Strategy

NAME = "forecast"

app = typer.Typer(
    help="Forecast time series with a GRU: fit, backtest against naive/seasonal-naive/ETS/ARIMA, forecast.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_warnings():
    """Show warnings (gap filling, a left-out baseline) as one 'warning: ...' line each on stderr."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def _split(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


@app.callback(invoke_without_command=True)
def forecast(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="Built-in data: weather (Seattle temp_max, 7 days "
            "ahead) or stocks (monthly prices, 6 months ahead). Ignored with --csv.",
        ),
    ] = "weather",
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Your own CSV (one row per time step, optionally per series).",
            show_default=False,
        ),
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            "--time-col",
            help="Time column (default: 'date' if present, else the first column).",
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
    id_col: Annotated[
        str | None,
        typer.Option("--id-col", help="Series id column (several series).", show_default=False),
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
            help="Season m for seasonal-naive/ETS/MASE (default from the frequency).",
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
        typer.Option("--context", min=2, help="Context window length.", show_default=False),
    ] = None,
    backtest: Annotated[
        int | None,
        typer.Option("--backtest", min=1, help="Backtest origins per series.", show_default=False),
    ] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--no-log",
            help="Model the log of the target (default: on for stocks).",
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
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="GRU hidden size.")] = 64,
    layers: Annotated[int, typer.Option("--layers", min=1, help="GRU layers.")] = 1,
    epochs: Epochs = 40,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Learning rate (AdamW).")] = 3e-3,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")
    ] = 8,
    seed: Seed = 0,
    output_dir: OutputDir = None,
    devices: Devices = "1",
    num_nodes: NumNodes = 1,
    strategy: Strategy = "auto",
    resume: Resume = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads", min=1, help="CPU threads for torch (small GRUs run best on one)."
        ),
    ] = 1,
) -> None:
    """Fit a GRU forecaster, backtest it against baselines, forecast the future; write a run folder."""
    if ctx.invoked_subcommand is not None:
        return
    import time

    import torch
    from rich.console import Console

    from . import data as D
    from .train import fit

    _print_warnings()
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    if csv is not None:
        df = D.read_csv(csv)
        name = csv.stem
        tc = time_col or ("date" if "date" in df.columns else str(df.columns[0]))
        tg = target
        if tg is None:
            others = [c for c in df.columns if c not in (tc, id_col)]
            if len(others) != 1:
                raise UserInputError(f"--target is needed: the CSV has columns {list(df.columns)}")
            tg = str(others[0])
        args: dict[str, Any] = dict(
            target=tg,
            time_col=tc,
            covariates=_split(covariates),
            id_col=id_col,
            horizon=horizon or 7,
            backtest=backtest or 5,
            log=bool(log),
            calendar=True if calendar is None else calendar,
        )
    else:
        if dataset not in D.BUILTIN:
            raise UserInputError(f"--dataset expects one of {sorted(D.BUILTIN)}, got {dataset!r}")
        b = D.BUILTIN[dataset]
        df = D.load_builtin(dataset)
        name = dataset
        args = dict(
            target=target or b["target"],
            time_col=time_col or b["time_col"],
            covariates=_split(covariates) if covariates is not None else list(b["covariates"]),
            id_col=id_col if id_col is not None else b["id_col"],
            horizon=horizon or b["horizon"],
            backtest=backtest or b["backtest"],
            log=b["log"] if log is None else log,
            calendar=b.get("calendar", True) if calendar is None else calendar,
        )
        if horizon is None and context is None:
            args["context"] = b["context"]
        if backtest is None and horizon is None and b.get("stride"):
            args["stride"] = b["stride"]
    args.setdefault("context", context)
    res = fit(
        df,
        freq=freq,
        season_length=season_length,
        dataset=name,
        output_dir=output_dir,
        resume=resume,
        progress=sys.stderr.isatty(),
        hidden=hidden,
        layers=layers,
        epochs=epochs,
        lr=lr,
        patience=patience,
        seed=seed,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        **args,
    )
    if res is None:  # a DDP rank other than 0
        return
    console = Console()
    console.print(res.table())
    console.print(
        f"run folder: [bold]{res.run.path}[/]  (model.safetensors, metrics.json, backtest.csv, "
        f"forecast.csv, forecast.png, log.csv)  in {time.perf_counter() - t0:.0f}s"
    )


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="A forecast run folder or its model.safetensors.")
    ],
    csv: Annotated[
        Path,
        typer.Option(
            "--csv",
            help="New data with the training columns; the forecast starts "
            "after its last time step.",
        ),
    ],
    output_dir: OutputDir = None,
) -> None:
    """Forecast the next horizon after the end of NEW.csv with a trained run's model."""
    from rich.console import Console
    from rich.table import Table

    from ...train import RunDir
    from . import data as D
    from .train import load_forecaster, plot_forecast
    from .train import predict as run_predict

    _print_warnings()
    model, spec = load_forecaster(checkpoint)
    df = D.read_csv(csv)
    fc = run_predict(checkpoint, df)
    run = RunDir.create("forecast-predict", output_dir=output_dir)
    with run.guard():
        tmp = run.file(".tmp-forecast.csv")
        fc.to_csv(tmp, index=False, float_format="%.6g")
        tmp.replace(run.file("forecast.csv"))
        import pandas as pd

        plot_forecast(
            D.to_series(df, spec),
            pd.DataFrame(columns=["series"]),
            fc,
            spec,
            run.file("forecast.png"),
        )
    table = Table(title=f"forecast of {spec.target} ({model.config.horizon} steps, 80% band)")
    for c in ("series", "time", "q10", "q50", "q90"):
        table.add_column(c, justify="right" if c.startswith("q") else "left")
    for _, r in fc.iterrows():
        table.add_row(
            str(r["series"]),
            str(r["time"].date() if hasattr(r["time"], "date") else r["time"]),
            f"{r['q10']:.4g}",
            f"{r['q50']:.4g}",
            f"{r['q90']:.4g}",
        )
    Console().print(table)
    Console().print(f"written: [bold]{run.file('forecast.csv')}[/], {run.file('forecast.png')}")
