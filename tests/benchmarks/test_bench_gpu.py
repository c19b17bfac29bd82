"""The CPU-side parts of the GPU check (benchmarks/bench_gpu.py): argument parsing, the checks' plumbing on
CPU (--device cpu --quick) and the result file. The CUDA run itself is tests/gpu/test_cuda_routes.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arguments_are_checked(capsys):
    bench = _bench()
    for argv in (["--repeats", "0"], ["--device", "nonsense"]):
        with pytest.raises(SystemExit) as e:
            bench.parse_args(argv)
        assert e.value.code == 2
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as e:
            bench.parse_args([])  # the default device is cuda
        assert e.value.code == 2
        assert "no CUDA device" in capsys.readouterr().err
    args = bench.parse_args(["--device", "cpu", "--quick", "--out", "x.json"])
    assert args.device == torch.device("cpu") and args.quick and args.out == Path("x.json")


def test_checks_record_failures_and_exceptions():
    bench = _bench()
    c = bench.Checks()
    c.add("fine", "native", 1e-7, 1e-5)
    c.add("too far", "native", 1e-3, 1e-5)
    c.add("nan", "native", float("nan"), 1e-5)
    c.run("raises", lambda: 1 / 0)
    c.skip("skipped", "no compiler")
    assert [r["check"] for r in c.failed] == ["too far", "nan", "raises"]
    assert "ZeroDivisionError" in c.failed[-1]["exception"]


@pytest.mark.slow
def test_cpu_smoke_run_writes_the_result_file(tmp_path):
    """--device cpu --quick runs every check group and a timing row, passes, and writes a complete record."""
    bench = _bench()
    out = tmp_path / "sub" / "gpu.json"
    assert bench.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["failed"] == 0 and rec["device"]["type"] == "cpu" and rec["quick"] is True
    names = " ".join(r["check"] for r in rec["checks"])
    for group in ("plain", "variant", "autocast", "compile"):
        assert group in names
    routes = {r.get("route") for r in rec["checks"]}
    assert {"native", "variant"} <= routes or {
        "aten",
        "variant",
    } <= routes  # with or without the kernel
    (row,) = rec["timing"]
    assert row["ratio_vs_nn"]["grukit fwd"] > 0 and "nn.GRU fwd+bwd" in row["ms"]
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically
