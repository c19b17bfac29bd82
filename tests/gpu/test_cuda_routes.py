"""Every route grukit takes on CUDA (marked ``cuda``; skipped without a CUDA device): ``torch._VF.gru``
(cuDNN) against the composite loop and the float64 reference, both reset placements, lengths, the variants,
autocast bfloat16/float16 and torch.compile. The checks are benchmarks/bench_gpu.py's, so the script and the
tests cannot drift apart; run ``pytest -m cuda tests/gpu`` (or the script) on a GPU machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import grukit
from grukit.kernels import route, vf

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dev():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda")


def test_routes_on_cuda(dev, monkeypatch):
    x = torch.randn(5, 2, 3, device=dev)
    assert route.choose(grukit.GRU(3, 4).to(dev)._spec(), x).route == "aten"
    assert route.choose(grukit.GRU(3, 4, reset_after=False).to(dev)._spec(), x).route == "op"
    assert route.choose(grukit.GRU(3, 4, layer_norm=True).to(dev)._spec(), x).route == "variant"
    calls = []
    real = vf.gru_stack
    monkeypatch.setattr(vf, "gru_stack", lambda *a, **k: calls.append(1) or real(*a, **k))
    grukit.GRU(3, 4).to(dev)(x)
    assert calls  # cuDNN ran


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("group", ["plain", "variants"])
def test_cuda_against_composite_and_reference(dev, dtype, group):
    bench = _bench()
    c = bench.Checks()
    (bench.check_plain if group == "plain" else bench.check_variants)(c, dev, dtype)
    assert c.rows and not c.failed, c.failed


def test_cuda_autocast(dev):
    bench = _bench()
    c = bench.Checks()
    bench.check_autocast(c, dev)
    assert c.rows and not c.failed, c.failed


def test_cuda_compile(dev):
    bench = _bench()
    c = bench.Checks()
    bench.check_compile(c, dev)
    assert not c.failed, c.failed
