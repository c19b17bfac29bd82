"""benchmarks/bench_variants.py: the docs' speed table comes from the recorded result, and the script runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_variants", ROOT / "benchmarks" / "bench_variants.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_variants_page_table_comes_from_the_recorded_result():
    bench = _bench()
    rec = json.loads((ROOT / "benchmarks" / "results" / "variants_speed.json").read_text())
    assert "benchmarks/bench_variants.py" in rec["command"] and rec["cpu"]["model"]
    assert rec["threads"] == 1 and rec["shape"] == {"T": 100, "I": 128, "H": 256}
    assert {row["batch"] for row in rec["rows"]} >= {32, 4}
    assert bench.markdown(rec) in (ROOT / "docs" / "variants.md").read_text()


@pytest.mark.slow
def test_quick_run_writes_a_complete_record(tmp_path):
    bench = _bench()
    out = tmp_path / "v.json"
    assert bench.main(["--quick", "--batches", "2", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    (row,) = rec["rows"]
    assert row["results"]["plain"]["ratio_cpu"] == 1.0
    assert set(row["results"]) == {"plain", "nn.GRU"} | {
        f"{k}{s}" for k in bench.VARIANTS for s in ("", "/composite")
    }
    assert bench.markdown(rec).count("\n") == 2
