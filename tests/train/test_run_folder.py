"""The one run-folder path (open_run / check_output_dir, used by fit): an existing non-empty --output-dir is
refused unless --overwrite or it is the run being resumed; a path below a file is refused in one line;
a failed run leaves no folder behind."""

import json

import pytest
from train_toy import toy_loaders, toy_module

from grukit.errors import UserInputError
from grukit.train import check_output_dir, fit, open_run


def _listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_new_and_empty_folders_are_accepted(tmp_path):
    run, ckpt = open_run("demo", output_dir=tmp_path / "a" / "b")
    assert run.path.is_dir() and run.created and ckpt is None
    (tmp_path / "empty").mkdir()
    run, _ = open_run("demo", output_dir=tmp_path / "empty")
    assert (
        run.path == tmp_path / "empty" and not run.created
    )  # pre-existing: never removed by guard


def test_non_empty_folder_is_refused_and_left_as_it_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"lr": 1}')
    (out / "model.safetensors").write_bytes(b"old")
    before = _listing(out)
    for call in (
        lambda: check_output_dir(out),
        lambda: open_run("demo", output_dir=out),
        lambda: fit(toy_module(), *toy_loaders(), output_dir=out, epochs=1, progress=False),
    ):
        with pytest.raises(UserInputError) as e:
            call()
        msg = str(e.value)
        assert (
            "already holds files (config.json, model.safetensors)" in msg and "--overwrite" in msg
        )
        assert "\n" not in msg
        assert _listing(out) == before


def test_overwrite_replaces_a_run_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.ckpt").write_bytes(b"stale")
    (out / "old.png").write_bytes(b"stale")
    res = fit(
        toy_module(),
        *toy_loaders(),
        output_dir=out,
        overwrite=True,
        epochs=1,
        progress=False,
        plot=False,
        config={"lr": 0.02},
    )
    assert res.run.path == out
    names = {p.name for p in out.iterdir()}
    assert "old.png" not in names  # nothing of the old run is mixed into the new one
    assert {"model.safetensors", "config.json", "log.csv", "last.ckpt"} <= names
    assert (out / "last.ckpt").read_bytes() != b"stale"
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.02, "status": "complete"}


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(UserInputError, match="does not look like a run folder"):
        open_run("demo", output_dir=tmp_path, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_resume_may_write_into_its_own_folder(tmp_path):
    out = tmp_path / "run"
    fit(toy_module(), *toy_loaders(), output_dir=out, epochs=1, progress=False, plot=False)
    assert not check_output_dir(out, resume=out)
    assert not check_output_dir(out, resume=out / "last.ckpt")
    run, ckpt = open_run("demo", output_dir=out, resume=out)
    assert run.path == out and ckpt == out / "last.ckpt" and not run.created
    run.release()  # open_run claimed the folder; fit claims it again
    res = fit(toy_module(), *toy_loaders(), output_dir=out, resume=out, epochs=2, progress=False)
    assert res.epochs_run == 2
    # but resuming into another folder that already holds files is refused like any other
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    with pytest.raises(UserInputError, match="already holds files"):
        open_run("demo", output_dir=other, resume=out)


def test_a_path_below_a_file_is_one_clean_line(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for out in (f / "run", f / "run" / "deeper", f):
        with pytest.raises(UserInputError) as e:
            open_run("demo", output_dir=out)
        assert str(f) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        fit(toy_module(), *toy_loaders(), output_dir=f / "run", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_failed_run_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyError, match="monitor"):
        fit(toy_module(), *toy_loaders(), output_dir=out, monitor="val_nope", progress=False)
    assert not out.exists()


# ---------------------------------------------------------------- issue 27, item 11
def test_the_summary_names_every_file_and_loss_png_marks_the_kept_epoch(tmp_path, monkeypatch):
    import grukit.train.plots as plots

    figures = []
    real = plots.save_figure

    def keep(fig, path, dpi=110):
        figures.append(fig)
        lines = [(line.get_label(), list(line.get_xdata())) for line in fig.axes[0].get_lines()]
        figures.append(lines)
        return real(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", keep)
    res = fit(toy_module(), *toy_loaders(), output_dir=tmp_path / "run", epochs=3, progress=False)
    lines = dict(figures[1])
    best = res.best_epoch
    assert lines[f"kept: epoch {best}"] == [best + 1, best + 1]  # x is 1-based on the plot
    res.run.write_metrics(task="toy", dataset="d", split="test", model={"mse": 0.1})
    names = ["config.json", "last.ckpt", "log.csv", "loss.png", "metrics.json", "model.safetensors"]
    assert res.run.summary() == f"run folder {res.run.path}: {', '.join(names)}"


def test_write_json_writes_big_containers_one_compact_entry_per_line(tmp_path):
    # the same JSON value as json.dumps(indent=2) (the oracle); files without a container of over
    # ROWS_FROM entries are that text byte for byte
    import math

    from grukit.train.run import ROWS_FROM, write_json

    small = {"a": 1, "b": [1.5, {"c": math.nan}], "d": {}, "e": [], "f": "x"}
    got = write_json(tmp_path / "s.json", small).read_text()
    assert got == json.dumps({**small, "b": [1.5, {"c": None}]}, indent=2) + "\n"
    n = ROWS_FROM + 1
    big = {
        "task": "forecast",
        "per_series": {f"s{i}": {"model": {"mae": i / 3, "mase": math.inf}} for i in range(n)},
        "nested": [{"ids": list(range(n))}],
    }
    text = write_json(tmp_path / "b.json", big).read_text()
    want = {
        **big,
        "per_series": {f"s{i}": {"model": {"mae": i / 3, "mase": None}} for i in range(n)},
    }
    assert json.loads(text) == want
    lines = text.splitlines()
    assert (
        lines[2] == '  "per_series": {'
        and lines[3] == '    "s0": {"model": {"mae": 0.0, "mase": null}},'
    )
    assert len(lines) < 2 * n + 20  # one line per entry, not one per value


def test_write_json_plain_json_is_written_as_it_is_but_non_finite_floats_become_null(tmp_path):
    import math

    from grukit.train.run import ROWS_FROM, PlainJSON, write_json

    for n in (3, ROWS_FROM + 5):  # the indented path and the one-entry-per-line path
        rows = PlainJSON(
            {f"s{i}": {"mae": i / 7, "mase": math.nan if i % 2 else 1.5} for i in range(n)}
        )
        got = json.loads(write_json(tmp_path / f"p{n}.json", {"per_series": rows}).read_text())
        want = {f"s{i}": {"mae": i / 7, "mase": None if i % 2 else 1.5} for i in range(n)}
        assert got == {"per_series": want}
