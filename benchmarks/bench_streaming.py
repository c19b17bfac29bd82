"""Where a streaming step's µs go: the bare native step against GRUCell.forward, GRU.step and the Streamer,
float32 and bf16 weights (every bf16 kernel path this CPU runs), batch 1, I=64, H = 256, 512, 1024;
with ``--int8`` the best bf16 path and every int8 path instead (default out ``streaming_int8.json``).

    python benchmarks/bench_streaming.py [--repeats 5] [--int8] [--out benchmarks/results/streaming_bf16.json]

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


def bench(H: int, repeats: int, steps: int, int8: bool = False) -> dict:
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
        if int8:  # the best bf16 path, then every int8 path this CPU runs
            groups = [groups[0], ("bf16", stream.active_path(True))] + [
                (p, p)
                for p, c in stream.INT8_PATHS.items()
                if stream._lib.grukit_step_i8_path_ok(c)
            ]
            row["int8_paths"] = [p for _, p in groups[2:]]
        row["f32_path"] = stream.active_path(False)
        row["bf16_paths"] = [p for _, p in groups[1:] if p.startswith("bf16")]
        for _name, path in groups:
            if path is None:
                fns = variants(cell, gru, "")
            else:
                stream.set_path(path)
                fmt = "int8" if path.startswith("int8") else "bf16"
                qc = grukit.quantize(copy.deepcopy(cell), fmt)
                qg = grukit.quantize(copy.deepcopy(gru), fmt)
                fns = variants(qc, qg, "_" + path.replace("-", "_"))
            fns["nn_grucell"] = loop(lambda: ref(x, h))
            got = _time(fns, repeats, steps)
            nn_us.append(got.pop("nn_grucell"))
            us.update(got)
        stream.set_path("bf16-auto")
        stream.set_path("int8-auto")
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
    if int8:
        i8 = "_" + stream.active_path("int8").replace("-", "_")
        wbytes = 3 * H * (H + I)  # int8 W_ih and W_hh: the bytes one step reads
        row["int8_weight_bytes_per_step"] = wbytes
        row["int8_native_gb_per_s"] = round(wbytes / us["native" + i8] / 1e3, 1)
        row["int8_native_gop_per_s"] = round(2 * wbytes / us["native" + i8] / 1e3, 1)
        row["bf16_native_gb_per_s"] = round(2 * wbytes / us["native" + best] / 1e3, 1)
        row["f32_native_gb_per_s"] = round(4 * wbytes / us["native"] / 1e3, 1)
        row["ratios"].update(
            {
                "int8_cell_vs_nn_grucell": round(us["nn_grucell"] / us["cell" + i8], 2),
                "int8_cell_vs_bf16_cell": round(us["cell" + best] / us["cell" + i8], 2),
                "int8_streamer_vs_nn_grucell": round(us["nn_grucell"] / us["streamer" + i8], 2),
                "int8_streamer_vs_bf16_streamer": round(
                    us["streamer" + best] / us["streamer" + i8], 2
                ),
                "int8_native_vs_bf16_native": round(us["native" + best] / us["native" + i8], 2),
            }
        )
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--int8", action="store_true", help="the best bf16 path and the int8 paths")
    ap.add_argument(
        "--out", default=None, help="default: results/streaming_bf16.json (--int8: _int8)"
    )
    args = ap.parse_args(argv)
    name = "streaming_int8" if args.int8 else "streaming_bf16"
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"{name}.json")
    torch.set_num_threads(1)
    result = {
        "name": name,
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
        row = bench(
            H, args.repeats, args.steps if H < 1024 else max(args.steps // 4, 100), args.int8
        )
        result["rows"].append(row)
        print(H, row["ratios"], row["cpu_us_per_step"], flush=True)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
