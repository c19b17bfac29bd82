"""grukit.train.resumed_config: a resumed run keeps its stored options and refuses conflicting ones."""

import dataclasses
import json

import pytest

from grukit.errors import UserInputError
from grukit.train import resumed_config


@dataclasses.dataclass
class Cfg:
    hidden: int = 8
    data: str = "a.csv"
    lr: float = 1e-3
    sizes: tuple[int, ...] = (1, 2)
    epochs: int = 1


def _run(tmp_path, stored):
    (tmp_path / "last.ckpt").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps(stored))
    return tmp_path


def test_restores_stored_options_and_keeps_new_epochs(tmp_path):
    run = _run(tmp_path, {"hidden": 32, "data": "b.csv", "lr": 0.01, "sizes": [3], "epochs": 2})
    got = resumed_config(run, Cfg(epochs=7))
    assert got == Cfg(hidden=32, data="b.csv", lr=0.01, sizes=[3], epochs=7)


def test_accepts_the_ckpt_file_and_unchanged_explicit_values(tmp_path):
    run = _run(tmp_path, {"hidden": 32, "data": "b.csv", "sizes": [1, 2], "epochs": 2})
    got = resumed_config(run / "last.ckpt", Cfg(hidden=32, data="b.csv", epochs=3))
    assert (got.hidden, got.data, got.lr, got.epochs) == (32, "b.csv", 1e-3, 3)


def test_refuses_a_conflicting_option_naming_it(tmp_path):
    run = _run(tmp_path, {"hidden": 32, "data": "b.csv", "epochs": 2})
    with pytest.raises(UserInputError, match=r"--data 'b.csv', got 'c.csv'"):
        resumed_config(run, Cfg(data="c.csv", epochs=3))


def test_given_names_the_explicit_options(tmp_path):
    run = _run(tmp_path, {"hidden": 32, "data": "b.csv", "epochs": 2})
    # the default value passed explicitly still conflicts when the CLI says it was given
    with pytest.raises(UserInputError, match="--hidden"):
        resumed_config(run, Cfg(hidden=8, epochs=3), given={"hidden", "epochs"})
    # and a non-default value not given (e.g. filled in by code) is not a conflict
    assert resumed_config(run, Cfg(data="z.csv"), given=set()).data == "b.csv"


def test_missing_config_and_missing_checkpoint(tmp_path):
    with pytest.raises(UserInputError, match="last.ckpt"):
        resumed_config(tmp_path, Cfg())
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(UserInputError, match="config.json is missing"):
        resumed_config(tmp_path, Cfg())
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserInputError, match="JSON object"):
        resumed_config(tmp_path, Cfg())


# ---------------------------------------------------------------- issue 27, item 2: stored options win
def test_stored_epochs_win_unless_given(tmp_path):
    run = _run(tmp_path, {"hidden": 32, "epochs": 60, "status": "running"})
    # --resume RUN alone: the CLI's default (here 1) must not replace the stored budget of 60
    assert resumed_config(run, Cfg(), given=set()).epochs == 60
    assert resumed_config(run, Cfg(epochs=1), given={"epochs"}).epochs == 1  # given: the new total


def test_a_complete_run_is_already_complete_unless_more_epochs_are_given(tmp_path):
    from grukit.train import RunAlreadyComplete

    run = _run(tmp_path, {"hidden": 32, "epochs": 5, "status": "complete"})
    for cfg, given in ((Cfg(), set()), (Cfg(epochs=5), {"epochs"}), (Cfg(epochs=3), {"epochs"})):
        with pytest.raises(RunAlreadyComplete, match=r"already complete \(epochs 5\)"):
            resumed_config(run, cfg, given=given)
    assert resumed_config(run, Cfg(epochs=8), given={"epochs"}).epochs == 8
    # an interrupted run (any status but complete) resumes whatever --epochs says
    run = _run(tmp_path, {"hidden": 32, "epochs": 5, "status": "interrupted"})
    assert resumed_config(run, Cfg(), given=set()).epochs == 5
