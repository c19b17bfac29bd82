"""Streaming step cost (Streamer and GRUCell at B = 8 and 1, H = 256), for A/B runs of two checkouts.

    PYTHONPATH=<checkout> python benchmarks/stream_ab.py <label>

Prints the median process CPU time per step (µs, 1 thread, 15 rounds of 300 steps); alternate the checkouts
run by run (new, old, new, old, ...). This is a benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

import grukit
from grukit.nn import Streamer


def _median_us(f: Callable[[], object], rounds: int = 15, steps: int = 300) -> float:
    for _ in range(steps):
        f()
    times = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(steps):
            f()
        times.append((time.process_time() - t) / steps * 1e6)
    return sorted(times)[rounds // 2]


def main(label: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = {}
    for B, H in ((8, 256), (1, 256)):
        streamer = Streamer(grukit.GRU(64, H).eval(), batch_size=B)
        cell = grukit.GRUCell(64, H).eval()
        x, h = torch.randn(B, 64), torch.zeros(B, H)
        with torch.no_grad():
            out[f"B{B} H{H} streamer"] = round(_median_us(lambda s=streamer, x=x: s.step(x)), 2)
            out[f"B{B} H{H} cell"] = round(_median_us(lambda c=cell, x=x, h=h: c(x, h)), 2)
    print(label, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run")
