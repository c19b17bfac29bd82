"""``grukit text train|generate|perplexity`` (heavy imports happen inside the commands)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...train.options import AllowIncomplete, Checkpoint, DataDir, Seed
from ...train.recipe import (
    JsonOut,
    Progress,
    RunOptions,
    json_result,
    recipe_app,
    run_summary,
    train_command,
)

NAME = "text"
app = recipe_app("Character-level language model on tiny-shakespeare: train, generate, perplexity.")


@train_command(app, epochs=40)
def train(
    run: RunOptions,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="GRU hidden size.")] = 512,
    layers: Annotated[int, typer.Option("--layers", min=1, help="GRU layers.")] = 2,
    embed_dim: Annotated[
        int, typer.Option("--embed-dim", min=1, help="Character embedding size.")
    ] = 64,
    dropout: Annotated[
        float,
        typer.Option(
            "--dropout", min=0.0, max=0.99, help="Embedding/between-layer/output dropout."
        ),
    ] = 0.2,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = 2e-3,
    lr_factor: Annotated[
        float,
        typer.Option("--lr-factor", min=0.0, max=1.0, help="LR multiplier when val loss stalls."),
    ] = 0.5,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Parallel streams per batch.")
    ] = 64,
    seq_len: Annotated[
        int, typer.Option("--seq-len", min=1, help="Truncated-BPTT window (characters).")
    ] = 64,
    clip: Annotated[
        float, typer.Option("--clip", min=0.0, help="Gradient-norm clip (0 = off).")
    ] = 1.0,
    epoch_parts: Annotated[
        int,
        typer.Option(
            "--epoch-parts",
            min=1,
            help="Cut each pass over the text into N epochs (validation + checkpoint after each).",
        ),
    ] = 2,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience",
            min=1,
            help="Early-stopping patience in epochs (default off).",
            show_default=False,
        ),
    ] = None,
    max_train_chars: Annotated[
        int | None,
        typer.Option(
            "--max-train-chars",
            min=2,
            help="Use only the first N training characters (smoke runs).",
            show_default=False,
        ),
    ] = None,
    max_valid_chars: Annotated[
        int | None,
        typer.Option(
            "--max-valid-chars",
            min=2,
            help="Use only the first N validation characters (smoke runs).",
            show_default=False,
        ),
    ] = None,
    eval_streams: Annotated[
        int,
        typer.Option(
            "--eval-streams",
            min=1,
            help="Streams for the final valid score (1 = exact, full prefix).",
        ),
    ] = 1,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Start from this run folder's / model file's weights (same architecture; fresh optimizer).",
            show_default=False,
        ),
    ] = None,
    progress: Progress = True,
) -> None:
    """Train a character GRU language model (truncated BPTT, state carried across batches)."""
    from .train import CLI_FIELDS, TextTrainConfig
    from .train import train as run_train

    cfg = TextTrainConfig(
        embed_dim=embed_dim,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout,
        lr=lr,
        lr_factor=lr_factor,
        batch_size=batch_size,
        seq_len=seq_len,
        clip=clip,
        epochs=run.epochs,
        epoch_parts=epoch_parts,
        patience=patience,
        seed=run.seed,
        eval_streams=eval_streams,
        max_train_chars=max_train_chars,
        max_valid_chars=max_valid_chars,
        init_from=str(init_from) if init_from else None,
    )
    rec = run_train(cfg, progress=progress, given=run.given(CLI_FIELDS), **run.fit_kwargs())
    m = rec["model"]
    typer.echo(
        f"valid: {m['nats_per_char']:.4f} nats/char, {m['bits_per_char']:.4f} bits/char, perplexity "
        f"{m['perplexity']:.3f} (unigram baseline {rec['baselines']['unigram']['nats_per_char']:.3f} nats/char); "
        f"{run_summary(rec)}"
    )


@app.command()
def generate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    prompt: Annotated[
        str, typer.Option("--prompt", help="Text to start from (characters the model knows).")
    ] = "ROMEO:\n",
    length: Annotated[
        int, typer.Option("--length", min=0, max=1_000_000, help="Characters to generate.")
    ] = 500,
    temperature: Annotated[
        float,
        typer.Option("--temperature", min=0.0, max=10.0, help="Sampling temperature (0 = greedy)."),
    ] = 0.8,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", min=1, help="Sample among the k most likely characters.", show_default=False
        ),
    ] = None,
    seed: Seed = 0,
    echo_prompt: Annotated[
        bool, typer.Option("--echo-prompt/--no-echo-prompt", help="Print the prompt first.")
    ] = True,
) -> None:
    """Stream generated text to stdout, one character at a time as the GRU steps (same seed, same text)."""
    from .evaluate import load_model
    from .generate import generate as gen

    model, _ = load_model(checkpoint)
    stream = gen(model, prompt, length, temperature=temperature, top_k=top_k, seed=seed)
    first = next(stream, None)  # validates the prompt before anything is printed
    if echo_prompt:
        sys.stdout.write(prompt)
    if first is not None:
        sys.stdout.write(first)
        sys.stdout.flush()
        for ch in stream:
            sys.stdout.write(ch)
            sys.stdout.flush()
    sys.stdout.write("\n")


@app.command()
def perplexity(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    split: Annotated[
        str, typer.Option("--split", help="train or valid (first 90% / last 10% of input.txt).")
    ] = "valid",
    text_file: Annotated[
        Path | None,
        typer.Option(
            "--text-file", help="Score this UTF-8 text file instead of a split.", show_default=False
        ),
    ] = None,
    data_dir: DataDir = None,
    streams: Annotated[
        int,
        typer.Option(
            "--streams",
            min=1,
            help="Parallel streams (1 = exact, every character given its whole prefix).",
        ),
    ] = 1,
    max_chars: Annotated[
        int | None,
        typer.Option(
            "--max-chars", min=2, help="Score only the first N characters.", show_default=False
        ),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Nats and bits per character and perplexity of a model on a split or a text file."""
    from ..._io import read_text_file
    from ..._progress import bar
    from ...errors import UserInputError
    from .data import load_text, split_text
    from .evaluate import load_model, score_text

    write_result = json_result(json_out)
    if text_file is not None:
        text, source = read_text_file(text_file, "--text-file"), str(text_file)
    else:
        text, source = split_text(load_text(data_dir), split), f"tinyshakespeare {split}"
    model, path = load_model(checkpoint)
    if max_chars:
        text = text[:max_chars]
    if len(text) < streams + 1:
        raise UserInputError(
            f"need at least {streams + 1} characters to score with --streams {streams}, got {len(text)}"
        )
    with bar((len(text) // streams - 1) * streams, "scoring characters") as advance:
        res = score_text(model, text, streams=streams, progress=advance)
    typer.echo(
        f"{source}: {res['nats_per_char']:.4f} nats/char, {res['bits_per_char']:.4f} bits/char, "
        f"perplexity {res['perplexity']:.3f} over {res['chars']} characters (model {path})"
    )
    write_result({"source": source, "model_file": path, "streams": streams, **res})
