"""grukit.save / grukit.load: the single-file model format of docs/conventions.md (safetensors tensors + a
"grukit" JSON header), its round trip for every layer, and what it refuses. Refusals of oversized or
ill-typed headers before anything is built live in tests/test_serialization.py."""

import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from support import randomize

import grukit
from grukit.errors import UserInputError


@pytest.mark.parametrize(
    "make",
    [
        lambda: grukit.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True),
        lambda: grukit.GRU(3, 5, 2, bidirectional=True, reset_after=False, dropout=0.1),
        lambda: grukit.GRU(3, 4, reset_after=False, bias=False),
        lambda: grukit.GRU(3, 4, dtype=torch.float64),
        lambda: grukit.GRUCell(3, 5, bias=False, dtype=torch.float64),
    ],
    ids=["stacked", "reset-before-dropout", "no-bias", "float64", "cell"],
)
def test_round_trip_rebuilds_config_and_tensors(tmp_path, make):
    model = randomize(make()).eval()
    path = grukit.save(model, tmp_path / "m.safetensors", task="demo")
    with safe_open(str(path), framework="pt") as f:  # the documented layout, read without grukit
        header = json.loads(f.metadata()["grukit"])
        assert set(f.keys()) == set(model.state_dict())
    assert header["config"] == model.config.__dict__ and header["task"] == "demo"
    assert header["grukit_version"] == grukit.__version__
    loaded, header = grukit.load(path, return_header=True)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    assert header["task"] == "demo"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_fp16_storage_casts_back(tmp_path):
    m = randomize(grukit.GRU(3, 5))
    path = grukit.save(m, tmp_path / "m.safetensors", dtype=torch.float16)
    loaded = grukit.load(path)
    assert loaded.weight_ih_l0.dtype == torch.float32
    assert (loaded.weight_ih_l0 - m.weight_ih_l0).abs().max() < 1e-2


def _rewrite(path, out, tensors=None, header=None):
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    save_file(
        tensors(t) if tensors else t,
        str(out),
        metadata={"grukit": header(meta["grukit"]) if header else meta["grukit"]},
    )
    return out


def test_refuses_tensors_that_do_not_match_the_config(tmp_path):
    good = grukit.save(grukit.GRU(3, 4, num_layers=2), tmp_path / "good.safetensors")
    cases = {
        "missing": (
            lambda t: {k: v for k, v in t.items() if k != "bias_hh_l1"},
            r"missing \['bias_hh_l1'\]",
        ),
        "extra": (
            lambda t: {**t, "weight_ih_l2": torch.zeros(12, 4)},
            r"unexpected \['weight_ih_l2'\]",
        ),
        "shape": (
            lambda t: {**t, "weight_hh_l0": torch.zeros(12, 5)},
            r"'weight_hh_l0' has shape \(12, 5\).*\(12, 4\)",
        ),
        "dtype": (
            lambda t: {**t, "weight_ih_l0": torch.zeros(12, 3, dtype=torch.int64)},
            "dtype torch.int64",
        ),
    }
    for name, (edit, msg) in cases.items():
        bad = _rewrite(good, tmp_path / f"{name}.safetensors", tensors=edit)
        with pytest.raises(UserInputError, match=msg):
            grukit.load(bad)


def test_refuses_corrupt_files_with_clear_messages(tmp_path):
    good = grukit.save(grukit.GRU(3, 4), tmp_path / "good.safetensors")
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[:-8])
    (tmp_path / "short.safetensors").write_bytes(data[:5])
    (tmp_path / "zeros.safetensors").write_bytes(b"\x00" * 64)
    for name in ("trunc", "short", "zeros"):
        with pytest.raises(UserInputError, match="not a readable safetensors file"):
            grukit.load(tmp_path / f"{name}.safetensors")
    with pytest.raises(UserInputError, match="not found"):
        grukit.load(tmp_path / "missing.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(UserInputError, match="without grukit metadata"):
        grukit.load(tmp_path / "plain.safetensors")
    headers = {
        "json": (lambda h: h[:-3], "corrupt grukit metadata"),
        "noconfig": (
            lambda h: json.dumps({k: v for k, v in json.loads(h).items() if k != "config"}),
            "corrupt grukit metadata",
        ),
        "badcfg": (
            lambda h: json.dumps(
                {**json.loads(h), "config": {**json.loads(h)["config"], "hidden_size": -1}}
            ),
            "does not build a GRU.*hidden_size",
        ),
        "foreign": (
            lambda h: json.dumps({**json.loads(h), "class": "os:system"}),
            "not a grukit model class",
        ),
        "notmodel": (
            lambda h: json.dumps({**json.loads(h), "class": "grukit.serialization:save"}),
            "not a grukit model class",
        ),
        "gone": (
            lambda h: json.dumps({**json.loads(h), "class": "grukit.nn.gru:Nope"}),
            "does not have",
        ),
    }
    for name, (edit, msg) in headers.items():
        with pytest.raises(UserInputError, match=msg):
            grukit.load(_rewrite(good, tmp_path / f"{name}.safetensors", header=edit))


class _Boom:
    """Unpickling this creates a marker file: proof that something unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(UserInputError):
        grukit.load(evil)
    torch.save({"weight_ih_l0": _Boom(marker)}, str(tmp_path / "evil2.safetensors"))
    with pytest.raises(UserInputError):
        grukit.load(tmp_path / "evil2.safetensors")
    assert not marker.exists()
    pickle.loads(evil.read_bytes()).close()  # the payload itself is live: it would have fired
    assert marker.exists()


def test_save_refuses_non_grukit_modules_and_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="grukit"):
        grukit.save(torch.nn.GRU(3, 4), tmp_path / "t.safetensors")
    assert list(tmp_path.iterdir()) == []
