"""grukit.load checks the stored config against the safetensors header before building anything: crafted
files that claim a huge model are refused without the process growing (peak RSS measured in a subprocess).
"""

import dataclasses
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import grukit
from grukit.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]


def _craft(path: Path, model, **config_changes) -> Path:
    """A safetensors file holding ``model``'s real (small) tensors but a config edited as given."""
    from safetensors.torch import save_file

    header = {
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": {**dataclasses.asdict(model.config), **config_changes},
        "task": None,
        "grukit_version": grukit.__version__,
    }
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"grukit": json.dumps(header)},
    )
    return path


CLAIMS = {
    "hidden_8192": {"hidden_size": 8192},
    "weights_2e20_by_2e12": {"hidden_size": 2**20, "input_size": 2**12},
    "layers_1e6": {"num_layers": 10**6},
}


@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_huge_config_refused_in_process(tmp_path, claim):
    path = _craft(tmp_path / "m.safetensors", grukit.GRU(4, 8), **CLAIMS[claim])
    assert path.stat().st_size < 10_000
    with pytest.raises(UserInputError, match=r"m\.safetensors") as e:
        grukit.load(path)
    msg = str(e.value)
    assert "bigger GRU than the file's tensors hold" in msg or "shape" in msg


_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    import grukit
    from grukit.errors import UserInputError
    grukit.load(sys.argv[2])  # a valid small file first: every lazy import and allocator pool warmed up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    try:
        grukit.load(sys.argv[1])
        outcome = "loaded"
    except UserInputError as e:
        outcome = "refused: " + str(e)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "grew_kb": after - before, "s": time.perf_counter() - t}))
    """
)


@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_huge_config_refused_while_process_grows_under_100_mb(tmp_path, claim):
    bad = _craft(tmp_path / "bad.safetensors", grukit.GRU(4, 8), **CLAIMS[claim])
    good = grukit.save(grukit.GRU(4, 8), tmp_path / "good.safetensors")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(bad), str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["outcome"].startswith("refused: "), res
    assert res["grew_kb"] < 100 * 1024, res  # ru_maxrss is in KiB on Linux


def test_wrong_dtype_kind_refused_before_building(tmp_path):
    from safetensors.torch import save_file

    m = grukit.GRU(3, 5)
    header = {
        "class": "grukit.nn.gru:GRU",
        "config": dataclasses.asdict(m.config),
        "grukit_version": grukit.__version__,
    }
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    tensors["weight_hh_l0"] = torch.zeros(15, 5, dtype=torch.int32)
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"grukit": json.dumps(header)})
    with pytest.raises(UserInputError, match="weight_hh_l0.*dtype"):
        grukit.load(tmp_path / "m.safetensors")


def test_valid_file_still_loads_exactly(tmp_path):
    torch.manual_seed(0)
    m = grukit.GRU(3, 5, 2, bidirectional=True)
    for p in m.parameters():
        torch.nn.init.normal_(p)
    loaded = grukit.load(grukit.save(m, tmp_path / "m.safetensors"))
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_save_gives_the_mode_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        path = grukit.save(grukit.GRU(2, 3), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


# ---------------------------------------------------------------- the tensor checksum (issue 27, item 9)
def _flip_one_bit_in_tensor_data(path: Path) -> None:
    """Flip the lowest bit of the last byte (tensor data; the JSON header is at the front)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_refused_and_the_checksum_is_independent(tmp_path):
    from safetensors.torch import load_file

    gru = grukit.GRU(3, 5, num_layers=2)
    path = grukit.save(gru, tmp_path / "m.safetensors")
    header = grukit.serialization.read_header(path)
    # the stored checksum, recomputed here with hashlib over the file's own tensors (not the save path)
    import hashlib

    h = hashlib.sha256()
    tensors = load_file(str(path))
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    assert header["tensors_sha256"] == h.hexdigest()
    _flip_one_bit_in_tensor_data(path)
    with pytest.raises(UserInputError, match="do not match the checksum"):
        grukit.load(path)


def test_files_without_a_checksum_still_load(tmp_path):
    gru = grukit.GRU(3, 5)
    path = _craft(
        tmp_path / "old.safetensors", gru
    )  # the header of grukit versions before the checksum
    assert "tensors_sha256" not in grukit.serialization.read_header(path)
    same = grukit.load(path)
    for k, v in gru.state_dict().items():
        assert torch.equal(same.state_dict()[k], v)
    for shipped in sorted((ROOT / "grukit" / "pretrained").glob("*.safetensors")):
        grukit.load(shipped)  # shipped models, with or without a checksum


def test_non_finite_parameters_are_refused(tmp_path):
    gru = grukit.GRU(3, 5)
    with torch.no_grad():
        gru.weight_hh_l0[1, 2] = float("inf")
    path = grukit.save(gru, tmp_path / "inf.safetensors")
    with pytest.raises(UserInputError, match="'weight_hh_l0' holds infinite values"):
        grukit.load(path)
