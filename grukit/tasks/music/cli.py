"""``grukit music train|evaluate|generate`` (heavy imports happen inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...train.options import AllowIncomplete, Checkpoint, DataDir, Seed
from ...train.recipe import (
    JsonOut,
    Progress,
    RunOptions,
    check_choice,
    json_result,
    recipe_app,
    run_summary,
    train_command,
)

NAME = "music"
app = recipe_app(
    "Polyphonic music: piano-roll GRU models (JSB, Nottingham, MuseData, Piano-midi) and MIDI "
    "generation."
)

Dataset = Annotated[str, typer.Option("--dataset", help="jsb, nottingham, musedata or piano.")]


@train_command(app, epochs=100)
def train(
    run: RunOptions,
    dataset: Dataset = "jsb",
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
    progress: Progress = True,
) -> None:
    """Train a MusicGRU; prints the test NLL per step next to Chung et al. 2014."""
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
        epochs=run.epochs,
        seed=run.seed,
        max_train_sequences=max_train_sequences,
        lr_patience=lr_patience,
        max_minutes=max_minutes,
    )
    if chunk is not None:
        cfg.chunk = chunk or None
    rec = run_train(cfg, progress=progress, given=run.given(CLI_FIELDS), **run.fit_kwargs())
    console = stdout_console()
    console.print(results_table(rec["dataset"], "test", rec["model"]["nll_per_step"]))
    console.print(f"valid NLL/step {rec['model']['valid_nll_per_step']:.3f}; {run_summary(rec)}")


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
    json_out: JsonOut = None,
) -> None:
    """NLL per time step of a model on a split (default: test), next to the paper's GRU and LSTM."""
    from ..._console import stdout_console
    from .data import SPLITS, check_dataset, load_dataset
    from .evaluate import evaluate_nll, load_music_model, results_table

    check_choice(split, SPLITS, "--split")
    write_result = json_result(json_out)
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
    write_result({"dataset": ds, "split": split, "model_file": header["path"], **res})


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
