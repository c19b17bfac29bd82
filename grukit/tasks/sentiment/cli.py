"""``grukit sentiment train|evaluate|predict`` (heavy imports happen inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ...train.options import AllowIncomplete, Checkpoint, DataDir
from ...train.recipe import (
    JsonOut,
    Progress,
    RunOptions,
    json_result,
    read_lines,
    recipe_app,
    run_summary,
    train_command,
)

NAME = "sentiment"
app = recipe_app(
    "Sentence sentiment (SST-2): a bidirectional GRU classifier; train, evaluate, predict "
    "with explanations."
)


@train_command(app, epochs=8)
def train(
    run: RunOptions,
    hidden: Annotated[
        int, typer.Option("--hidden", min=1, help="GRU hidden size per direction.")
    ] = 128,
    layers: Annotated[int, typer.Option("--layers", min=1, help="GRU layers.")] = 1,
    embed_dim: Annotated[
        int, typer.Option("--embed-dim", min=1, help="Word embedding size.")
    ] = 128,
    dropout: Annotated[
        float, typer.Option("--dropout", min=0.0, max=0.99, help="Dropout before the classifier.")
    ] = 0.5,
    embed_dropout: Annotated[
        float,
        typer.Option("--embed-dropout", min=0.0, max=0.99, help="Dropout on word embeddings."),
    ] = 0.3,
    min_freq: Annotated[
        int, typer.Option("--min-freq", min=1, help="Keep words seen at least this often in train.")
    ] = 1,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = 2e-3,
    weight_decay: Annotated[
        float, typer.Option("--weight-decay", min=0.0, help="Adam L2 weight decay.")
    ] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Phrases per batch.")] = 64,
    patience: Annotated[
        int,
        typer.Option("--patience", min=1, help="Early-stopping patience (epochs) on dev accuracy."),
    ] = 3,
    max_train: Annotated[
        int | None,
        typer.Option(
            "--max-train",
            min=1,
            help="Use only the first N training phrases (smoke runs).",
            show_default=False,
        ),
    ] = None,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="Also score the majority-class and TF-IDF baselines."
        ),
    ] = True,
    progress: Progress = True,
) -> None:
    """Train a bidirectional GRU on SST-2 train (phrases), select on dev, report test accuracy."""
    from .train import CLI_FIELDS, SentimentTrainConfig
    from .train import train as run_train

    cfg = SentimentTrainConfig(
        embed_dim=embed_dim,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout,
        embed_dropout=embed_dropout,
        min_freq=min_freq,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        epochs=run.epochs,
        patience=patience,
        seed=run.seed,
        max_train=max_train,
    )
    rec = run_train(
        cfg, progress=progress, baselines=baselines, given=run.given(CLI_FIELDS), **run.fit_kwargs()
    )
    m = rec["model"]
    line = f"test accuracy {m['accuracy']:.4f} (dev {m['dev_accuracy']:.4f})"
    if rec.get("baselines"):
        line += "; baselines: " + ", ".join(
            f"{k} {v['accuracy']:.4f}" for k, v in rec["baselines"].items()
        )
    typer.echo(f"{line}; {run_summary(rec)}")


@app.command()
def evaluate(
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    split: Annotated[str, typer.Option("--split", help="dev or test (or train).")] = "test",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Score this labelled file instead of a split: one 'TEXT<TAB>LABEL' per line, "
            "LABEL 0/1 or negative/positive.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="Also score the baselines (trained on train)."
        ),
    ] = False,
    json_out: JsonOut = None,
) -> None:
    """Accuracy, F1 and the confusion matrix of a model on an SST-2 split or a labelled TSV file."""
    from .data import load_split
    from .evaluate import baselines as run_baselines
    from .evaluate import load_model, read_labelled_tsv, scores

    write_result = json_result(json_out)
    if file is not None:
        texts, labels = read_labelled_tsv(file)
        source, dataset = str(file), None
    else:
        texts, labels = load_split(split, data_dir)
        source, dataset = f"sst2 {split}", "sst2"
    model, path = load_model(checkpoint)
    res = scores(model, texts, labels)
    typer.echo(
        f"{source}: accuracy {res['accuracy']:.4f}, F1 (positive) {res['f1_positive']:.4f}, "
        f"macro F1 {res['f1_macro']:.4f} over {res['n']} sentences (model {path})"
    )
    (tn, fp), (fn, tp) = res["confusion"]
    typer.echo("confusion (rows = true label, columns = predicted):")
    typer.echo(f"  {'':>8s} {'negative':>9s} {'positive':>9s}")
    typer.echo(f"  {'negative':>8s} {tn:9d} {fp:9d}")
    typer.echo(f"  {'positive':>8s} {fn:9d} {tp:9d}")
    out: dict[str, Any] = {"dataset": dataset, "split": split if file is None else None}
    out |= {"source": source, "model_file": path, **res}
    if baselines:
        tr_texts, tr_labels = load_split("train", data_dir)
        base = run_baselines(tr_texts, tr_labels, texts, labels)
        out["baselines"] = base
        for k, v in base.items():
            typer.echo(f"  baseline {k}: accuracy {v['accuracy']:.4f}")
    write_result(out)


@app.command()
def predict(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Sentences to classify.", show_default=False)
    ] = None,
    checkpoint: Checkpoint = None,
    allow_incomplete: AllowIncomplete = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Classify every non-empty line of this UTF-8 file.", show_default=False
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show each word's contribution (occlusion: change in the log-odds of positive when the word is replaced by <unk>).",
        ),
    ] = False,
    max_words: Annotated[
        int,
        typer.Option(
            "--explain-max-words",
            min=1,
            help="--explain refuses longer sentences (its time grows as the square of the length).",
        ),
    ] = 2000,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """Label sentences positive/negative with P(positive) and how many of their words the model knows;
    --explain colours words by their contribution. Empty sentences are refused; a sentence with no known
    word gets a warning on stderr (the answer is then the model's guess for unknown text)."""
    import dataclasses
    import json

    from ...errors import UserInputError
    from .evaluate import load_model
    from .predict import check_texts
    from .predict import explain as run_explain
    from .predict import predict as run_predict

    items = list(texts or [])
    if file is not None:
        items += [ln.strip() for ln in read_lines(file, "--file", "classify") if ln.strip()]
    if not items:
        raise UserInputError("give sentences as arguments or --file FILE")
    check_texts(items)
    model, _ = load_model(checkpoint)
    if explain:
        preds = [run_explain(model, t, max_words=max_words) for t in items]
    else:
        preds = run_predict(model, items)
    for i, p in enumerate(preds):
        if p.known == 0:
            where = "the sentence" if len(preds) == 1 else f"sentence {i + 1}"
            typer.echo(
                f"warning: none of the {p.n_words} word(s) of {where} is in the model's vocabulary; "
                f"P(positive) is the model's guess for unknown text",
                err=True,
            )
    if json_out:
        for p in preds:
            typer.echo(json.dumps(dataclasses.asdict(p), ensure_ascii=False))
        return
    from rich.text import Text

    from ..._console import stdout_console

    console = stdout_console()
    for p in preds:
        colour = "green" if p.label == "positive" else "red"
        console.print(
            Text.assemble(
                (f"{p.label:8s}", f"bold {colour}"),
                f" P(positive)={p.p_positive:.3f}  known {p.known}/{p.n_words}  ",
                p.text,
            )
        )
        if explain and p.words and p.contributions is not None:
            unknown = set(p.unknown_words)
            line = Text("  ")
            for w, c in zip(p.words, p.contributions):
                style = "green" if c > 0.5 else "red" if c < -0.5 else "dim"
                line.append(f"{w}{'?' if w in unknown else ''}", style=style)
                line.append(f"({c:+.2f}) ", style="dim")
            console.print(line)
    if explain:
        console.print(
            "[dim]word(+x): the log-odds of positive drop by x when the word is replaced by <unk> "
            "(green > +0.5, red < -0.5); '?' marks words the model never saw in training[/dim]"
        )
