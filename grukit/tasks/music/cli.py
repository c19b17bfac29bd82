"""``grukit music train|evaluate|generate`` (heavy imports happen inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...train.options import (
    AllowIncomplete,
    Checkpoint,
    DataDir,
    Devices,
    Epochs,
    NumNodes,
    OutputDir,
    Overwrite,
    Resume,
    Seed,
    Strategy,
    Threads,
    given_options,
)

NAME = "music"
app = typer.Typer(
    help="Polyphonic music: piano-roll GRU models (JSB, Nottingham, MuseData, Piano-midi) and MIDI "
    "generation.",
    no_args_is_help=True,
    add_completion=False,
)

Dataset = Annotated[str, typer.Option("--dataset", help="jsb, nottingham, musedata or piano.")]


@app.command()
def train(
    ctx: typer.Context,
    dataset: Dataset = "jsb",
    data_dir: DataDir = None,
    output_dir: OutputDir = None,
    epochs: Epochs = 100,
    seed: Seed = 0,
    devices: Devices = "auto",
    num_nodes: NumNodes = 1,
    strategy: Strategy = "auto",
    resume: Resume = None,
    overwrite: Overwrite = False,
    hidden: Annotated[
        int | None,
        typer.Option("--hidden", min=1, help="GRU hidden size (default per dataset)."),
    ] = None,
    layers: Annotated[int | None, typer.Option("--layers", min=1, help="GRU layers.")] = None,
    dropout: Annotated[
        float | None,
        typer.Option("--dropout", min=0.0, max=0.99, help="Output/between-layer dropout."),
    ] = None,
    input_dropout: Annotated[
        float | None,
        typer.Option("--input-dropout", min=0.0, max=0.99, help="Dropout on input frames."),
    ] = None,
    zoneout: Annotated[
        float | None, typer.Option("--zoneout", min=0.0, max=0.99, help="GRU zoneout.")
    ] = None,
    frame_ar: Annotated[
        bool | None,
        typer.Option(
            "--frame-ar/--independent",
            help="Output head: autoregressive within the frame (default) or independent keys as in Chung et al. 2014.",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Sequences per batch.")
    ] = None,
    chunk: Annotated[
        int | None,
        typer.Option(
            "--chunk", min=0, help="Truncated-BPTT window in frames (0 = full sequences)."
        ),
    ] = None,
    patience: Annotated[
        int | None, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")
    ] = None,
    lr_patience: Annotated[
        int | None,
        typer.Option(
            "--lr-patience",
            min=1,
            help="Halve the learning rate after this many epochs without a better valid NLL.",
        ),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            "--max-minutes",
            min=0.1,
            help="Stop training after this many minutes (the best model so far is kept and evaluated).",
        ),
    ] = None,
    max_train_sequences: Annotated[
        int | None,
        typer.Option(
            "--max-train-sequences",
            min=1,
            help="Use only the first N training sequences (smoke runs).",
        ),
    ] = None,
    threads: Threads = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")
    ] = True,
) -> None:
    """Train a MusicGRU; prints the test NLL per step next to Chung et al. 2014.

    With --resume RUN the run continues with the options in RUN/config.json: --epochs is the new total,
    an option that differs from the stored run is refused.
    """
    from ..._console import stdout_console
    from .evaluate import results_table
    from .train import CLI_FIELDS, recipe
    from .train import train as run_train

    cfg = recipe(
        dataset,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout,
        input_dropout=input_dropout,
        zoneout=zoneout,
        frame_ar=frame_ar,
        lr=lr,
        batch_size=batch_size,
        patience=patience,
        epochs=epochs,
        seed=seed,
        max_train_sequences=max_train_sequences,
        lr_patience=lr_patience,
        max_minutes=max_minutes,
    )
    if chunk is not None:
        cfg.chunk = chunk or None
    rec = run_train(
        cfg,
        data_dir=data_dir,
        output_dir=output_dir,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        resume=resume,
        progress=progress,
        threads=threads,
        overwrite=overwrite,
        given=given_options(ctx, CLI_FIELDS),
    )
    console = stdout_console()
    console.print(results_table(rec["dataset"], "test", rec["model"]["nll_per_step"]))
    console.print(
        f"valid NLL/step {rec['model']['valid_nll_per_step']:.3f}; best epoch {rec['best_epoch']}; "
        f"run folder: {rec['run']}"
    )


@app.command()
def evaluate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="jsb, nottingham, musedata or piano (default: the model's own).",
            show_default=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train, valid or test.")] = "test",
    data_dir: DataDir = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the result to this JSON file.", show_default=False),
    ] = None,
) -> None:
    """NLL per time step of a model on a split (default: test), next to the paper's GRU and LSTM."""
    from ..._console import stdout_console
    from ...errors import UserInputError
    from ...train.run import write_json
    from .data import SPLITS, check_dataset, load_dataset
    from .evaluate import evaluate_nll, load_music_model, results_table

    if split not in SPLITS:
        raise UserInputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if json_out is not None:
        from ..._io import check_output_file

        check_output_file(json_out, "--json", parents=True)
    if checkpoint is None:
        ds = check_dataset(dataset or "jsb")
        model, header = load_music_model(None, ds)
    else:
        model, header = load_music_model(checkpoint)
        ds = check_dataset(dataset or (header.get("extra") or {}).get("dataset") or "jsb")
    data = load_dataset(ds, data_dir)
    res = evaluate_nll(model, data[split])
    console = stdout_console()
    console.print(
        f"{ds} {split}: NLL per time step ({res['frames']} predicted frames; model {header['path']})"
    )
    console.print(results_table(ds, split, res["nll_per_step"], title=""))
    if json_out is not None:
        write_json(json_out, {"dataset": ds, "split": split, "model_file": header["path"], **res})


@app.command()
def generate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    dataset: Annotated[
        str, typer.Option("--dataset", help="Shipped model to use when no --checkpoint is given.")
    ] = "jsb",
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=100000, help="Frames to generate.")
    ] = 128,
    out: Annotated[
        Path,
        typer.Option("--out", help="MIDI file to write (a piano-roll PNG is written beside it)."),
    ] = Path("song.mid"),
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature", min=0.01, max=10.0, help="Sampling temperature (logits / T)."
        ),
    ] = 1.0,
    prime: Annotated[
        Path | None,
        typer.Option(
            "--prime", help="A MIDI file whose opening conditions the model.", show_default=False
        ),
    ] = None,
    prime_frames: Annotated[
        int, typer.Option("--prime-frames", min=1, help="How many frames of --prime to use.")
    ] = 32,
    fs: Annotated[
        float, typer.Option("--fs", min=0.1, max=100.0, help="Frames per second in the MIDI file.")
    ] = 4.0,
    seed: Seed = 0,
) -> None:
    """Sample a piece from a model and write it as MIDI (+ piano-roll PNG)."""
    from ..._progress import bar
    from .evaluate import load_music_model
    from .generate import generate_to_files

    model, header = load_music_model(checkpoint, dataset)
    with bar(steps, "generating frames") as advance:
        res = generate_to_files(
            model,
            steps=steps,
            out=out,
            temperature=temperature,
            prime=prime,
            prime_frames=prime_frames,
            fs=fs,
            seed=seed,
            progress=advance,
        )
    typer.echo(
        f"wrote {res['midi']} ({res['notes']} notes, {res['frames']} frames) and {res['png']}"
    )
