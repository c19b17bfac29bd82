"""The recipe contract, over every recipe the way tests/nn/test_layer_contract.py runs over the layers.

Each row of ``RECIPES`` is one recipe's CLI (``grukit/tasks/<name>/cli.py``, built on
``grukit.train.recipe``): a tiny training run, the command that scores its model, an option that a resumed
run must refuse to change, and a data file its own commands read. Every recipe must

- render its help, with the shared train options (``grukit.train.recipe.SHARED_TRAIN_PARAMETERS``);
- train a tiny run into a run folder and score that run's model (the train/evaluate round trip);
- refuse, on ``--resume``, an option that differs from the stored run: exit 2, one line naming the option
  with both values, nothing in the run folder changed;
- refuse a bad file (a model file that is not one, a data file of garbage bytes): exit 2, one line.

A new recipe adds a row. (Forecast joins once its own issue has landed its CLI on the contract.)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest
import typer
from support import files_under, one_line_error
from typer.testing import CliRunner

import grukit.train.recipe as recipe

GARBAGE = bytes(range(256)) * 4  # not UTF-8, not a model, not audio, not MIDI


@dataclass(frozen=True)
class Recipe:
    """One recipe's row: ``{run}`` in an argument stands for the tiny run's folder, ``{bad}`` for a file of
    garbage bytes (named ``bad_name``)."""

    name: str
    tiny_train: tuple[str, ...]
    evaluate: tuple[str, ...]  # scores the tiny run's model
    evaluate_says: str  # in what `evaluate` prints
    conflict: tuple[str, str, str]  # (option, the tiny run's value, another value)
    bad_file: tuple[str, ...]  # a command reading a data file, given {bad}
    bad_name: str = "bad.txt"
    verbs: tuple[str, ...] = field(default=("train", "evaluate"))
    bad_file_slow: bool = False  # reading it imports something heavy (over ~2 s)


RECIPES = [
    Recipe(
        "sentiment",
        tiny_train=(
            *("--hidden", "8", "--embed-dim", "8", "--max-train", "300", "--batch-size", "64"),
            *("--epochs", "1", "--no-baselines", "--no-progress", "--threads", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--split", "dev"),
        evaluate_says="accuracy",
        conflict=("--hidden", "8", "16"),
        bad_file=("predict", "--file", "{bad}"),
        verbs=("train", "evaluate", "predict"),
    ),
    Recipe(
        "text",
        tiny_train=(
            *("--hidden", "8", "--layers", "1", "--embed-dim", "8", "--seq-len", "16"),
            *("--max-train-chars", "3000", "--max-valid-chars", "4200", "--batch-size", "8"),
            *("--epochs", "1", "--epoch-parts", "1", "--no-progress", "--threads", "1"),
        ),
        evaluate=("perplexity", "--checkpoint", "{run}", "--max-chars", "500"),
        evaluate_says="nats/char",
        conflict=("--hidden", "8", "16"),
        bad_file=("perplexity", "--text-file", "{bad}"),
        verbs=("train", "generate", "perplexity"),
    ),
    Recipe(
        "music",
        tiny_train=(
            *("--hidden", "8", "--max-train-sequences", "4", "--batch-size", "4"),
            *("--epochs", "1", "--no-progress", "--threads", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--split", "valid"),
        evaluate_says="NLL per time step",
        conflict=("--hidden", "8", "16"),
        bad_file=("generate", "--prime", "{bad}", "--steps", "2", "--out", "{tmp}/song.mid"),
        bad_name="bad.mid",
        bad_file_slow=True,  # pretty_midi and the shipped model
        verbs=("train", "evaluate", "generate"),
    ),
    Recipe(
        "translate",
        tiny_train=(
            *("--vocab", "300", "--emb-dim", "8", "--enc-hidden", "8", "--dec-hidden", "8"),
            *("--limit-train-pairs", "200", "--limit-valid-pairs", "16", "--batch-size", "16"),
            *("--steps-per-epoch", "2", "--epochs", "1", "--eval-beam", "0", "--no-bf16"),
            *("--threads", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--limit", "4", "--beam", "1"),
        evaluate_says="BLEU",
        conflict=("--enc-hidden", "8", "16"),
        bad_file=("predict", "--file", "{bad}"),
        verbs=("train", "evaluate", "predict"),
    ),
    Recipe(
        "digits",
        tiny_train=(
            *("--unidirectional", "--subset", "12", "--hidden-size", "8", "--num-layers", "1"),
            *("--n-mels", "20", "--batch-size", "8", "--epochs", "1", "--threads", "1"),
            *("--devices", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--split", "val", "--speaker", "theo"),
        evaluate_says="accuracy",
        conflict=("--hidden-size", "8", "16"),
        bad_file=("predict", "{bad}"),
        bad_name="bad.wav",
        verbs=("train", "evaluate", "predict", "stream"),
    ),
]
IDS = [r.name for r in RECIPES]


def _args(args: tuple[str, ...], **where: Path) -> list[str]:
    return [a.format(**{k: str(v) for k, v in where.items()}) for a in args]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny run of each recipe, trained on first use (shared by the tests below)."""
    return {"root": tmp_path_factory.mktemp("recipes")}


def _tiny_run(runs, recipe_row: Recipe, cli, data_dir) -> Path:
    if recipe_row.name not in runs:
        out = runs["root"] / recipe_row.name
        r = cli(recipe_row.name, "train", "--output-dir", out, *recipe_row.tiny_train)
        assert r.code == 0, r.err[-3000:]
        assert "run folder" in r.out or str(out) in r.out, r.out
        runs[recipe_row.name] = out
    return runs[recipe_row.name]


def test_the_rows_cover_every_recipe_on_the_contract():
    import grukit.tasks as tasks

    on_contract = {
        p.parent.name
        for p in Path(tasks.__file__).parent.glob("*/cli.py")
        if "train_command(" in p.read_text(encoding="utf-8")
    }
    assert on_contract == set(IDS)


@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_help_renders(row, cli):
    r = cli(row.name, "--help")
    assert r.code == 0, r.err
    for verb in row.verbs:
        assert verb in r.out
    for verb in row.verbs:
        r = cli(row.name, verb, "--help")
        assert r.code == 0 and "Usage" in r.out, (verb, r.err)
    r = cli(row.name, "train", "--help")
    for name in recipe.SHARED_TRAIN_PARAMETERS:
        assert "--" + name.replace("_", "-") in r.out, name
    assert "--resume RUN" in r.out  # recipe.RESUME_HELP follows the recipe's own help


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_tiny_train_then_evaluate(row, runs, cli, data_dir):
    run = _tiny_run(runs, row, cli, data_dir)
    for name in ("model.safetensors", "config.json", "last.ckpt", "log.csv"):
        assert (run / name).is_file(), (name, files_under(run))
    r = cli(row.name, *_args(row.evaluate, run=run))
    assert r.code == 0, r.err[-3000:]
    assert row.evaluate_says in r.out, r.out


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_resume_refuses_a_conflicting_option(row, runs, cli, data_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(_tiny_run(runs, row, cli, data_dir), run)
    before = {f: (run / f).read_bytes() for f in files_under(run)}
    option, was, other = row.conflict
    r = cli(row.name, "train", "--resume", run, "--epochs", "2", option, other)
    one_line_error(r, f"{option} {was}, got {other}")
    assert {f: (run / f).read_bytes() for f in files_under(run)} == before


@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_a_model_file_that_is_not_one_exits_2(row, cli, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(GARBAGE)
    evaluate = [a for a in row.evaluate if a not in ("--checkpoint", "{run}")]
    r = cli(row.name, *evaluate, "--checkpoint", bad)
    one_line_error(r, str(bad))


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=r.name, marks=[pytest.mark.slow] * r.bad_file_slow) for r in RECIPES],
)
def test_a_bad_data_file_exits_2(row, cli, tmp_path):
    bad = tmp_path / row.bad_name
    bad.write_bytes(GARBAGE)
    r = cli(row.name, *_args(row.bad_file, bad=bad, tmp=tmp_path))
    one_line_error(r)
    assert files_under(tmp_path) == [row.bad_name]  # nothing written beside it


def test_train_command_refuses_a_redeclared_shared_option():
    app = recipe.recipe_app("toy")
    with pytest.raises(TypeError, match="seed"):

        @recipe.train_command(app, epochs=1)
        def train(run: recipe.RunOptions, seed: int = 0) -> None: ...

    with pytest.raises(TypeError, match="run: RunOptions"):

        @recipe.train_command(app, epochs=1)
        def train2(hidden: int = 0) -> None: ...

    assert isinstance(app, typer.Typer)


def test_train_command_hands_over_the_shared_options_and_what_was_typed():
    app = recipe.recipe_app("toy")
    seen = {}

    @recipe.train_command(app, epochs=7)
    def train(
        run: recipe.RunOptions,
        hidden: Annotated[int, typer.Option("--hidden", min=1)] = 4,
    ) -> None:
        """Train the toy."""
        seen.update(run=run, hidden=hidden)

    @app.command()
    def other() -> None:  # a second command keeps `train` a subcommand
        pass

    r = CliRunner().invoke(app, ["train", "--seed", "3", "--hidden", "5", "--threads", "2"])
    assert r.exit_code == 0, r.output
    run = seen["run"]
    assert (run.epochs, run.seed, run.threads, seen["hidden"]) == (7, 3, 2, 5)
    assert run.typed == {"seed", "hidden", "threads"}
    assert run.given({"hidden": "hidden_size"}) == {"seed", "hidden_size", "threads"}
    assert set(run.fit_kwargs()) == set(recipe.SHARED_TRAIN_PARAMETERS) - {"epochs", "seed"}
    r = CliRunner().invoke(app, ["train", "--help"])
    assert "Train the toy." in r.output and "--resume RUN" in r.output
