"""Model files: config + tensors round trip through grukit.save / grukit.load."""

import json

import pytest
import torch

import grukit
from grukit.errors import UserInputError

from ._util import randomize


@pytest.mark.parametrize(
    "make",
    [
        lambda: grukit.GRU(
            3, 5, 2, batch_first=True, bidirectional=True, reset_after=False, dropout=0.1
        ),
        lambda: grukit.GRUCell(3, 5, bias=False, dtype=torch.float64),
    ],
)
def test_round_trip(tmp_path, make):
    m = randomize(make()).eval()
    path = grukit.save(m, tmp_path / "m.safetensors", task="demo")
    loaded, header = grukit.load(path, return_header=True)
    assert type(loaded) is type(m) and loaded.config == m.config
    assert header["task"] == "demo" and header["grukit_version"] == grukit.__version__
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_fp16_storage_casts_back(tmp_path):
    m = randomize(grukit.GRU(3, 5))
    path = grukit.save(m, tmp_path / "m.safetensors", dtype=torch.float16)
    loaded = grukit.load(path)
    assert loaded.weight_ih_l0.dtype == torch.float32
    assert (loaded.weight_ih_l0 - m.weight_ih_l0).abs().max() < 1e-2


def test_mismatched_tensors_refused(tmp_path):
    from safetensors.torch import save_file

    m = grukit.GRU(3, 5)
    header = {
        "class": "grukit.nn.gru:GRU",
        "config": {**m.config.__dict__, "hidden_size": 6},
        "task": None,
        "grukit_version": grukit.__version__,
    }
    path = tmp_path / "bad.safetensors"
    save_file(
        {k: v.contiguous() for k, v in m.state_dict().items()},
        str(path),
        metadata={"grukit": json.dumps(header)},
    )
    with pytest.raises(UserInputError, match="weight_ih_l0.*shape"):
        grukit.load(path)


def test_not_a_model_file(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(UserInputError, match="not a readable safetensors"):
        grukit.load(p)
    with pytest.raises(UserInputError, match="not found"):
        grukit.load(tmp_path / "missing.safetensors")
