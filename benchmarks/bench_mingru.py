"""minGRU parallel scan vs its sequential loops vs grukit.GRU: forward + backward time over T.

    python benchmarks/bench_mingru.py                       # T = 256 … 16384, batch 8, hidden 256
    python benchmarks/bench_mingru.py --lengths 256 1024 --out /tmp/x.json

Methods (input 256, hidden 256, batch 8, one layer, float32, loss = output.sum()):
    scan      MinGRU(mode="scan"): the blocked parallel scan, O(T) backward
    logscan   MinGRU(mode="logscan"): the paper's log-space scan, chunked, float64
    loop      MinGRU(mode="loop"): one input GEMM for all steps, then the recurrence step by step
    step      MinGRU.step called T times: the streaming recurrence (input projection per step too)
    gru       grukit.GRU (backend="auto": the fused CPU kernel when available, else the composite loop)
    scan_core / loop_core   the recurrence alone, h_t = a_t h_{t-1} + b_t from given a, b (T, B, H): the
              part the scan replaces (the layers above also share the input GEMM and the gate activations)
Each cell reports CPU time of this process (time.process_time; robust on a shared machine) and wall time,
best of --repeats (one run for T ≥ 4096), after one warm-up at T = 64. Results are merged into the
"mingru_scan" entry of --out (benchmarks/results/variants.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import grukit
from grukit.nn import mingru

ROOT = Path(__file__).resolve().parents[1]


def _fwd_bwd(method: str, model, x: torch.Tensor) -> None:
    if method.endswith("_core"):
        a = torch.sigmoid(x.detach()).requires_grad_()
        b = torch.rand_like(a).requires_grad_()
        h0 = torch.zeros_like(a[0])
        if method == "scan_core":
            out = mingru.scan(a, b, h0)
        else:
            h, outs = h0, []
            for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
                h = torch.addcmul(b_t, a_t, h)
                outs.append(h)
            out = torch.stack(outs)
        out.sum().backward()
        return
    if method == "step":
        h, outs = None, []
        for x_t in x.unbind(0):  # unbind: x[t] would make the backward quadratic in T
            y, h = model.step(x_t, h)
            outs.append(y)
        out = torch.stack(outs)
    elif method in ("scan", "logscan", "loop"):
        out, _ = model(x, mode=method)
    else:
        out, _ = model(x)
    out.sum().backward()


def _time(method: str, model, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        x.grad = None
        c, w = time.process_time(), time.perf_counter()
        _fwd_bwd(method, model, x)
        best_cpu = min(best_cpu, time.process_time() - c)
        best_wall = min(best_wall, time.perf_counter() - w)
    return best_cpu, best_wall


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["scan", "logscan", "loop", "step", "gru", "scan_core", "loop_core"],
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "variants.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    H, B = args.hidden, args.batch
    models = {"scan": grukit.MinGRU(H, H), "gru": grukit.GRU(H, H)}
    models["loop"] = models["step"] = models["logscan"] = models["scan"]
    models["scan_core"] = models["loop_core"] = models["scan"]
    from grukit.kernels import fused_unsupported_reason

    probe = grukit.GRU(H, H)
    gru_backend = (
        "fused"
        if fused_unsupported_reason(
            "sequence",
            x=torch.zeros(2, B, H),
            h0=torch.zeros(B, H),
            w_ih=probe.weight_ih_l0,
            w_hh=probe.weight_hh_l0,
            b_ih=probe.bias_ih_l0,
            b_hh=probe.bias_hh_l0,
            reset_after=True,
            lengths=None,
            reverse=False,
            return_gates=False,
        )
        is None
        else "composite"
    )
    warm = torch.randn(64, B, H, requires_grad=True)
    for m in args.methods:
        _fwd_bwd(m, models[m], warm)
    rows = []
    for T in args.lengths:
        x = torch.randn(T, B, H, requires_grad=True)
        row = {"T": T}
        for m in args.methods:
            cpu, wall = _time(m, models[m], x, args.repeats if T < 4096 else 1)
            row[m] = {"cpu_s": round(cpu, 4), "wall_s": round(wall, 4)}
            print(f"T={T:6d} {m:5s} cpu {cpu:8.3f} s  wall {wall:8.3f} s", flush=True)
        for m in ("logscan", "loop", "step", "gru"):
            if m in row and "scan" in row:
                row[f"speedup_scan_vs_{m}_cpu"] = round(row[m]["cpu_s"] / row["scan"]["cpu_s"], 2)
        if "scan_core" in row and "loop_core" in row:
            row["speedup_scan_core_vs_loop_core_cpu"] = round(
                row["loop_core"]["cpu_s"] / row["scan_core"]["cpu_s"], 2
            )
        rows.append(row)
    result = {
        "command": "python "
        + " ".join(
            [os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:])
        ),
        "config": {
            "batch": B,
            "input_size": H,
            "hidden_size": H,
            "layers": 1,
            "dtype": "float32",
            "threads": args.threads,
            "pass": "forward + backward, loss = output.sum()",
            "gru_backend": gru_backend,
            "seed": 0,
        },
        "machine": (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with ~4 other "
            "engineers' jobs (load average ~12-15 on 2 cores during the run): wall times are inflated "
            "and noisy; CPU times (process_time) are the comparable numbers"
        ),
        "torch": torch.__version__,
        "grukit_version": grukit.__version__,
        "rows": rows,
    }
    out = {}
    if args.out.exists():
        out = json.loads(args.out.read_text())
    out["mingru_scan"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(args.out)
    return result


if __name__ == "__main__":
    main()
