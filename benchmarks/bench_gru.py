"""CPU speed of grukit's fused GRU kernel vs torch.nn.GRU, ONNX Runtime and the GEMM floor (float32).

    python benchmarks/bench_gru.py [--quick] [--threads 1,2] [--out benchmarks/results/cpu.json]

For each shape (batch, seq_len, input, hidden) and thread count it times, interleaving the contenders so
machine load hits them alike: forward under ``torch.inference_mode`` (nn.GRU, grukit, ONNX Runtime's GRU
operator when installed) and forward+backward of ``out.sum()`` (x requires grad, so dX is computed too);
plus the "GEMM floor", the matrix products the fused design needs alone through torch's MKL (forward: the
input projection + T recurrent GEMMs in a C loop; backward: T GEMMs for dh in a C loop + dW_hh, dW_ih and dX
after the loop), and per-step streaming latency at batch 1 and 8 (nn.GRUCell vs grukit.GRUCell and the
Streamer; at batch ≤ 4 also with bf16 and int8 weights, ``grukit.quantize``: bf16 against the float32
grukit step, int8 against nn.GRUCell in float32 and the bf16 step).

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` it times training (fwd+bwd) of nn.GRU and grukit (whose
"bf16" route runs the GEMMs in bfloat16 on AVX-512-BF16 CPUs) against both in float32 (``AUTOCAST_SHAPES``).
``--out`` keeps one record per CPU family (``cpu_family``): a run replaces its family's record only.

Reported numbers are medians of wall-clock times in ms (streaming: µs per step); ratios are computed within
the same run. At 1 thread the median process CPU time is recorded too: on a shared, loaded machine it is much
steadier than wall time. This is a benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import grukit
from grukit.kernels import fused

try:  # the Streamer lives next to the layers (grukit.nn); older trees had it in grukit.kernels.fused
    from grukit.nn import Streamer
except ImportError:  # pragma: no cover - lets this script time an older checkout too
    Streamer = fused.Streamer

SHAPES = [  # (layers, batch, seq_len, input, hidden)
    (1, 1, 1000, 64, 256),
    (1, 32, 100, 128, 256),
    (1, 64, 200, 256, 512),
    (1, 16, 500, 64, 128),
    (1, 256, 50, 32, 64),
    (2, 32, 100, 128, 256),
]
STREAM = [(1, 256), (1, 512), (1, 1024), (8, 256), (8, 512)]  # (batch, hidden), input 64
BF16_MAX_BATCH = 4  # bf16-weight streaming rows (grukit.quantize) for batches up to this
#: training under torch.autocast("cpu", dtype=torch.bfloat16) (issue 32): (layers, batch, seq_len, input, hidden)
AUTOCAST_SHAPES = [(1, 64, 200, 256, 512), (1, 32, 100, 128, 256)]


def _timeit(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median wall and CPU time (ms) of each callable, the callables interleaved round by round."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append((time.perf_counter() - t0) * 1e3)
            cpu[k].append((time.process_time() - c0) * 1e3)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def _floor_fns(layers, B, T, I, H):
    """The GEMMs of the fused design alone: (forward, forward+backward) callables."""
    lib = fused._lib
    gemm = fused._SGEMM
    loop = lib.grukit_gemm_loop_f32
    per_layer = []
    for layer in range(layers):
        In = I if layer == 0 else H
        x = torch.randn(T * B, In)
        w_ih, w_hh = torch.randn(3 * H, In), torch.randn(3 * H, H)
        hs = torch.randn(T, B, H)
        gh = torch.empty(T, B, 3 * H)
        dg = torch.randn(T, B, 3 * H)
        dh = torch.empty(T, B, H)
        per_layer.append((x, w_ih, w_hh, hs, gh, dg, dh))

    def fwd():
        for x, w_ih, w_hh, hs, gh, _dg, _dh in per_layer:
            torch.mm(x, w_ih.t())
            # gh_t (B × 3H) = h_t · W_hhᵀ, column-major: ghᵀ = W_hh · h_tᵀ
            loop(
                T,
                1,
                3 * H,
                B,
                H,
                w_hh.data_ptr(),
                H,
                hs.data_ptr(),
                B * H,
                H,
                gh.data_ptr(),
                B * 3 * H,
                3 * H,
                gemm,
            )

    def bwd():
        for x, w_ih, w_hh, hs, _gh, dg, dh in per_layer:
            # dh_t (B × H) = dg_t (B × 3H) · W_hh, column-major: dhᵀ = W_hhᵀ · dg_tᵀ
            loop(
                T,
                0,
                H,
                B,
                3 * H,
                w_hh.data_ptr(),
                H,
                dg.data_ptr(),
                B * 3 * H,
                3 * H,
                dh.data_ptr(),
                B * H,
                H,
                gemm,
            )
            dg2 = dg.view(T * B, 3 * H)
            torch.mm(dg2.t(), hs.view(T * B, H))
            torch.mm(dg2.t(), x)
            torch.mm(dg2, w_ih)

    def both():
        fwd()
        bwd()

    return fwd, both


def _ort_session(model, threads, tmpdir):
    try:
        import onnxruntime as ort

        from grukit.interop.onnx import export_onnx
    except Exception:
        return None
    path = Path(tmpdir) / f"gru_{id(model)}.onnx"
    export_onnx(model, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench_shape(layers, B, T, I, H, threads, repeats, tmpdir, with_ort=True):
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H, layers)
    g = grukit.GRU(I, H, layers)
    g.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I)
    xg = x.clone().requires_grad_()
    floor_f, floor_fb = _floor_fns(layers, B, T, I, H)

    def inf(m):
        def f():
            with torch.inference_mode():
                m(x)

        return f

    def train(m):
        def f():
            out, h = m(xg)
            out.sum().backward()

        return f

    fwd = {"nn_gru": inf(ref), "grukit": inf(g), "floor": floor_f}
    sess = _ort_session(g, threads, tmpdir) if with_ort else None
    if sess is not None:
        xn = x.numpy()
        fwd["onnxruntime"] = lambda: sess.run(None, {"input": xn})
    n0 = fused.calls["sequence"]
    tf = _timeit(fwd, repeats)
    assert fused.calls["sequence"] > n0, "the fused path did not run"
    tb = _timeit({"nn_gru": train(ref), "grukit": train(g), "floor": floor_fb}, repeats)
    row = {
        "shape": {"layers": layers, "batch": B, "seq_len": T, "input": I, "hidden": H},
        "threads": threads,
        "forward_ms": {k: round(v[0], 3) for k, v in tf.items()},
        "forward_backward_ms": {k: round(v[0], 3) for k, v in tb.items()},
    }
    if threads == 1:
        row["forward_cpu_ms"] = {k: round(v[1], 3) for k, v in tf.items()}
        row["forward_backward_cpu_ms"] = {k: round(v[1], 3) for k, v in tb.items()}
    f, fb = row["forward_ms"], row["forward_backward_ms"]
    row["ratios"] = {
        "fwd_speedup_vs_nn_gru": round(f["nn_gru"] / f["grukit"], 2),
        "fwd_bwd_speedup_vs_nn_gru": round(fb["nn_gru"] / fb["grukit"], 2),
        "fwd_over_floor": round(f["grukit"] / f["floor"], 2),
        "fwd_bwd_over_floor": round(fb["grukit"] / fb["floor"], 2),
    }
    if "onnxruntime" in f:
        row["ratios"]["fwd_speedup_vs_onnxruntime"] = round(f["onnxruntime"] / f["grukit"], 2)
    if threads == 1:
        fc, fbc = row["forward_cpu_ms"], row["forward_backward_cpu_ms"]
        row["ratios_cpu_time"] = {
            "fwd_speedup_vs_nn_gru": round(fc["nn_gru"] / fc["grukit"], 2),
            "fwd_bwd_speedup_vs_nn_gru": round(fbc["nn_gru"] / fbc["grukit"], 2),
            "fwd_bwd_over_floor": round(fbc["grukit"] / fbc["floor"], 2),
        }
    return row


def bench_stream(B, H, threads, repeats, steps):
    I = 64
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(I, H)
    cell = grukit.GRUCell(I, H)
    cell.load_state_dict(ref.state_dict())
    xs = torch.randn(steps, B, I)

    def run(m):
        def f():
            with torch.inference_mode():
                h = torch.zeros(B, H)
                for t in range(steps):
                    h = m(xs[t], h)

        return f

    xc = [xs[t].contiguous() for t in range(steps)]

    def run_streamer(s):
        def f():
            with torch.inference_mode():
                s.reset()
                for t in range(steps):
                    s.step(xc[t])

        return f

    fns = {
        "nn_grucell": run(ref),
        "grukit": run(cell),
        "grukit_streamer": run_streamer(Streamer(cell, batch_size=B)),
    }
    quantize = getattr(grukit, "quantize", None)  # absent in older trees
    bf16_path = int8_path = None
    if quantize is not None and B <= BF16_MAX_BATCH:
        import copy

        from grukit.kernels import stream

        qcell = quantize(copy.deepcopy(cell), "bf16")
        fns["grukit_bf16"] = run(qcell)
        fns["grukit_streamer_bf16"] = run_streamer(Streamer(qcell, batch_size=B))
        bf16_path = stream.active_path(True)
        try:  # int8 weights (issue 32); older trees refuse "int8"
            icell = quantize(copy.deepcopy(cell), "int8")
        except ValueError:
            icell = None
        if icell is not None:
            fns["grukit_int8"] = run(icell)
            fns["grukit_streamer_int8"] = run_streamer(Streamer(icell, batch_size=B))
            int8_path = stream.active_path("int8")
    n0 = fused.calls["cell"]
    t = _timeit(fns, repeats)
    assert fused.calls["cell"] > n0, "the fused cell did not run"
    us = {k: round(v[0] * 1e3 / steps, 2) for k, v in t.items()}
    row = {
        "batch": B,
        "hidden": H,
        "input": I,
        "threads": threads,
        "us_per_step": us,
        "speedup_vs_nn_grucell": round(us["nn_grucell"] / us["grukit"], 2),
        "streamer_speedup_vs_nn_grucell": round(us["nn_grucell"] / us["grukit_streamer"], 2),
    }
    if bf16_path is not None:  # bf16 weights against the float32 grukit step of the same run
        row["bf16_path"] = bf16_path
        row["bf16_speedup_vs_grukit"] = round(us["grukit"] / us["grukit_bf16"], 2)
        row["bf16_streamer_speedup_vs_streamer"] = round(
            us["grukit_streamer"] / us["grukit_streamer_bf16"], 2
        )
    if (
        int8_path is not None
    ):  # int8 weights against nn.GRUCell (float32) and the bf16 step of the same run
        row["int8_path"] = int8_path
        row["int8_speedup_vs_nn_grucell"] = round(us["nn_grucell"] / us["grukit_int8"], 2)
        row["int8_speedup_vs_bf16"] = round(us["grukit_bf16"] / us["grukit_int8"], 2)
        row["int8_streamer_speedup_vs_nn_grucell"] = round(
            us["nn_grucell"] / us["grukit_streamer_int8"], 2
        )
        row["int8_streamer_speedup_vs_bf16_streamer"] = round(
            us["grukit_streamer_bf16"] / us["grukit_streamer_int8"], 2
        )
    if threads == 1:
        cpu = {k: round(v[1] * 1e3 / steps, 2) for k, v in t.items()}
        row["cpu_us_per_step"] = cpu
        row["cpu_speedup_vs_nn_grucell"] = round(cpu["nn_grucell"] / cpu["grukit"], 2)
        row["cpu_streamer_speedup_vs_nn_grucell"] = round(
            cpu["nn_grucell"] / cpu["grukit_streamer"], 2
        )
        if bf16_path is not None:
            row["cpu_bf16_speedup_vs_grukit"] = round(cpu["grukit"] / cpu["grukit_bf16"], 2)
        if int8_path is not None:
            row["cpu_int8_speedup_vs_nn_grucell"] = round(cpu["nn_grucell"] / cpu["grukit_int8"], 2)
            row["cpu_int8_speedup_vs_bf16"] = round(cpu["grukit_bf16"] / cpu["grukit_int8"], 2)
    return row


def bench_autocast(layers, B, T, I, H, threads, repeats):
    """fwd+bwd of ``out.float().sum()`` (x requires grad) under CPU autocast to bfloat16, nn.GRU against grukit
    (route "bf16": bf16 GEMMs, fp32 recurrence state), plus both in float32; max |out − fp32 out| of each."""
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H, layers)
    gk = grukit.GRU(I, H, layers)
    gk.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I, requires_grad=True)

    def train(m, ac):
        def f():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ac):
                out, _ = m(x)
            out.float().sum().backward()
            x.grad = None
            m.zero_grad(set_to_none=True)

        return f

    fns = {
        "nn_gru_autocast": train(ref, True),
        "grukit_autocast": train(gk, True),
        "nn_gru_fp32": train(ref, False),
        "grukit_fp32": train(gk, False),
    }
    n0 = fused.calls["bf16_sequence"]
    t = _timeit(fns, repeats)
    with torch.no_grad():
        want = ref(x)[0]
        errs = {}
        for name, m in (("nn_gru", ref), ("grukit", gk)):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                errs[name] = float((m(x)[0].float() - want).abs().max())
    ms = {k: round(v[0], 2) for k, v in t.items()}
    row = {
        "shape": {"layers": layers, "batch": B, "seq_len": T, "input": I, "hidden": H},
        "threads": threads,
        "route": "bf16" if fused.calls["bf16_sequence"] > n0 else "float32 kernel (op)",
        "forward_backward_ms": ms,
        "max_abs_err_vs_fp32": errs,
        "ratios": {
            "autocast_speedup_vs_nn_gru_autocast": round(
                ms["nn_gru_autocast"] / ms["grukit_autocast"], 2
            ),
            "autocast_speedup_vs_grukit_fp32": round(ms["grukit_fp32"] / ms["grukit_autocast"], 2),
        },
    }
    if threads == 1:
        cpu = {k: round(v[1], 2) for k, v in t.items()}
        row["forward_backward_cpu_ms"] = cpu
        row["ratios_cpu_time"] = {
            "autocast_speedup_vs_nn_gru_autocast": round(
                cpu["nn_gru_autocast"] / cpu["grukit_autocast"], 2
            ),
            "autocast_speedup_vs_grukit_fp32": round(
                cpu["grukit_fp32"] / cpu["grukit_autocast"], 2
            ),
        }
    return row


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


#: the instruction-set flags that decide the kernel's paths and the BLAS's (AMX only on recent Xeons)
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpu_flags() -> list[str]:
    """The flags of CPU_FLAGS that /proc/cpuinfo lists (empty where it cannot be read)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def _lscpu_caches() -> dict:
    """lscpu's L1d/L2/L3 lines (e.g. "2 MiB (2 instances)": total size and count), where lscpu runs."""
    import subprocess

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("L1d cache", "L2 cache", "L3 cache"):
            out[key.strip().split()[0]] = val.strip()
    return out


def cpu_family(machine) -> str:
    """The key a run is filed under in cpu.json (one record per CPU family): vendor and the ISA class that
    decides the kernel's and the BLAS's paths, e.g. "AMD, AVX-512-BF16" or "Intel, AMX"."""
    name = machine.get("cpu", "")
    vendor = (
        "Intel" if "Intel" in name else ("AMD" if "AMD" in name else (name.split() or ["?"])[0])
    )
    flags = set(machine.get("cpu_flags") or [])
    if "amx_tile" in flags:
        isa = "AMX"
    elif "avx512_bf16" in flags:
        isa = "AVX-512-BF16"
    elif "avx512f" in flags:
        isa = "AVX-512"
    elif "avx2" in flags:
        isa = "AVX2"
    else:
        isa = "baseline"
    return f"{vendor}, {isa}"


def records(data) -> dict:
    """cpu.json's records by CPU family (an older single-record file is one family)."""
    if "families" in data:
        return data["families"]
    return {cpu_family(data["machine"]): data}


def cpu_line(result) -> str:
    """One sentence naming the CPU a results file came from (older files lack the flags and caches)."""
    m = result["machine"]
    flags = m.get("cpu_flags")
    caches = m.get("caches") or {}
    parts = [f"{m['logical_cpus']} logical CPUs"]
    parts.append(
        "flags " + ", ".join(flags) if flags else "instruction-set flags not recorded in this file"
    )
    if "L2" in caches:
        parts.append(f"L2 {caches['L2']}")
    return f"Results from: **{m['cpu']}** ({'; '.join(parts)}), {result['date_utc'][:10]}."


def print_tables(result):
    print(
        f"\n{'shape (L,B,T,I,H)':<22}{'thr':>4} | {'fwd: nn.GRU':>11}{'grukit':>9}{'ORT':>8}{'x nn':>7}{'x ORT':>7}"
        f" | {'fwd+bwd: nn.GRU':>15}{'grukit':>9}{'floor':>9}{'x nn':>7}{'/floor':>7}"
    )
    for r in result["shapes"]:
        s = r["shape"]
        f, fb, q = r["forward_ms"], r["forward_backward_ms"], r["ratios"]
        ort = f.get("onnxruntime")
        print(
            f"{(s['layers'], s['batch'], s['seq_len'], s['input'], s['hidden'])!s:<22}{r['threads']:>4} | "
            f"{f['nn_gru']:>11.1f}{f['grukit']:>9.1f}{(f'{ort:.1f}' if ort else '-'):>8}"
            f"{q['fwd_speedup_vs_nn_gru']:>7.2f}{q.get('fwd_speedup_vs_onnxruntime', float('nan')):>7.2f} | "
            f"{fb['nn_gru']:>15.1f}{fb['grukit']:>9.1f}{fb['floor']:>9.1f}{q['fwd_bwd_speedup_vs_nn_gru']:>7.2f}"
            f"{q['fwd_bwd_over_floor']:>7.2f}"
        )
    print(
        f"\n{'streaming (B,H)':<18}{'thr':>4} | {'nn.GRUCell µs':>14}{'GRUCell µs':>11}{'x':>7}{'Streamer µs':>12}{'x':>7}"
    )
    for r in result["streaming"]:
        u = r["us_per_step"]
        print(
            f"{(r['batch'], r['hidden'])!s:<18}{r['threads']:>4} | {u['nn_grucell']:>14.1f}{u['grukit']:>11.1f}"
            f"{r['speedup_vs_nn_grucell']:>7.2f}{u['grukit_streamer']:>12.1f}{r['streamer_speedup_vs_nn_grucell']:>7.2f}"
        )
    bf = [r for r in result["streaming"] if "grukit_bf16" in r["us_per_step"]]
    if bf:
        print(
            f"\n{'bf16 weights (B,H)':<18}{'thr':>4} | {'GRUCell µs':>11}{'bf16 µs':>9}{'x':>7}{'Streamer µs':>12}{'bf16 µs':>9}{'x':>7}  path"
        )
        for r in bf:
            u = r["us_per_step"]
            print(
                f"{(r['batch'], r['hidden'])!s:<18}{r['threads']:>4} | {u['grukit']:>11.1f}{u['grukit_bf16']:>9.1f}"
                f"{r['bf16_speedup_vs_grukit']:>7.2f}{u['grukit_streamer']:>12.1f}{u['grukit_streamer_bf16']:>9.1f}"
                f"{r['bf16_streamer_speedup_vs_streamer']:>7.2f}  {r['bf16_path']}"
            )
    i8 = [r for r in result["streaming"] if "grukit_int8" in r["us_per_step"]]
    if i8:
        print(
            f"\n{'int8 weights (B,H)':<18}{'thr':>4} | {'nn.GRUCell':>11}{'bf16':>8}{'int8':>8}{'x nn':>7}{'x bf16':>7}"
            f"{'S bf16':>8}{'S int8':>8}{'x nn':>7}{'x bf16':>7}  path"
        )
        for r in i8:
            u = r["us_per_step"]
            print(
                f"{(r['batch'], r['hidden'])!s:<18}{r['threads']:>4} | {u['nn_grucell']:>11.1f}{u['grukit_bf16']:>8.1f}"
                f"{u['grukit_int8']:>8.1f}{r['int8_speedup_vs_nn_grucell']:>7.2f}{r['int8_speedup_vs_bf16']:>7.2f}"
                f"{u['grukit_streamer_bf16']:>8.1f}{u['grukit_streamer_int8']:>8.1f}"
                f"{r['int8_streamer_speedup_vs_nn_grucell']:>7.2f}{r['int8_streamer_speedup_vs_bf16_streamer']:>7.2f}"
                f"  {r['int8_path']}"
            )
    for r in result.get("autocast_bf16") or []:
        s, ms = r["shape"], r["forward_backward_ms"]
        print(
            f"autocast bf16 {(s['layers'], s['batch'], s['seq_len'], s['input'], s['hidden'])} thr={r['threads']}: "
            f"nn.GRU {ms['nn_gru_autocast']:.1f} ms, grukit {ms['grukit_autocast']:.1f} ms "
            f"(x{r['ratios']['autocast_speedup_vs_nn_gru_autocast']:.2f}), grukit fp32 {ms['grukit_fp32']:.1f} ms, "
            f"route {r['route']}, max err {r['max_abs_err_vs_fp32']}"
        )


def markdown(result) -> str:
    """The docs/performance.md tables of a cpu.json (every CPU family's record, each under its heading) or of one
    run's record."""
    if "families" in result:
        return "\n\n".join(
            f"#### {family}\n\n{_markdown_record(rec)}"
            for family, rec in result["families"].items()
        )
    return _markdown_record(result)


def _markdown_record(result) -> str:
    """One run's tables: 1-thread process-CPU-time medians (steady on a loaded machine) and the wall-time
    ratios at every thread count, all from one run."""
    lines = [
        cpu_line(result),
        "",
        "| shape (L,B,T,I,H) | nn.GRU fwd | grukit fwd | ORT fwd | nn.GRU fwd+bwd | grukit fwd+bwd | floor fwd+bwd "
        "| fwd × nn.GRU | fwd × ORT | fwd+bwd × nn.GRU | fwd+bwd / floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["shapes"]:
        if r["threads"] != 1:
            continue
        s = r["shape"]
        f, fb = r["forward_cpu_ms"], r["forward_backward_cpu_ms"]
        ort = f.get("onnxruntime")
        lines.append(
            f"| ({s['layers']},{s['batch']},{s['seq_len']},{s['input']},{s['hidden']}) | {f['nn_gru']:.1f} | "
            f"{f['grukit']:.1f} | {'—' if ort is None else f'{ort:.1f}'} | {fb['nn_gru']:.1f} | {fb['grukit']:.1f} | "
            f"{fb['floor']:.1f} | {f['nn_gru'] / f['grukit']:.2f} | "
            f"{'—' if ort is None else format(ort / f['grukit'], '.2f')} | "
            f"{fb['nn_gru'] / fb['grukit']:.2f} | {fb['grukit'] / fb['floor']:.2f} |"
        )
    lines += [
        "",
        "| shape (L,B,T,I,H) | threads | fwd × nn.GRU | fwd × ORT | fwd+bwd × nn.GRU | fwd+bwd / floor |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["shapes"]:
        s, q = r["shape"], r["ratios"]
        lines.append(
            f"| ({s['layers']},{s['batch']},{s['seq_len']},{s['input']},{s['hidden']}) | {r['threads']} | "
            f"{q['fwd_speedup_vs_nn_gru']:.2f} | {q.get('fwd_speedup_vs_onnxruntime', float('nan')):.2f} | "
            f"{q['fwd_bwd_speedup_vs_nn_gru']:.2f} | {q['fwd_bwd_over_floor']:.2f} |"
        )
    lines += [
        "",
        "| streaming step (B, H), I=64 | threads | nn.GRUCell µs | grukit.GRUCell µs | × | Streamer µs | × |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["streaming"]:
        u = r.get("cpu_us_per_step", r["us_per_step"])
        kind = "CPU" if "cpu_us_per_step" in r else "wall"
        lines.append(
            f"| ({r['batch']}, {r['hidden']}) | {r['threads']} ({kind}) | {u['nn_grucell']:.1f} | {u['grukit']:.1f} | "
            f"{u['nn_grucell'] / u['grukit']:.2f} | {u['grukit_streamer']:.1f} | "
            f"{u['nn_grucell'] / u['grukit_streamer']:.2f} |"
        )
    bf = [r for r in result["streaming"] if "grukit_bf16" in r["us_per_step"]]
    if bf:  # bf16 weights (grukit.quantize) against the float32 grukit step of the same run
        lines += [
            "",
            "| bf16 weights, step (B, H), I=64 | threads | GRUCell µs | bf16 µs | × | Streamer µs | bf16 µs | × | path |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bf:
            u = r.get("cpu_us_per_step", r["us_per_step"])
            kind = "CPU" if "cpu_us_per_step" in r else "wall"
            lines.append(
                f"| ({r['batch']}, {r['hidden']}) | {r['threads']} ({kind}) | {u['grukit']:.1f} | "
                f"{u['grukit_bf16']:.1f} | {u['grukit'] / u['grukit_bf16']:.2f} | {u['grukit_streamer']:.1f} | "
                f"{u['grukit_streamer_bf16']:.1f} | {u['grukit_streamer'] / u['grukit_streamer_bf16']:.2f} | "
                f"{r['bf16_path']} |"
            )
    i8 = [r for r in result["streaming"] if "grukit_int8" in r["us_per_step"]]
    if i8:  # int8 weights (grukit.quantize) against nn.GRUCell (float32) and the bf16 step of the same run
        lines += [
            "",
            "| int8 weights, step (B, H), I=64 | threads | nn.GRUCell µs | bf16 GRUCell µs | int8 GRUCell µs | "
            "× nn.GRUCell | × bf16 | bf16 Streamer µs | int8 Streamer µs | × nn.GRUCell | × bf16 | path |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in i8:
            u = r.get("cpu_us_per_step", r["us_per_step"])
            kind = "CPU" if "cpu_us_per_step" in r else "wall"
            lines.append(
                f"| ({r['batch']}, {r['hidden']}) | {r['threads']} ({kind}) | {u['nn_grucell']:.1f} | "
                f"{u['grukit_bf16']:.1f} | {u['grukit_int8']:.1f} | {u['nn_grucell'] / u['grukit_int8']:.2f} | "
                f"{u['grukit_bf16'] / u['grukit_int8']:.2f} | {u['grukit_streamer_bf16']:.1f} | "
                f"{u['grukit_streamer_int8']:.1f} | {u['nn_grucell'] / u['grukit_streamer_int8']:.2f} | "
                f"{u['grukit_streamer_bf16'] / u['grukit_streamer_int8']:.2f} | {r['int8_path']} |"
            )
    ac = result.get("autocast_bf16") or []
    if ac:  # training under torch.autocast("cpu", dtype=torch.bfloat16), fwd+bwd
        lines += [
            "",
            "| autocast bf16 training (L,B,T,I,H) | threads | nn.GRU autocast ms | grukit autocast ms | × nn.GRU "
            "autocast | grukit fp32 ms | × grukit fp32 | nn.GRU fp32 ms | route |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ac:
            s = r["shape"]
            u = r.get("forward_backward_cpu_ms", r["forward_backward_ms"])
            kind = "CPU" if "forward_backward_cpu_ms" in r else "wall"
            lines.append(
                f"| ({s['layers']},{s['batch']},{s['seq_len']},{s['input']},{s['hidden']}) | {r['threads']} ({kind}) | "
                f"{u['nn_gru_autocast']:.1f} | {u['grukit_autocast']:.1f} | "
                f"{u['nn_gru_autocast'] / u['grukit_autocast']:.2f} | {u['grukit_fp32']:.1f} | "
                f"{u['grukit_fp32'] / u['grukit_autocast']:.2f} | {u['nn_gru_fp32']:.1f} | {r['route']} |"
            )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, 1 thread only unless --threads is given",
    )
    ap.add_argument(
        "--threads", default=None, help="comma-separated thread counts (default 1,2; quick: 1)"
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per measurement (default 5; quick: 2)",
    )
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "results" / "cpu.json"),
        help="results file (one record per CPU family; this run replaces its family's)",
    )
    ap.add_argument(
        "--note",
        default="shared 2-core VM, loaded by other jobs during the run: compare ratios "
        "within this run, not absolute times with other machines",
    )
    ap.add_argument(
        "--markdown",
        metavar="JSON",
        help="print the docs/performance.md tables of an existing results file and exit",
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    repeats = args.repeats or (2 if args.quick else 5)
    t_start = time.perf_counter()
    result = {
        "name": "cpu",
        "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
        if argv is None
        else "python benchmarks/bench_gru.py " + " ".join(argv),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": _cpu_name(),
            "cpu_flags": _cpu_flags(),
            "caches": _lscpu_caches(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "note": args.note,
        },
        "torch": torch.__version__,
        "grukit": grukit.__version__,
        "dtype": "float32",
        "seed": 0,
        "repeats": repeats,
        "units": "ms, median wall time (cpu_ms: median process CPU time); streaming µs/step",
        "fused": {
            "matvec_max_batch": fused.matvec_max_batch,
            "blas_gemm": fused._SGEMM is not None,
            "gate_kernel": getattr(fused, "gate_kernel", False),
            "gate_backward_min_hidden": getattr(fused, "gate_backward_min_hidden", None),
        },
        "shapes": [],
        "streaming": [],
        "autocast_bf16": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one record per CPU family: this run replaces its family's record and keeps the others
    family = cpu_family(result["machine"])
    others = {}
    if out.exists():
        try:
            others = {k: v for k, v in records(json.loads(out.read_text())).items() if k != family}
        except (ValueError, KeyError):
            others = {}

    def save(
        complete: bool,
    ) -> None:  # after every measurement, atomically, so an interrupted run keeps its data
        result["complete"] = complete
        result["machine"]["load_average_at_end"] = (
            list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        )
        result["wall_time_s"] = round(time.perf_counter() - t_start, 1)
        data = {"name": "cpu", "families": {**others, family: result}}
        part = out.with_suffix(".json.tmp")
        part.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(part, out)

    old = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        for nt in threads:
            torch.set_num_threads(nt)
            for layers, B, T, I, H in SHAPES:
                row = bench_shape(layers, B, T, I, H, nt, repeats, tmp)
                result["shapes"].append(row)
                print(f"  done {(layers, B, T, I, H)} threads={nt}: {row['ratios']}", flush=True)
                save(False)
            for B, H in STREAM:
                result["streaming"].append(
                    bench_stream(B, H, nt, repeats, steps=200 if args.quick else 1000)
                )
                save(False)
            for layers, B, T, I, H in AUTOCAST_SHAPES:
                row = bench_autocast(layers, B, T, I, H, nt, repeats)
                result["autocast_bf16"].append(row)
                print(
                    f"  done autocast {(layers, B, T, I, H)} threads={nt}: {row['ratios']}",
                    flush=True,
                )
                save(False)
    torch.set_num_threads(old)
    save(True)
    print_tables(result)
    print(f"\nwrote {out} ({result['wall_time_s']} s)")


if __name__ == "__main__":
    main()
