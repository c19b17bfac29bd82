"""Recipe metrics of the shipped models with float32 weights and with bf16 or int8 weights (``grukit.quantize``).

    python benchmarks/bf16_recipes.py [--dtype bf16|int8] [--only digits,text] [--out FILE]

Each recipe's documented evaluate command runs twice in a fresh process: as shipped, and with every model
that the recipe loads (through ``grukit.train.run.load_task_model``, the one loader all recipes use) passed
through ``grukit.quantize(model, DTYPE)`` first. The numbers each command prints are recorded side by side
with their differences; nothing else changes between the two runs. ``--out`` defaults to
``benchmarks/results/<dtype>_recipes.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gru import _cpu_flags, _cpu_name

COMMANDS = {  # the evaluate commands of docs/<task>.md
    "digits": ["digits", "evaluate", "--split", "test"],
    "digits-stream": ["digits", "evaluate", "--split", "test", "--stream"],
    "sentiment": ["sentiment", "evaluate", "--split", "test"],
    "text": ["text", "perplexity"],
    "music-jsb": ["music", "evaluate", "--dataset", "jsb"],
    "translate": ["translate", "evaluate"],
}
_NUM = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def _child(mode: str, argv: list[str]) -> None:
    """Run ``grukit <argv>`` in this process, quantizing every model the recipe loads when mode is bf16."""
    import grukit
    import grukit.train.run as run

    if mode in ("bf16", "int8"):
        original = run.load_task_model

        def load_quantized(*a, **kw):
            res = original(*a, **kw)
            grukit.quantize(res[0], mode)
            n = sum(isinstance(m, (grukit.GRU, grukit.GRUCell)) for m in res[0].modules())
            print(
                f"bf16_recipes: quantized {n} GRU layer(s) of {type(res[0]).__name__} to {mode}",
                file=sys.stderr,
            )
            return res

        run.load_task_model = load_quantized
    from grukit.cli import main

    sys.argv = ["grukit", *argv]
    main()


def text_step(chars: int = 5000, dtype: str = "bf16") -> dict:
    """nats/char of the shipped text model stepping character by character (``GRU.step``, batch 1) over the
    first ``chars`` characters of the valid split, float32 and ``dtype``: this exercises the native quantized
    step."""
    import copy
    import math

    import torch
    import torch.nn.functional as F

    import grukit
    from grukit.kernels import stream
    from grukit.tasks.text.data import load_text, split_text
    from grukit.tasks.text.evaluate import load_model

    model, path = load_model(None)
    ids = model.vocab.encode(split_text(load_text(), "valid")[:chars])
    row: dict = {"model": os.path.relpath(path), "chars_scored": len(ids) - 1}
    logits_of = {}
    for mode in ("float32", dtype):
        m = copy.deepcopy(model).eval()
        if mode != "float32":
            grukit.quantize(m, mode)
        total, h, out = 0.0, None, []
        t0 = time.process_time()
        with torch.inference_mode():
            for t in range(len(ids) - 1):
                logits, h = m.step(ids[t : t + 1], h)
                out.append(logits[0])
                total += float(F.cross_entropy(logits.double(), ids[t + 1 : t + 2]))
        nats = total / (len(ids) - 1)
        row[mode] = {
            "nats_per_char": round(nats, 5),
            "perplexity": round(math.exp(nats), 4),
            "cpu_seconds": round(time.process_time() - t0, 2),
            "native_step_path": None
            if m.gru._step_plan is None
            else getattr(m.gru._step_plan, "path", None)
            or stream._NAMES[m.gru._step_plan._desc.path],
        }
        logits_of[mode] = torch.stack(out)
    row["max_abs_logit_difference"] = float((logits_of[dtype] - logits_of["float32"]).abs().max())
    row["nats_per_char_difference"] = round(
        row[dtype]["nats_per_char"] - row["float32"]["nats_per_char"], 5
    )
    row["within_1e-2"] = abs(row["nats_per_char_difference"]) <= 1e-2
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {sorted(COMMANDS)}")
    ap.add_argument(
        "--dtype", default="bf16", choices=["bf16", "int8"], help="the quantized format"
    )
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<dtype>_recipes.json")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1:])
        return
    names = args.only.split(",") if args.only else [*COMMANDS, "text-step"]
    dtype = args.dtype
    result = {
        "name": f"{dtype}_recipes",
        "command": "python benchmarks/bf16_recipes.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": _cpu_name(),
            "cpu_flags": _cpu_flags(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "runs": {},
    }
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"{dtype}_recipes.json")
    for name in names:
        if name == "text-step":
            result["runs"][name] = text_step(dtype=dtype)
            print(name, result["runs"][name], flush=True)
            out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
            continue
        row = {"command": "grukit " + " ".join(COMMANDS[name])}
        for mode in ("float32", dtype):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, *COMMANDS[name]],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
            )
            row[mode] = {
                "exit_code": proc.returncode,
                "seconds": round(time.perf_counter() - t0, 1),
                "stdout": proc.stdout.strip().splitlines()[-40:],
                "stderr_tail": proc.stderr.strip().splitlines()[-3:],
                "quantized": [
                    ln for ln in proc.stderr.splitlines() if ln.startswith("bf16_recipes:")
                ],
                "numbers": [float(v) for v in _NUM.findall(proc.stdout)],
            }
        a, b = row["float32"]["numbers"], row[dtype]["numbers"]
        if len(a) == len(b):
            # rounded to 10 decimals: the printed metrics have a few decimals, so 36.13 − 36.12 is 0.01
            row["max_abs_difference"] = round(
                max((abs(x - y) for x, y in zip(a, b)), default=0.0), 10
            )
            row["within_1e-2"] = row["max_abs_difference"] <= 1e-2
        result["runs"][name] = row
        print(
            name,
            row.get("max_abs_difference"),
            row["float32"]["seconds"],
            row[dtype]["seconds"],
            flush=True,
        )
        result["machine"]["load_average_at_end"] = list(os.getloadavg())
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
