"""The recipe contract, over every recipe the way tests/nn/test_layer_contract.py runs over the layers.

Each row of ``RECIPES`` is one recipe's CLI (``grukit/tasks/<name>/cli.py``, built on
``grukit.train.recipe``): the options of its tiny training run, the command that scores the run's model,
an option that a resumed run must refuse to change, and a data file its own commands read. Every recipe must

- render its help, with the shared train options (``grukit.train.recipe.SHARED_TRAIN_PARAMETERS``, less
  those the recipe declares its own way);
- train a tiny run (two epochs) into a run folder and score that run's model (the train/evaluate round
  trip; forecast backtests inside its run and forecasts with ``predict``);
- refuse, on ``--resume``, an option that differs from the stored run: exit 2, one line naming the option
  with both values, nothing in the run folder changed;
- refuse a bad file (a model file that is not one, a data file of garbage bytes): exit 2, one line;
- faults (the fault toolkit, ``grukit.train.run``/``loop``): a run stopped by Ctrl-C after its first epoch
  (exit 130, the message says how to continue, the folder says ``"interrupted"``), continued with
  ``--resume RUN`` alone, ends with a model file (and result files) byte-identical to the uninterrupted
  tiny run's, the same metrics and the same ``log.csv`` numbers; resuming the finished run prints "already
  complete" and leaves every file as it was;
- stop a diverging run (``--lr 1e37``: the loss becomes non-finite) with exit 2 and one line naming the
  epoch, reporting no result; refuse a learning rate whose first step cannot be taken (``--lr 1e38``)
  before training, leaving nothing behind.

A new recipe adds a row; what only one recipe has is checked by its row's ``after_stop`` or by a test
below the contract's checks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from support import files_under, one_line_error
from typer.testing import CliRunner

import grukit.train.recipe as recipe
from grukit.train.loop import EpochSeed

GARBAGE = bytes(range(256)) * 4  # not UTF-8, not a model, not audio, not MIDI, not a table
QUIET = ("--no-progress",)


@dataclass(frozen=True)
class Recipe:
    """One recipe's row. In an argument ``{run}`` stands for the tiny run's folder, ``{bad}`` for a file of
    garbage bytes (named ``bad_name``), ``{tmp}`` for the test's own folder and ``{data}`` for the tiny
    forecast table (the first 300 days of the built-in weather data)."""

    name: str
    tiny: tuple[
        str, ...
    ]  # the tiny run's options (the checks add --epochs, --output-dir, --resume)
    evaluate: tuple[str, ...]  # scores the tiny run's model
    evaluate_says: str  # in what `evaluate` prints
    conflict: tuple[str, str, str]  # (option, the tiny run's value, another value)
    bad_file: tuple[str, ...]  # a command reading a data file, given {bad}
    train: tuple[str, ...] = (
        "train",
    )  # the words that train (forecast: none, `grukit forecast` does)
    bad_name: str = "bad.txt"
    verbs: tuple[str, ...] = field(default=("train", "evaluate"))
    bad_file_slow: bool = False  # reading it imports something heavy (over ~2 s)
    own_way: tuple[
        str, ...
    ] = ()  # shared train options the recipe declares itself (train_command without)
    results: tuple[
        str, ...
    ] = ()  # run files besides the model that a resumed run must give byte for byte
    # recipe-only checks on the interrupted run before it is resumed: (cli, stopped, whole, where) -> None
    after_stop: Callable[..., None] | None = None


def _forecast_after_stop(cli, stopped: Path, whole: Path, where: dict[str, Path]) -> None:
    """Forecast's own fault cases (issue 27, items 1, 4, 11): the run records its table (path and
    fingerprint); ``predict`` refuses an incomplete run's model unless ``--allow-incomplete``; a table
    changed at the recorded path is refused by ``--resume`` before anything is touched; the summary line
    of a finished run names every file of its folder."""
    data, tmp = where["data"], where["tmp"]
    assert _config(stopped)["inputs"]["--csv"]["path"] == str(data.resolve())
    assert not (stopped / "forecast.csv").exists()

    pred = ["forecast", "predict", "--checkpoint", stopped, "--csv", data]
    one_line_error(cli(*pred, "--output-dir", tmp / "p1"), "incomplete run", "--allow-incomplete")
    assert not (tmp / "p1").exists()
    r = cli(*pred, "--output-dir", tmp / "p2", "--allow-incomplete")
    assert r.code == 0, r.err[-2000:]
    assert (tmp / "p2" / "forecast.csv").is_file()

    kept = data.read_bytes()
    try:
        import pandas as pd

        df = pd.read_csv(data)
        df["temp_max"] *= 100
        df.to_csv(data, index=False)
        before = _snapshot(stopped)
        r = cli("forecast", "--resume", stopped)
        one_line_error(r, f"--csv {data.resolve()} has changed since the run started")
        assert _snapshot(stopped) == before
    finally:
        data.write_bytes(kept)

    summary = where["whole_out"].replace("\n", "")  # item 11: the summary names every file
    assert f"run folder {whole}: " in summary
    for name in (p.name for p in whole.iterdir() if p.is_file() and p.name[0] != "."):
        assert name in summary, name


RECIPES = [
    Recipe(
        "sentiment",
        tiny=(
            *("--hidden", "8", "--embed-dim", "8", "--max-train", "300", "--batch-size", "64"),
            *("--no-baselines", *QUIET, "--threads", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--split", "dev"),
        evaluate_says="accuracy",
        conflict=("--hidden", "8", "16"),
        bad_file=("predict", "--file", "{bad}"),
        verbs=("train", "evaluate", "predict"),
    ),
    Recipe(
        "text",
        tiny=(
            *("--hidden", "8", "--layers", "1", "--embed-dim", "8", "--seq-len", "16"),
            *("--max-train-chars", "3000", "--max-valid-chars", "4200", "--batch-size", "8"),
            *("--epoch-parts", "1", *QUIET, "--threads", "1"),
        ),
        evaluate=("perplexity", "--checkpoint", "{run}", "--max-chars", "500"),
        evaluate_says="nats/char",
        conflict=("--hidden", "8", "16"),
        bad_file=("perplexity", "--text-file", "{bad}"),
        verbs=("train", "generate", "perplexity"),
    ),
    Recipe(
        "music",
        tiny=(
            *("--hidden", "8", "--max-train-sequences", "4", "--batch-size", "4"),
            *(*QUIET, "--threads", "1"),
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
        tiny=(
            *("--vocab", "300", "--emb-dim", "8", "--enc-hidden", "8", "--dec-hidden", "8"),
            *("--limit-train-pairs", "200", "--limit-valid-pairs", "16", "--batch-size", "16"),
            *("--steps-per-epoch", "2", "--eval-beam", "0", "--no-bf16", "--threads", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--limit", "4", "--beam", "1"),
        evaluate_says="BLEU",
        conflict=("--enc-hidden", "8", "16"),
        bad_file=("predict", "--file", "{bad}"),
        verbs=("train", "evaluate", "predict"),
    ),
    Recipe(
        "digits",
        tiny=(
            *("--unidirectional", "--subset", "12", "--hidden-size", "8", "--num-layers", "1"),
            *("--n-mels", "20", "--batch-size", "8", "--threads", "1", "--devices", "1"),
        ),
        evaluate=("evaluate", "--checkpoint", "{run}", "--split", "val", "--speaker", "theo"),
        evaluate_says="accuracy",
        conflict=("--hidden-size", "8", "16"),
        bad_file=("predict", "{bad}"),
        bad_name="bad.wav",
        verbs=("train", "evaluate", "predict", "stream"),
    ),
    Recipe(
        "forecast",
        train=(),
        tiny=(
            *("--csv", "{data}", "--time-col", "date", "--target", "temp_max", "--horizon", "7"),
            *("--context", "14", "--backtest", "1", "--baselines", "none", "--hidden", "4"),
            *("--threads", "1"),
        ),
        evaluate=(
            *("predict", "--checkpoint", "{run}", "--csv", "{data}"),
            *("--output-dir", "{tmp}/forecast"),
        ),
        evaluate_says="forecast of temp_max",
        conflict=("--hidden", "4", "8"),
        bad_file=("--csv", "{bad}", "--output-dir", "{tmp}/run"),
        bad_name="bad.csv",
        verbs=("predict",),
        own_way=("data_dir", "threads"),  # --data/--csv/--dataset; --threads defaults to 1
        results=("forecast.csv", "backtest.csv"),
        after_stop=_forecast_after_stop,
    ),
]
IDS = [r.name for r in RECIPES]
ROW = dict(zip(IDS, RECIPES, strict=True))


def _args(args: tuple[str, ...], **where: Path | str) -> list[str]:
    return [a.format(**{k: str(v) for k, v in where.items()}) for a in args]


def _train(row: Recipe, where: dict, *extra: object) -> list[object]:
    return [row.name, *row.train, *_args(row.tiny, **where), *extra]


def _quiet(row: Recipe) -> tuple[str, ...]:
    return QUIET if QUIET[0] in row.tiny else ()


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _log_numbers(run: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO((run / "log.csv").read_text())))
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _snapshot(run: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}


def _stop_at_epoch(monkeypatch, epoch: int) -> None:
    """Press Ctrl-C (raise KeyboardInterrupt) as epoch ``epoch`` starts, where Lightning catches it."""
    original = EpochSeed.on_train_epoch_start

    def start(self, trainer, module):
        if trainer.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self, trainer, module)

    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", start)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> Path:
    """Forecast's tiny table: the first 300 days of the built-in weather data (date, temp_max)."""
    from grukit.tasks.forecast import data as D

    path = tmp_path_factory.mktemp("forecast-data") / "tiny.csv"
    D.load_builtin("weather").iloc[:300][["date", "temp_max"]].to_csv(path, index=False)
    return path


@pytest.fixture
def where(tiny_table, tmp_path) -> dict[str, Any]:
    """What the rows' ``{placeholders}`` stand for in one test."""
    return {"data": tiny_table, "tmp": tmp_path}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny run of each recipe (two epochs, complete), trained on first use and shared by the checks
    below, which leave it as it was."""
    return {"root": tmp_path_factory.mktemp("recipes")}


def _tiny_run(runs, row: Recipe, cli, where) -> Path:
    if row.name not in runs:
        out = runs["root"] / row.name
        r = cli(*_train(row, where, "--epochs", "2", "--output-dir", out))
        assert r.code == 0, r.err[-3000:]
        assert str(out) in r.out.replace("\n", ""), r.out  # the last lines name the run folder
        runs[row.name] = out
        runs[row.name + ".out"] = r.out
    where["whole_out"] = runs[row.name + ".out"]
    return runs[row.name]


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
    r = cli(row.name, *row.train, "--help")
    for name in set(recipe.SHARED_TRAIN_PARAMETERS) - set(row.own_way):
        assert "--" + name.replace("_", "-") in r.out, name
    assert "--resume RUN" in r.out  # recipe.RESUME_HELP follows the recipe's own help


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_tiny_train_then_evaluate(row, runs, cli, where):
    run = _tiny_run(runs, row, cli, where)
    for name in ("model.safetensors", "config.json", "last.ckpt", "log.csv", *row.results):
        assert (run / name).is_file(), (name, files_under(run))
    assert _config(run)["status"] == "complete"
    r = cli(row.name, *_args(row.evaluate, run=run, **where))
    assert r.code == 0, r.err[-3000:]
    assert row.evaluate_says in r.out, r.out


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_resume_refuses_a_conflicting_option(row, runs, cli, where, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(_tiny_run(runs, row, cli, where), run)
    before = {f: (run / f).read_bytes() for f in files_under(run)}
    option, was, other = row.conflict
    r = cli(row.name, *row.train, "--resume", run, "--epochs", "3", option, other)
    one_line_error(r, f"{option} {was}, got {other}")
    assert {f: (run / f).read_bytes() for f in files_under(run)} == before


@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_a_model_file_that_is_not_one_exits_2(row, cli, where):
    bad = where["tmp"] / "model.safetensors"
    bad.write_bytes(GARBAGE)
    evaluate = [a for a in row.evaluate if a not in ("--checkpoint", "{run}")]
    r = cli(row.name, *_args(tuple(evaluate), **where), "--checkpoint", bad)
    one_line_error(r, str(bad))
    assert files_under(where["tmp"]) == ["model.safetensors"]  # nothing written beside it


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=r.name, marks=[pytest.mark.slow] * r.bad_file_slow) for r in RECIPES],
)
def test_a_bad_data_file_exits_2(row, cli, where):
    bad = where["tmp"] / row.bad_name
    bad.write_bytes(GARBAGE)
    r = cli(row.name, *_args(row.bad_file, bad=bad, **where))
    one_line_error(r)
    assert files_under(where["tmp"]) == [row.bad_name]  # nothing written beside it


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_resume_after_ctrl_c_is_bit_identical_and_a_finished_run_is_left_alone(
    row, runs, cli, where, monkeypatch
):
    whole = _tiny_run(runs, row, cli, where)
    stopped = where["tmp"] / "stopped"
    with monkeypatch.context() as m:
        _stop_at_epoch(m, 1)
        r = cli(*_train(row, where, "--epochs", "2", "--output-dir", stopped))
    assert r.code == 130, r.err[-2000:]
    again = " ".join(["grukit", row.name, *row.train, "--resume", str(stopped)])
    assert r.err_lines[-1] == f"interrupted; continue with `{again}`"
    assert _config(stopped)["status"] == "interrupted"
    assert (stopped / "last.ckpt").is_file() and not (stopped / "metrics.json").exists()
    if row.after_stop is not None:
        row.after_stop(cli, stopped, whole, where)

    # --resume alone: the stored options (--epochs 2 included, not the CLI's default) and data
    r = cli(row.name, *row.train, "--resume", stopped, *_quiet(row))
    assert r.code == 0, r.err[-2000:]
    assert _config(stopped)["status"] == "complete" and _config(stopped)["epochs"] == 2
    for name in ("model.safetensors", *row.results):
        assert (stopped / name).read_bytes() == (whole / name).read_bytes(), name
    assert _log_numbers(stopped) == _log_numbers(whole)
    metrics = [d / "metrics.json" for d in (whole, stopped)]
    assert metrics[0].exists() == metrics[1].exists()  # translate with --eval-beam 0 writes none
    if metrics[0].exists():
        m = [json.loads(f.read_text())["model"] for f in metrics]
        assert m[0] == m[1]

    before = _snapshot(whole)
    r = cli(row.name, *row.train, "--resume", whole, *_quiet(row))
    assert r.code == 0 and "already complete" in r.out, (r.out, r.err[-2000:])
    assert _snapshot(whole) == before  # nothing retrained, nothing overwritten


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_a_diverging_run_stops_naming_the_epoch(row, cli, where):
    out = where["tmp"] / "run"
    r = cli(*_train(row, where, "--epochs", "3", "--lr", "1e37", "--output-dir", out))
    line = one_line_error(r, "training diverged", " at epoch ")
    epoch = int(line.split(" at epoch ")[1].split()[0])
    if epoch == 0:  # nothing to resume: the folder this run made is gone
        assert not out.exists()
    else:  # kept for --resume and inspection, but never marked complete or given results
        assert _config(out)["status"] == "diverged"
        for name in ("metrics.json", *row.results):
            assert not (out / name).exists(), name


@pytest.mark.slow
@pytest.mark.parametrize("row", RECIPES, ids=IDS)
def test_a_learning_rate_whose_first_step_overflows_is_refused_before_training(row, cli, where):
    out = where["tmp"] / "run"
    r = cli(*_train(row, where, "--epochs", "1", "--lr", "1e38", "--output-dir", out))
    one_line_error(r, "--lr 1e+38 is too large", "use --lr below")
    assert not out.exists()


# ---------------------------------------------------------------- what one recipe alone has


@pytest.mark.slow
def test_music_resume_reads_the_recorded_data_and_refuses_changed_data(cli, where, monkeypatch):
    """The run records its data folder (path + sha256) in config.json; ``--resume RUN`` alone reads that
    folder (not ``$GRUKIT_DATA``) and ends bit-identical to the uninterrupted run; data changed at the
    same path since the start is refused, and the run folder is left as it was."""
    tmp = where["tmp"]
    data = tmp / "music-data"
    shutil.copytree(Path(os.environ["GRUKIT_DATA"]) / "polyphonic_music", data)
    whole, stopped = tmp / "whole", tmp / "stopped"
    args = _train(ROW["music"], where, "--epochs", "2", "--data-dir", data)
    assert cli(*args, "--output-dir", whole).code == 0
    with monkeypatch.context() as m:
        _stop_at_epoch(m, 1)
        assert cli(*args, "--output-dir", stopped).code == 130
    recorded = _config(stopped)["inputs"]["--data-dir"]
    assert recorded["path"] == str(data.resolve()) and len(recorded["sha256"]) == 64
    again = shutil.copytree(stopped, tmp / "stopped-again")

    monkeypatch.setenv("GRUKIT_DATA", str(tmp / "nowhere"))  # only the recorded path can serve
    r = cli("music", "train", "--resume", stopped, "--no-progress")
    assert r.code == 0, r.err[-2000:]
    assert (stopped / "model.safetensors").read_bytes() == (
        whole / "model.safetensors"
    ).read_bytes()

    jsb = data / "JSB_Chorales.mat"
    jsb.write_bytes(jsb.read_bytes()[:-1] + bytes([jsb.read_bytes()[-1] ^ 1]))  # one bit changed
    before = _snapshot(again)
    r = cli("music", "train", "--resume", again, "--no-progress")
    one_line_error(r, f"--data-dir {data.resolve()} has changed since the run started")
    assert _snapshot(again) == before


# ---------------------------------------------------------------- the toolkit side of the contract


def test_train_command_refuses_a_redeclared_shared_option():
    app = recipe.recipe_app("toy")
    with pytest.raises(TypeError, match="seed"):

        @recipe.train_command(app, epochs=1)
        def train(run: recipe.RunOptions, seed: int = 0) -> None: ...

    with pytest.raises(TypeError, match="run: RunOptions"):

        @recipe.train_command(app, epochs=1)
        def train2(hidden: int = 0) -> None: ...

    with pytest.raises(TypeError, match="can be left out"):
        recipe.train_command(app, epochs=1, without=("seed",))

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


def test_a_main_command_runs_bare_and_leaves_its_verbs_alone():
    """``train_command(name=None)``: ``grukit <task>`` with no verb trains (forecast's shape); a verb of the
    same app runs without it; a shared option left out is the recipe's own."""
    app = recipe.recipe_app("toy", main_command=True)
    seen: list[Any] = []

    @recipe.train_command(app, epochs=5, name=None, devices="1", without=("data_dir", "threads"))
    def main(
        run: recipe.RunOptions,
        threads: Annotated[int, typer.Option("--threads", min=1)] = 1,
    ) -> None:
        seen.append((run, threads))

    @app.command()
    def verb() -> None:
        seen.append("verb")

    r = CliRunner().invoke(app, ["--epochs", "2"])
    assert r.exit_code == 0, r.output
    run, threads = seen.pop()
    assert (run.epochs, run.devices, run.data_dir, run.threads, threads) == (2, "1", None, None, 1)
    assert run.typed == {"epochs"}
    r = CliRunner().invoke(app, [])  # bare: runs the main command with its defaults, not the help
    assert r.exit_code == 0, r.output
    run, threads = seen.pop()
    assert (run.epochs, run.typed, threads) == (5, frozenset(), 1)
    r = CliRunner().invoke(app, ["verb"])
    assert r.exit_code == 0 and seen == ["verb"], r.output
    r = CliRunner().invoke(app, ["--help"])
    assert "--resume RUN" in r.output and "--data-dir" not in r.output


def test_recipe_run_start_restores_a_resumed_runs_config_and_refuses_a_used_folder(tmp_path):
    """The training side of the contract (``grukit.train.recipe_run``): ``start`` refuses an output folder
    that holds a run before any work, restores a resumed run's stored options (stored win unless given,
    a given conflicting one is refused) and records the threads with the config."""
    import dataclasses

    import torch

    from grukit.errors import UserInputError
    from grukit.train.recipe_run import RecipeRun

    @dataclasses.dataclass
    class Cfg:
        hidden: int = 4
        epochs: int = 1
        seed: int = 0

    used = tmp_path / "used"
    used.mkdir()
    (used / "config.json").write_text(json.dumps({"hidden": 8, "epochs": 2, "seed": 0}))
    (used / "last.ckpt").write_bytes(b"")
    with pytest.raises(UserInputError, match="already holds files"):
        RecipeRun.start("toy", Cfg(), output_dir=used)

    run = RecipeRun.start("toy", Cfg(), resume=used, devices="1")  # threads: torch's own
    threads = torch.get_num_threads()
    assert run.cfg == Cfg(hidden=8, epochs=2) and run.threads == threads
    assert run.run_config() == {"hidden": 8, "epochs": 2, "seed": 0, "threads": threads}
    assert run.fit_options() == dict(
        output_dir=None,
        resume=used,
        overwrite=False,
        devices="1",
        num_nodes=1,
        strategy="auto",
        progress=True,
    )
    with pytest.raises(UserInputError, match="--hidden 8, got 16"):
        RecipeRun.start("toy", Cfg(hidden=16), resume=used, given={"hidden"})
