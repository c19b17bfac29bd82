"""CPU time per character of `grukit text perplexity` (shipped text-shakespeare model), written to
benchmarks/results/perplexity_speed.json.

    python benchmarks/bench_perplexity.py --chars 20000 --threads 1

Measures, in one run on the same machine:
- ``score_text`` (what the command calls): each chunk of 1,024 characters is one GRU call on the whole
  block (the fused sequence path), at --streams 1 and 8;
- the baseline it replaces: a Python loop of one ``model.step`` per character (on fewer characters);
- the whole command as a user runs it (a subprocess; CPU of the child, start-up and model load included)
  on the full validation split with --streams 8 and on a --text-file.
Target (issue 17): at most 0.5 ms of CPU per character.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "perplexity_speed.json"


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln)
    except Exception:
        return platform.processor() or platform.machine()


@torch.inference_mode()
def _step_loop(model, ids) -> float:
    h, total = None, 0.0
    for t in range(len(ids) - 1):
        logits, h = model.step(ids[t : t + 1], h)
        total -= float(torch.log_softmax(logits.double(), -1)[0, ids[t + 1]])
    return total / (len(ids) - 1)


def _child_cpu(cmd: list[str], env: dict) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, r.stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--chars", type=int, default=20000, help="Characters for the in-process timings."
    )
    p.add_argument(
        "--step-chars", type=int, default=2000, help="Characters for the step-loop baseline."
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from grukit.tasks.text.data import load_text, split_text
    from grukit.tasks.text.evaluate import load_model, score_text

    model, path = load_model()
    valid = split_text(load_text(None), "valid")
    text = valid[: args.chars]
    score_text(model, text[:2000])  # warm-up
    fused = {}
    for streams in (1, 8):
        c0, w0 = time.process_time(), time.perf_counter()
        res = score_text(model, text, streams=streams)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        fused[f"streams_{streams}"] = {
            "chars": res["chars"],
            "cpu_ms_per_char": round(1e3 * cpu / res["chars"], 4),
            "wall_ms_per_char": round(1e3 * wall / res["chars"], 4),
            "nats_per_char": res["nats_per_char"],
        }
    ids = model.vocab.encode(valid[: args.step_chars])
    c0 = time.process_time()
    nats_step = _step_loop(model, ids)
    step_cpu = time.process_time() - c0
    exact = score_text(model, valid[: args.step_chars])["nats_per_char"]
    baseline = {
        "chars": len(ids) - 1,
        "cpu_ms_per_char": round(1e3 * step_cpu / (len(ids) - 1), 4),
        "nats_per_char": nats_step,
        "abs_diff_vs_sequence_path": abs(nats_step - exact),
    }

    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    cli = [sys.executable, "-c", "from grukit.cli import main; main()", "text", "perplexity"]
    commands = {}
    cpu, wall, out = _child_cpu([*cli, "--streams", "8"], env)
    n_valid = (len(valid) // 8 - 1) * 8
    commands["perplexity --streams 8 (full valid split)"] = {
        "chars": n_valid,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_ms_per_char_including_startup": round(1e3 * cpu / n_valid, 4),
        "stdout": out,
    }
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "sample.txt"
        f.write_text(valid[:50_000], encoding="utf-8")
        cpu, wall, out = _child_cpu([*cli, "--text-file", str(f)], env)
        commands["perplexity --text-file (50,000 chars)"] = {
            "chars": 49_999,
            "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2),
            "cpu_ms_per_char_including_startup": round(1e3 * cpu / 49_999, 4),
            "stdout": out.replace(str(f), "sample.txt"),
        }
    rec = {
        "description": "CPU time per character of text perplexity (shipped model "
        f"{Path(path).name}: {model.config.num_layers} x GRU {model.config.hidden_size})",
        "command": " ".join(["python", *sys.argv]),
        "target_cpu_ms_per_char": 0.5,
        "sequence_path": fused,
        "step_loop_baseline": baseline,
        "speedup_cpu_streams_1_vs_step_loop": round(
            baseline["cpu_ms_per_char"] / fused["streams_1"]["cpu_ms_per_char"], 2
        ),
        "commands": commands,
        "threads": args.threads,
        "cpu": _cpu_model(),
        "load_average_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    from grukit.train.run import write_json

    write_json(OUT, rec)
    print(
        json.dumps(
            {k: rec[k] for k in ("sequence_path", "step_loop_baseline", "commands")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
