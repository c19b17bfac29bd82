"""Training speed of the GRU variants (layer norm, recurrent dropout, zoneout) against the plain fused GRU.

    python benchmarks/bench_variants.py [--quick] [--batches 32,16,4] [--repeats 15] [--threads 1]
        [--out benchmarks/results/variants_speed.json]

For each batch it times one training step — forward and backward of ``out.sum()`` with x requiring grad, the
layer in training mode so the masks are drawn every call — of: the plain ``grukit.GRU`` (the fused kernel),
``torch.nn.GRU``, and each variant on its default route (the native variant loop) and forced onto the
composite loop (``backend="torch"``, the route the variants took before they had native kernels). All
contenders run interleaved, round by round, so machine load hits them alike; the numbers are medians of wall
and process-CPU time in ms (on a loaded machine CPU time is the steadier one), and the ratios divide by the
plain GRU's median of the same run. This is a benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import grukit

T, I, H = 100, 128, 256
VARIANTS: dict[str, dict[str, Any]] = {
    "layer_norm": {"layer_norm": True},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "zoneout": {"zoneout": 0.1},
    "all_three": {"layer_norm": True, "recurrent_dropout": 0.25, "zoneout": 0.1},
}


def cpu_info() -> dict[str, str]:
    """The CPU model and flags as lscpu reports them (empty strings where lscpu is missing)."""
    info = {"model": platform.processor() or "", "flags": ""}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            info["model"] = value.strip()
        elif key.strip() == "Flags":
            info["flags"] = value.strip()
    return info


def _step(model: torch.nn.Module, x: torch.Tensor) -> Any:
    def run() -> None:
        out = model(x)[0]
        out.sum().backward()

    return run


def contenders(batch: int) -> dict[str, Any]:
    """name → a callable running one training step at this batch (fresh parameters, shared input)."""
    torch.manual_seed(0)
    x = torch.randn(T, batch, I, requires_grad=True)
    fns = {
        "plain": _step(grukit.GRU(I, H).train(), x),
        "nn.GRU": _step(torch.nn.GRU(I, H).train(), x),
    }
    for name, opts in VARIANTS.items():
        fns[name] = _step(grukit.GRU(I, H, **opts).train(), x)
        fns[f"{name}/composite"] = _step(grukit.GRU(I, H, backend="torch", **opts).train(), x)
    return fns


def timeit(fns: dict[str, Any], repeats: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Median wall and CPU ms of each callable, interleaved round by round."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append((time.perf_counter() - t0) * 1e3)
            cpu[k].append((time.process_time() - c0) * 1e3)
    return {
        k: {"wall_ms": statistics.median(wall[k]), "cpu_ms": statistics.median(cpu[k])} for k in fns
    }


def markdown(record: dict[str, Any]) -> str:
    """The docs' table (docs/variants.md) from a result record: CPU-time ratios to the plain GRU (wall in brackets)."""

    def cell(r: dict[str, float]) -> str:
        return f"{r['ratio_cpu']:.2f}× ({r['ratio_wall']:.2f}×)"

    head = (
        "| batch | plain GRU, ms CPU | nn.GRU | layer_norm | recurrent_dropout | zoneout | all three |"
        " composite loop: layer_norm / recurrent_dropout / zoneout |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for row in record["rows"]:
        r = row["results"]
        comp = " / ".join(
            f"{r[k + '/composite']['ratio_cpu']:.2f}×" for k in VARIANTS if k != "all_three"
        )
        lines.append(
            f"| {row['batch']} | {r['plain']['cpu_ms']:.1f} | {cell(r['nn.GRU'])} | {cell(r['layer_norm'])} | "
            f"{cell(r['recurrent_dropout'])} | {cell(r['zoneout'])} | {cell(r['all_three'])} | {comp} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--batches", default="32,16,4", help="comma-separated batch sizes (default 32,16,4)"
    )
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per batch (default 15)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="3 rounds, for a smoke run")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batches expects integers separated by commas, got {args.batches!r}")
    if not batches or min(batches) < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--batches, --repeats and --threads must be positive")
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    repeats = 3 if args.quick else args.repeats
    status = grukit.kernels.status()
    rows = []
    for batch in batches:
        res = timeit(contenders(batch), repeats)
        base = res["plain"]
        for r in res.values():
            r["ratio_wall"] = r["wall_ms"] / base["wall_ms"]
            r["ratio_cpu"] = r["cpu_ms"] / base["cpu_ms"]
        rows.append({"batch": batch, "results": res})
        print(
            f"batch {batch} (T, I, H) = ({T}, {I}, {H}), {args.threads} thread(s), {repeats} rounds"
        )
        for name, r in res.items():
            print(
                f"  {name:30s} {r['wall_ms']:8.1f} ms wall {r['cpu_ms']:8.1f} ms cpu"
                f"   ×{r['ratio_wall']:.2f} wall ×{r['ratio_cpu']:.2f} cpu (vs plain)"
            )
    record = {
        "command": "python "
        + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "what": "one training step (forward + backward of out.sum(), x requires grad), layers in train mode",
        "shape": {"T": T, "I": I, "H": H},
        "threads": args.threads,
        "repeats": repeats,
        "cpu": cpu_info(),
        "load_average_at_start": load_at_start,
        "note": "a shared machine (2 cores, several jobs): wall time is noisy, CPU time steadier",
        "torch": torch.__version__,
        "kernel": {k: status.get(k) for k in ("native", "isa", "source")},
        "rows": rows,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(args.out)  # never a partial file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
