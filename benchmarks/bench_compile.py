"""torch.compile with grukit.GRU vs torch.nn.GRU: first-call compile time and the compiled training step (CPU).

    python benchmarks/bench_compile.py [--out benchmarks/results/compile.json]

A model holding a GRU (I=32, H=64, batch 8) and a linear head. For T=200 it measures the first call of the
compiled model, forward + backward of a loss (the compile time users wait for): grukit with
``torch.compile(m)``, with ``fullgraph=True``, and torch.nn.GRU with ``torch.compile(m)`` (nn.GRU does not
support fullgraph). Each first call runs in a fresh process with an empty inductor cache. For T=50 it then times the compiled training step (forward + backward, median of
repeated calls after warm-up) against the same model in eager mode. Default backend (inductor), float32,
one thread. A benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import grukit

I, H, B = 32, 64, 8


class Model(torch.nn.Module):
    def __init__(self, gru: torch.nn.Module) -> None:
        super().__init__()
        self.gru = gru
        self.head = torch.nn.Linear(H, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out).mean()


class _NoRecurrence(torch.nn.Module):
    """A Linear in the GRU's place: the same head and loss, no recurrence (inductor's fixed cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(I, H)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.tanh(self.proj(x)), None


def _models(seed: int = 0) -> dict[str, Model]:
    torch.manual_seed(seed)
    ref = Model(torch.nn.GRU(I, H, batch_first=True))
    ours = Model(grukit.from_torch(ref.gru))
    ours.head.load_state_dict(ref.head.state_dict())
    return {"nn.GRU": ref, "grukit": ours, "no_recurrence": Model(_NoRecurrence())}


def _step(model: torch.nn.Module, x: torch.Tensor) -> float:
    loss = model(x)
    loss.backward()
    return float(loss.detach())


def _first_call(kind: str, fullgraph: bool, T: int) -> tuple[float, float]:
    """The first compiled call, in a fresh process with an empty inductor cache (what a new user waits for)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "TORCHINDUCTOR_CACHE_DIR": cache,
            "TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
            "TORCHINDUCTOR_AUTOGRAD_CACHE": "0",
        }
        cmd = [sys.executable, __file__, "--one", kind, str(int(fullgraph)), str(T)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["seconds"], res["loss"]


def _one(kind: str, fullgraph: bool, T: int) -> None:
    torch.set_num_threads(1)
    model = _models()[kind]
    x = torch.randn(B, T, I)
    importlib.import_module("torch._inductor")  # its import time is not compile time

    t0 = time.perf_counter()
    compiled = torch.compile(model, fullgraph=fullgraph)
    loss = _step(compiled, x)
    print(json.dumps({"seconds": time.perf_counter() - t0, "loss": loss}))


def _median_ms(fn, x: torch.Tensor, repeats: int, inner: int) -> float:
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn(x)
        times.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "compile.json")
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile-T", type=int, default=200)
    ap.add_argument("--step-T", type=int, default=50)
    ap.add_argument("--one", nargs=3, metavar=("KIND", "FULLGRAPH", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        _one(args.one[0], bool(int(args.one[1])), int(args.one[2]))
        return
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    load0 = list(os.getloadavg())
    first = {}
    for name, kind, fg in (
        ("grukit", "grukit", False),
        ("grukit_fullgraph", "grukit", True),
        ("nn.GRU", "nn.GRU", False),
        ("no_recurrence_fullgraph", "no_recurrence", True),
    ):
        secs, loss = _first_call(kind, fg, args.compile_T)
        first[name] = {"seconds": round(secs, 2), "loss": loss}
        print(
            f"first compiled call T={args.compile_T} fwd+bwd {name:<17} {secs:7.2f} s", flush=True
        )
    step = {}
    x = torch.randn(B, args.step_T, I)
    for kind in (
        "grukit",
        "nn.GRU",
    ):  # nn.GRU: compiled without fullgraph, which it does not support
        torch._dynamo.reset()
        model = _models()[kind]
        compiled = torch.compile(model, fullgraph=kind == "grukit")
        fns = {
            "eager": lambda v, m=model: _step(m, v),
            "compiled": lambda v, c=compiled: _step(c, v),
        }
        step[kind] = {
            mode: round(_median_ms(fn, x, args.repeats, 20), 3) for mode, fn in fns.items()
        }
        print(f"training step T={args.step_T} {kind:<8} {step[kind]}", flush=True)
    result = {
        "name": "compile",
        "command": "python benchmarks/bench_compile.py"
        + ("" if not argv else " " + " ".join(argv)),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": _cpu_name(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": load0,
            "load_average_at_end": list(os.getloadavg()),
            "note": "shared 2-core VM loaded by other jobs; compare within this run",
        },
        "torch": torch.__version__,
        "grukit": grukit.__version__,
        "threads": 1,
        "seed": 0,
        "model": {"input_size": I, "hidden_size": H, "batch": B, "head": "Linear(H, 1)"},
        "first_compiled_call_s": {"T": args.compile_T, **first},
        "first_call_ratio_vs_nn_gru": round(
            first["grukit"]["seconds"] / first["nn.GRU"]["seconds"], 2
        ),
        "training_step_ms": {"T": args.step_T, "median_of": args.repeats, **step},
        "compiled_step_speedup_vs_grukit_eager": round(
            step["grukit"]["eager"] / step["grukit"]["compiled"], 2
        ),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
