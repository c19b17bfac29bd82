"""Where a streaming step's µs go: the bare native step against GRUCell.forward, GRU.step and the Streamer,
float32 and bf16 weights (every bf16 kernel path this CPU runs), batch 1, I=64, H = 256, 512, 1024.

    python benchmarks/bench_streaming.py [--repeats 5] [--out benchmarks/results/streaming_bf16.json]

Times are medians over rounds of process CPU time (1 thread), in µs per step; the contenders are interleaved
round by round within each kernel path's group (nn.GRUCell runs in every group; its median over groups is
reported) so machine load hits them alike. ``native`` is the plan's ctypes call alone (no checks, no
allocation); ``plan`` adds the fast path's checks and the output allocation; ``cell`` / ``gru_step`` add the
module call. This is a benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import grukit
from grukit.kernels import stream
from grukit.nn import Streamer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gru import _cpu_flags, _cpu_name

HIDDEN = [256, 512, 1024]


def _time(fns: dict, repeats: int, steps: int) -> dict:
    res: dict = {k: [] for k in fns}
    for f in fns.values():
        f(50)
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.process_time_ns()
            f(steps)
            res[k].append((time.process_time_ns() - t) / steps / 1e3)
    return {k: round(statistics.median(v), 2) for k, v in res.items()}


def bench(H: int, repeats: int, steps: int) -> dict:
    I = 64
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(I, H)
    cell = grukit.GRUCell(I, H)
    cell.load_state_dict(ref.state_dict())
    gru = grukit.GRU(I, H)
    gru.load_state_dict({k + "_l0": v for k, v in ref.state_dict().items()})
    x, h = torch.randn(1, I), torch.randn(1, H)
    h3 = h.unsqueeze(0)
    out = torch.empty(1, H)
    row: dict = {"batch": 1, "input": I, "hidden": H}
    with torch.inference_mode():

        def loop(fn):
            def f(n):
                for _ in range(n):
                    fn()

            return f

        def variants(c, g, tag):
            c(x, h)
            g.step(x, h3)
            plan, P = c._step_plan, c._parameters
            s = Streamer(c)
            return {
                f"native{tag}": loop(
                    lambda: plan._fn(plan._ref, 1, x.data_ptr(), h.data_ptr(), out.data_ptr(), None)
                ),
                f"plan{tag}": loop(lambda: plan.cell(P, x, h)),
                f"cell{tag}": loop(lambda: c(x, h)),
                f"gru_step{tag}": loop(lambda: g.step(x, h3)),
                f"streamer{tag}": loop(lambda: s.step(x)),
            }

        # one group per kernel path (set_path rebuilds every plan), each with nn.GRUCell timed alongside
        us: dict = {}
        nn_us = []
        groups = [("f32", None)] + [
            (p, p)
            for p in ("bf16-dpbf16", "bf16-avx512", "bf16-generic")
            if stream._lib.grukit_step_path_ok(stream.PATHS[p])
        ]
        row["f32_path"] = stream.active_path(False)
        row["bf16_paths"] = [p for _, p in groups[1:]]
        for _name, path in groups:
            if path is None:
                fns = variants(cell, gru, "")
            else:
                stream.set_path(path)
                qc = grukit.quantize(copy.deepcopy(cell))
                qg = grukit.quantize(copy.deepcopy(gru))
                fns = variants(qc, qg, "_" + path.replace("-", "_"))
            fns["nn_grucell"] = loop(lambda: ref(x, h))
            got = _time(fns, repeats, steps)
            nn_us.append(got.pop("nn_grucell"))
            us.update(got)
        stream.set_path("bf16-auto")
        us["nn_grucell"] = round(statistics.median(nn_us), 2)
    row["cpu_us_per_step"] = us
    best = "_" + stream.active_path(True).replace("-", "_")
    row["ratios"] = {
        "cell_vs_nn_grucell": round(us["nn_grucell"] / us["cell"], 2),
        "streamer_vs_nn_grucell": round(us["nn_grucell"] / us["streamer"], 2),
        "python_overhead_cell_us": round(us["cell"] - us["native"], 2),
        "bf16_cell_vs_f32_cell": round(us["cell"] / us["cell" + best], 2),
        "bf16_streamer_vs_f32_streamer": round(us["streamer"] / us["streamer" + best], 2),
        "bf16_streamer_vs_f32_cell": round(us["cell"] / us["streamer" + best], 2),
    }
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "streaming_bf16.json")
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    result = {
        "name": "streaming_bf16",
        "command": "python benchmarks/bench_streaming.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": _cpu_name(),
            "cpu_flags": _cpu_flags(),
            "load_average_at_start": list(os.getloadavg()),
            "threads": 1,
        },
        "torch": torch.__version__,
        "units": "µs per step, median process CPU time",
        "rows": [],
    }
    for H in HIDDEN:
        row = bench(H, args.repeats, args.steps if H < 1024 else max(args.steps // 4, 100))
        result["rows"].append(row)
        print(H, row["ratios"], row["cpu_us_per_step"], flush=True)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
