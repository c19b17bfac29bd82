"""load_task_model: --checkpoint (run folder or file), the shipped default, and refusal of other models."""

import pytest
import torch

import grukit
from grukit.errors import UserInputError
from grukit.train.run import load_task_model


def test_loads_file_and_run_folder_and_refuses_other_kinds(tmp_path):
    gru = grukit.GRU(3, 4)
    path = grukit.save(gru, tmp_path / "run" / "model.safetensors")
    for ckpt in (path, tmp_path / "run"):
        model, got = load_task_model(ckpt, tmp_path / "none.safetensors", grukit.GRU, "demo")
        assert got == path and torch.equal(model.weight_hh_l0, gru.weight_hh_l0)
    model, got = load_task_model(None, path, grukit.GRU, "demo")  # the shipped default
    assert got == path
    with pytest.raises(UserInputError, match="holds a GRU, not a demo model \\(GRUCell\\)"):
        load_task_model(path, path, grukit.GRUCell, "demo")
    with pytest.raises(UserInputError, match="no shipped demo model"):
        load_task_model(None, tmp_path / "none.safetensors", grukit.GRU, "demo")
