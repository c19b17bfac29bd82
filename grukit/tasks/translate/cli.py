"""``grukit translate train|evaluate|predict`` (heavy imports inside the commands)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...errors import UserInputError
from ...train.options import AllowIncomplete, Checkpoint, DataDir
from ...train.recipe import (
    RunOptions,
    check_choice,
    json_result,
    read_lines,
    recipe_app,
    train_command,
)

NAME = "translate"
app = recipe_app(
    "English→French translation: bidirectional GRU encoder, attention decoder, beam search."
)

Beam = Annotated[int, typer.Option("--beam", min=1, help="Beam size (1 = greedy decoding).")]
LengthPenalty = Annotated[
    float,
    typer.Option(
        "--length-penalty", min=0.0, help="GNMT length penalty exponent α: score / ((5+n)/6)^α."
    ),
]


@train_command(app, epochs=30)
def train(
    run: RunOptions,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentence pairs per batch.")] = 128,
    lr: Annotated[
        float, typer.Option(min=0.0, help="AdamW learning rate (halved when val loss stalls).")
    ] = 2e-3,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.1,
    vocab: Annotated[int, typer.Option(min=300, help="BPE vocabulary size per language.")] = 8000,
    emb_dim: Annotated[int, typer.Option(min=1)] = 256,
    enc_hidden: Annotated[int, typer.Option(min=1, help="Encoder GRU size per direction.")] = 256,
    dec_hidden: Annotated[int, typer.Option(min=1)] = 512,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.95)] = 0.2,
    max_len: Annotated[
        int, typer.Option(min=2, help="Drop training pairs longer than this (subword tokens).")
    ] = 32,
    steps_per_epoch: Annotated[
        int, typer.Option(min=0, help="Batches per epoch (0 = a full pass).")
    ] = 500,
    limit_train_pairs: Annotated[
        int, typer.Option(min=0, help="Use only the first N training pairs (0 = all).")
    ] = 0,
    limit_valid_pairs: Annotated[
        int, typer.Option(min=0, help="Validate on the first N valid pairs (0 = all).")
    ] = 2000,
    bf16: Annotated[
        bool, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast for the output layer.")
    ] = True,
    lr_patience: Annotated[
        int,
        typer.Option(
            min=-1,
            help="Halve the LR after this many epochs without a val "
            "improvement (-1 = constant LR).",
        ),
    ] = 0,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Start from this model file or run folder (its weights, sizes and tokenizers; a fresh "
            "optimizer) instead of random weights.",
            show_default=False,
        ),
    ] = None,
    eval_beam: Annotated[
        int, typer.Option(min=0, help="Score the best model on test with this beam (0 = skip).")
    ] = 5,
) -> None:
    """Train a translation model into a run folder (continue one with --resume RUN_DIR; a resumed run
    keeps its tokenizers)."""
    from .train import TrainConfig
    from .train import train as run_train

    cfg = TrainConfig(
        epochs=run.epochs,
        seed=run.seed,
        batch_size=batch_size,
        lr=lr,
        label_smoothing=label_smoothing,
        src_vocab=vocab,
        tgt_vocab=vocab,
        emb_dim=emb_dim,
        enc_hidden=enc_hidden,
        dec_hidden=dec_hidden,
        dropout=dropout,
        max_len=max_len,
        steps_per_epoch=steps_per_epoch or None,
        limit_train_pairs=limit_train_pairs or None,
        limit_valid_pairs=limit_valid_pairs or None,
        bf16=bf16,
        lr_patience=None if lr_patience < 0 else lr_patience,
        init_from=str(init_from) if init_from is not None else None,
    )
    given = run.given({"vocab": "src_vocab"})
    if "src_vocab" in given:  # --vocab sets both sizes
        given.add("tgt_vocab")
    result = run_train(
        cfg,
        progress=sys.stderr.isatty(),
        evaluate_beam=eval_beam or None,
        given=given,
        **run.fit_kwargs(),
    )
    typer.echo(
        f"run folder: {result.run.path}  best val_loss {result.best_score:.4f} (epoch {result.best_epoch})"
    )
    metrics = result.run.file("metrics.json")
    if metrics.is_file():
        typer.echo(metrics.read_text())


@app.command()
def evaluate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    data_dir: DataDir = None,
    beam: Beam = 5,
    length_penalty: LengthPenalty = 1.0,
    split: Annotated[str, typer.Option(help="Which split to score: test or valid.")] = "test",
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Also write the scores as JSON here.", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Score only the first N pairs of the split (0 = all).")
    ] = 0,
) -> None:
    """Score a model on the test split: sacreBLEU BLEU and chrF (all pairs, ≤10-word subset, multi-reference)."""
    import json
    import time

    from . import data as D
    from .evaluate import evaluate as run_eval
    from .predict import load_bundle

    check_choice(split, ("test", "valid"), "--split")
    # before the long decode: a bad path is refused now
    write_result = json_result(output, "--output")
    bundle = load_bundle(checkpoint)
    pairs = D.load_splits(data_dir)[split]
    if limit:
        pairs = pairs[:limit]
    from ..._progress import bar

    t0 = time.perf_counter()
    with bar(len({en for en, _ in pairs}), f"translating the {split} split") as advance:
        res = run_eval(
            bundle, pairs, beam_size=beam, length_penalty=length_penalty, progress=advance
        )
    res |= {
        "split": split,
        "limit": limit or None,
        "checkpoint": str(bundle.path),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    write_result(res)
    m = res["model"]
    typer.echo(
        f"{split}: {res['subsets']['pairs']} pairs, beam {beam}, length penalty {length_penalty}"
    )
    typer.echo(f"  BLEU {m['bleu']:.2f}  chrF {m['chrf']:.2f}  (single reference)")
    typer.echo(
        f"  BLEU {m['bleu_short']:.2f}  chrF {m['chrf_short']:.2f}  (English ≤ 10 words, "
        f"{res['subsets']['short_pairs']} pairs)"
    )
    typer.echo(
        f"  BLEU {m['bleu_multiref']:.2f}  (multi-reference, {res['subsets']['distinct_english']} sentences)"
    )
    if output is None:
        typer.echo(json.dumps(m))


@app.command()
def predict(
    text: Annotated[
        str | None, typer.Argument(help="English sentence to translate.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Translate this file line by line (- = stdin).", show_default=False
        ),
    ] = None,
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    beam: Beam = 5,
    length_penalty: LengthPenalty = 1.0,
    show_attention: Annotated[
        Path | None,
        typer.Option(
            "--show-attention",
            help="Save the attention matrix of TEXT as a PNG heatmap.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Translate English to French: one sentence, or a file line by line (one translation per line)."""
    from .predict import check_sentences, load_bundle, plot_attention, translate, translate_ids

    if (text is None) == (file is None):
        raise UserInputError(
            'give either a sentence (grukit translate predict "I am cold.") or --file FILE'
        )
    if show_attention is not None and file is not None:
        raise UserInputError("--show-attention works with a single sentence, not with --file")
    if show_attention is not None and show_attention.suffix.lower() != ".png":
        raise UserInputError(f"--show-attention expects a .png path, got {show_attention}")
    if show_attention is not None:  # before translating: a bad path prints no translation
        from ..._io import check_output_file

        check_output_file(show_attention, "--show-attention")
    if file is not None:
        lines = read_lines(file, "--file", "translate", stdin=True)
        keep = [i for i, ln in enumerate(lines) if ln.strip()]
        bundle = load_bundle(checkpoint)
        out = translate(
            bundle, [lines[i] for i in keep], beam_size=beam, length_penalty=length_penalty
        )
        result = [""] * len(lines)  # empty lines stay empty, so output line i answers input line i
        for i, t in zip(keep, out):
            result[i] = t
        typer.echo("\n".join(result))
        return
    assert (
        text is not None
    )  # exactly one of TEXT and --file (checked above), and --file has returned
    if not text.strip():
        raise UserInputError("the sentence is empty; expected English text")
    bundle = load_bundle(checkpoint)
    ids = check_sentences([text], bundle.src_tok, where="the sentence")
    tokens, attns = translate_ids(
        bundle.model,
        ids,
        beam_size=beam,
        length_penalty=length_penalty,
        return_attention=show_attention is not None,
    )
    typer.echo(bundle.tgt_tok.decode(tokens[0]))
    if show_attention is not None:
        plot_attention(bundle, text, attns[0], tokens[0], show_attention)
        typer.echo(f"attention heatmap: {show_attention}", err=True)
