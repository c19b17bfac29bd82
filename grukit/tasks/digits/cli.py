"""``grukit digits train|evaluate|predict|stream`` — spoken-digit recognition on FSDD (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...train.options import AllowIncomplete, Checkpoint, DataDir
from ...train.recipe import JsonOut, RunOptions, json_result, recipe_app, train_command

NAME = "digits"
app = recipe_app(
    "Spoken digits (FSDD): train, evaluate, predict, and stream recognition in real time."
)

StreamFlag = Annotated[
    bool,
    typer.Option(
        "--stream",
        help="Use the shipped streaming (unidirectional) model instead of the offline one.",
    ),
]


@train_command(app, epochs=30)
def train(
    run: RunOptions,
    unidirectional: Annotated[
        bool,
        typer.Option(
            "--unidirectional",
            help="Train the streaming model: a unidirectional GRU (default: bidirectional, "
            "offline).",
        ),
    ] = False,
    normalization: Annotated[
        str,
        typer.Option(
            "--normalization",
            help="running (causal, with the training set's statistics as prior; needed for "
            "streaming) or utterance (whole-file mean/std).",
        ),
    ] = "running",
    hidden_size: Annotated[int, typer.Option("--hidden-size", min=1)] = 128,
    num_layers: Annotated[int, typer.Option("--num-layers", min=1)] = 2,
    dropout: Annotated[
        float, typer.Option("--dropout", min=0.0, max=0.9, help="Between GRU layers.")
    ] = 0.3,
    pooling: Annotated[
        str,
        typer.Option(
            "--pooling",
            help="last (final states) or mean (mean of the top layer's outputs over time).",
        ),
    ] = "mean",
    n_mels: Annotated[int, typer.Option("--n-mels", min=4)] = 40,
    deltas: Annotated[
        bool, typer.Option("--deltas/--no-deltas", help="Append causal deltas.")
    ] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 3e-3,
    mask_bands: Annotated[
        int, typer.Option("--mask-bands", min=0, help="SpecAugment: max masked mel bands.")
    ] = 8,
    mask_frames: Annotated[
        int, typer.Option("--mask-frames", min=0, help="SpecAugment: max masked frames.")
    ] = 10,
    stretch: Annotated[
        float,
        typer.Option(
            "--stretch",
            min=0.0,
            max=0.9,
            help="Augmentation: random tempo change up to ±this fraction.",
        ),
    ] = 0.2,
    shift: Annotated[
        int,
        typer.Option(
            "--shift", min=0, help="Augmentation: random mel-axis shift up to ±this many channels."
        ),
    ] = 2,
    patience: Annotated[
        int | None, typer.Option("--patience", min=1, help="Early stopping on val_acc.")
    ] = None,
    speaker: Annotated[
        str | None,
        typer.Option(
            "--speaker",
            help="Leave-one-speaker-out fold: test on this speaker, train on the others.",
        ),
    ] = None,
    subset: Annotated[
        int | None,
        typer.Option("--subset", min=2, help="Use only N recordings per split (smoke tests)."),
    ] = None,
) -> None:
    """Train a digit recognizer; writes a run folder (model.safetensors = best validation accuracy, metrics.json
    with validation and test accuracy)."""
    from .train import DigitsTrainConfig
    from .train import train as run_train

    cfg = DigitsTrainConfig(
        epochs=run.epochs,
        seed=run.seed,
        unidirectional=unidirectional,
        normalization=normalization,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        pooling=pooling,
        n_mels=n_mels,
        deltas=deltas,
        batch_size=batch_size,
        lr=lr,
        mask_bands=mask_bands,
        mask_frames=mask_frames,
        stretch=stretch,
        shift=shift,
        patience=patience,
        speaker=speaker,
        subset=subset,
    )
    rec = run_train(cfg, given=run.given(), **run.fit_kwargs())
    typer.echo(f"run: {rec['run']}")
    typer.echo(
        f"val accuracy {rec['model']['val_accuracy']:.4f}, test accuracy {rec['model']['accuracy']:.4f} "
        f"({rec['n_test']} files), best epoch {rec['best_epoch']}, {rec['wall_time_s']:.0f} s"
    )


@app.command()
def evaluate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    stream: StreamFlag = False,
    data_dir: DataDir = None,
    split: Annotated[str, typer.Option("--split", help="train, val, test or all.")] = "test",
    speaker: Annotated[
        str | None,
        typer.Option(
            "--speaker", help="Evaluate on a leave-one-speaker-out fold (its test = this speaker)."
        ),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Accuracy (overall, per speaker, per digit) and the confusion matrix on the official split."""
    from .evaluate import evaluate_records, split_records
    from .predict import load_model

    write_result = json_result(json_out)
    model = load_model(checkpoint, stream=stream)
    recs = split_records(data_dir, split, speaker)
    res = evaluate_records(model, recs)
    typer.echo(
        f"accuracy {res['accuracy']:.4f} on {res['n']} files ({split}{', speaker ' + speaker if speaker else ''})"
    )
    typer.echo("per speaker: " + ", ".join(f"{k} {v:.3f}" for k, v in res["per_speaker"].items()))
    typer.echo("per digit:   " + ", ".join(f"{k} {v:.3f}" for k, v in res["per_digit"].items()))
    typer.echo("confusion (rows = true digit, columns = predicted):")
    for d, row in enumerate(res["confusion"]):
        typer.echo(f"  {d}: " + " ".join(f"{v:3d}" for v in row))
    write_result(res)


@app.command()
def predict(
    files: Annotated[
        list[Path], typer.Argument(help="Audio files (any rate; mixed down to mono).")
    ],
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    stream: StreamFlag = False,
    sequence: Annotated[
        bool,
        typer.Option(
            "--sequence",
            help="Each file holds several digits separated by pauses: print the digit string.",
        ),
    ] = False,
    top_db: Annotated[
        float,
        typer.Option(
            "--top-db",
            min=1.0,
            help="--sequence: parts more than this many dB below the loudest are pauses.",
        ),
    ] = 50.0,
    min_gap: Annotated[
        float, typer.Option("--min-gap", min=0.0, help="--sequence: shortest pause (s).")
    ] = 0.12,
) -> None:
    """Print the spoken digit of each file (and its probability), or with --sequence the digit string.

    Every file that can be read gets its line on stdout; each file that cannot gets one ``error:`` line on
    stderr, and the command then exits with code 2."""
    from ...errors import UserInputError
    from . import data as D
    from .predict import classify_file, load_model, predict_sequence

    model = load_model(checkpoint, stream=stream)
    labels = model.config.labels
    failed = 0
    for f in files:
        try:
            if f.is_dir():
                raise UserInputError(f"{f} is a folder, not an audio file")
            if sequence:
                segs = predict_sequence(
                    model, D.load_audio(f, model.feature_spec), top_db=top_db, min_gap_s=min_gap
                )
                line = f"{f}\t{''.join(s.label for s in segs)}\t" + " ".join(
                    f"{s.label}@{s.start_s:.2f}-{s.end_s:.2f}s({s.prob:.2f})" for s in segs
                )
            else:
                p = classify_file(model, f)
                k = int(p.argmax())
                line = f"{f}\t{labels[k]}\t{p[k]:.4f}"
        except UserInputError as e:
            failed += 1
            msg = str(e)
            typer.echo(f"error: {msg if str(f) in msg else f'{f}: {msg}'}", err=True)
            continue
        typer.echo(line)
    if failed:
        if len(files) > 1:
            typer.echo(f"error: {failed} of {len(files)} files could not be read", err=True)
        raise typer.Exit(2)


@app.command("stream")
def stream_cmd(
    file: Annotated[Path, typer.Argument(help="Audio file played in as if it were arriving live.")],
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    chunk_ms: Annotated[
        float, typer.Option("--chunk-ms", help="Audio per chunk (milliseconds).")
    ] = 100.0,
    speed: Annotated[
        float, typer.Option("--speed", help="Playback speed (2 = twice real time).")
    ] = 1.0,
    no_sleep: Annotated[
        bool, typer.Option("--no-sleep", help="Do not wait: process as fast as possible.")
    ] = False,
) -> None:
    """Recognize a digit as the audio arrives: the unidirectional model runs frame by frame (GRU step API) and
    prints the running prediction after each chunk, then the final answer."""
    from ...errors import UserInputError
    from . import data as D
    from .predict import load_model
    from .stream import simulate

    if file.is_dir():
        raise UserInputError(f"{file} is a folder, not an audio file")
    model = load_model(checkpoint, stream=True)
    y = D.load_audio(file, model.feature_spec)
    for upd, final in simulate(
        model, y, chunk_s=chunk_ms / 1000.0, speed=speed, sleep=None if no_sleep else _sleep
    ):
        if final and upd is not None:
            typer.echo(
                f"final {upd.label} p={upd.prob:.3f} ({upd.time_s:.2f} s, {upd.frames} frames)"
            )
        elif upd is None:
            typer.echo("  ...   (waiting for the first frame)")
        else:
            typer.echo(f"{upd.time_s:6.2f} s  {upd.label}  p={upd.prob:.3f}")


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
