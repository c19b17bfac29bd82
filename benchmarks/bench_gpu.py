"""The GPU check in one go: every route grukit takes on CUDA, checked for correctness, then timed against cuDNN.

    python benchmarks/bench_gpu.py [--quick] [--device cuda] [--out benchmarks/results/gpu.json]

Runs from the source tree (``PYTHONPATH=. python benchmarks/bench_gpu.py``; it puts the tree on ``sys.path``
itself) with nothing beyond torch and numpy: no compiler, no native kernel (the CUDA routes do not use it).
Works on torch 2.11–2.13 and Python 3.11–3.12; ``--quick`` (fewer shapes and rounds) finishes in well under
a minute on one GPU, the full run in under 5 minutes.

Correctness (each check records the route ``grukit.kernels.route.choose`` picked, the max abs error and the
bound; a failed check makes the exit status 1):

- ``aten`` (``torch._VF.gru``, cuDNN) for plain ``reset_after=True`` stacks, against the composite loop
  (``backend="torch"``) and the float64 NumPy reference (``grukit.reference``), float32 and float64,
  uni/bidirectional, with and without ``lengths``, and gradients against the composite path's;
- ``reset_after=False`` (the registered op over the composite loop) and the variants (layer norm, zoneout,
  recurrent dropout, DropConnect; the composite variant loop) against the reference, eval and, with the masks
  the layer drew, training;
- autocast bfloat16 and float16: within max(2 × torch.nn.GRU's own error, 1e-5) of the float32 answer;
- ``torch.compile`` of a grukit GRU against eager (skipped with the reason if this torch cannot compile).

Timing: forward (``torch.inference_mode``) and forward+backward of grukit (plain, ``reset_after=False``,
layer norm) against ``torch.nn.GRU`` at the CPU benchmark's shapes, interleaved, median ms after CUDA
synchronisation; ratios are against nn.GRU in the same run. TF32 is off throughout (the bounds are float32's).

``--device cpu`` runs the same checks on CPU (where the routes are the native kernel's): the CI smoke test of
the script itself (argument parsing, the checks' plumbing, the result file).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from the source tree without an install
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import grukit  # noqa: E402
from grukit import reference  # noqa: E402
from grukit.kernels import route  # noqa: E402

# (layers, batch, seq_len, input, hidden): benchmarks/bench_gru.py's shapes
SHAPES = [
    (1, 1, 1000, 64, 256),
    (1, 32, 100, 128, 256),
    (1, 64, 200, 256, 512),
    (1, 16, 500, 64, 128),
    (1, 256, 50, 32, 64),
    (2, 32, 100, 128, 256),
]
QUICK_SHAPES = [(1, 32, 100, 128, 256), (2, 32, 100, 128, 256)]
TOL = {
    torch.float32: 1e-5,
    torch.float64: 1e-10,
}  # docs/conventions.md: outputs against the reference
GRAD_TOL = {torch.float32: 1e-4, torch.float64: 1e-9}  # gradients, relative


def _randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) * scale)
    return module


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _params(m: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: _np(v) for k, v in m.state_dict().items()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _route_of(gru: grukit.GRU, x: torch.Tensor, h0: torch.Tensor | None, **kw: Any) -> str:
    xt = x.transpose(0, 1) if gru.batch_first else x
    weights = () if h0 is None else (("h0", h0),)
    return route.choose(gru._spec(), xt, module=gru, weights=weights, **kw).route


class Checks:
    """Collects named checks: (route, error, bound, ok) or a skip with its reason."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, route_: str, err: float, bound: float) -> None:
        ok = bool(np.isfinite(err) and err <= bound)
        self.rows.append({"check": name, "route": route_, "error": err, "bound": bound, "ok": ok})
        print(
            f"  {'ok  ' if ok else 'FAIL'} {name:58s} route={route_:9s} err={err:.2e} ≤ {bound:.0e}"
        )

    def skip(self, name: str, reason: str) -> None:
        self.rows.append({"check": name, "skipped": reason, "ok": True})
        print(f"  skip {name:58s} {reason}")

    def run(self, name: str, fn: Callable[[], None]) -> None:
        """Run one group of checks; an exception is a failed check with its message, not a crash."""
        try:
            fn()
        except Exception as e:  # recorded, so one broken route does not hide the others
            self.rows.append({"check": name, "ok": False, "exception": f"{type(e).__name__}: {e}"})
            print(f"  FAIL {name}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["ok"]]


def check_plain(c: Checks, dev: torch.device, dtype: torch.dtype) -> None:
    """_VF.gru (aten) or the native kernel vs the composite loop and the reference, with gradients."""
    T, B, I, H = 12, 4, 5, 8
    for reset_after in (True, False):
        for bidir, lengths in ((False, None), (True, [12, 7, 3, 9])):
            name = f"plain {dtype} reset_after={reset_after} bidir={bidir} lengths={lengths is not None}"
            gru = _randomize(
                grukit.GRU(I, H, 2, bidirectional=bidir, reset_after=reset_after, dtype=dtype)
            ).to(dev)
            comp = _randomize(
                grukit.GRU(
                    I,
                    H,
                    2,
                    bidirectional=bidir,
                    reset_after=reset_after,
                    dtype=dtype,
                    backend="torch",
                )
            ).to(dev)
            D = 2 if bidir else 1
            g = torch.Generator().manual_seed(1)
            x = (
                torch.randn(T, B, I, generator=g, dtype=torch.float64)
                .to(dev, dtype)
                .requires_grad_()
            )
            h0 = torch.randn(2 * D, B, H, generator=g, dtype=torch.float64).to(dev, dtype)
            ln = None if lengths is None else torch.tensor(lengths)
            out, h_n = gru(x, h0, lengths=ln)
            (gx,) = torch.autograd.grad(out.sum() + h_n.sum(), x)
            c_out, c_h = comp(x, h0, lengths=ln)
            (cgx,) = torch.autograd.grad(c_out.sum() + c_h.sum(), x)
            out, h_n, c_out = out.detach(), h_n.detach(), c_out.detach()
            r_out, r_h, _ = reference.gru(
                _np(x),
                _params(gru),
                2,
                bidir,
                reset_after,
                _np(h0),
                None if lengths is None else np.asarray(lengths),
            )
            rt = _route_of(gru, x, h0)
            c.add(
                f"{name}: out vs reference", rt, float(np.abs(_np(out) - r_out).max()), TOL[dtype]
            )
            c.add(f"{name}: h_n vs reference", rt, float(np.abs(_np(h_n) - r_h).max()), TOL[dtype])
            c.add(f"{name}: out vs composite", rt, float((out - c_out).abs().max()), TOL[dtype])
            c.add(f"{name}: dx vs composite (rel)", rt, _rel(gx, cgx), GRAD_TOL[dtype])


VARIANT_OPTS = [
    {"layer_norm": True},
    {"zoneout": 0.3},
    {"recurrent_dropout": 0.3},
    {"dropconnect": 0.3},
    {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.2, "dropconnect": 0.2},
]


def check_variants(c: Checks, dev: torch.device, dtype: torch.dtype) -> None:
    """The variants (eval, and training with the masks the layer drew) against the reference."""
    T, B, I, H = 10, 3, 4, 6
    for opts in VARIANT_OPTS:
        for reset_after in (True, False):
            for training in (False, True):
                name = (
                    f"variant {'+'.join(opts)} {dtype} reset_after={reset_after} train={training}"
                )
                gru = _randomize(
                    grukit.GRU(
                        I, H, 2, bidirectional=True, reset_after=reset_after, dtype=dtype, **opts
                    )
                ).to(dev)
                gru.train(training)
                drawn: list[Any] = []
                original = gru._draw_masks

                def spy(
                    T_: int, B_: int, like: torch.Tensor, _o: Any = original, _d: list[Any] = drawn
                ) -> Any:
                    m = _o(T_, B_, like)
                    _d.append(m)
                    return m

                gru._draw_masks = spy  # type: ignore[method-assign]
                g = torch.Generator().manual_seed(2)
                x = torch.randn(T, B, I, generator=g, dtype=torch.float64).to(dev, dtype)
                h0 = torch.randn(4, B, H, generator=g, dtype=torch.float64).to(dev, dtype)
                lengths = [10, 6, 2]
                with torch.no_grad():
                    out, h_n = gru(x, h0, lengths=torch.tensor(lengths))
                masks = None
                if training:
                    masks = {
                        (i // 2, i % 2): {
                            k: None if v is None else _np(v) for k, v in m._asdict().items()
                        }
                        for i, m in enumerate(drawn)
                    }
                r_out, r_h, _ = reference.variant_gru(
                    _np(x),
                    _params(gru),
                    2,
                    True,
                    reset_after,
                    _np(h0),
                    np.asarray(lengths),
                    layer_norm=gru.layer_norm,
                    masks=masks,
                    zoneout_p=None if (training or not gru.zoneout) else gru.zoneout,
                )
                rt = _route_of(gru, x, h0)
                c.add(f"{name}: out", rt, float(np.abs(_np(out) - r_out).max()), TOL[dtype])
                c.add(f"{name}: h_n", rt, float(np.abs(_np(h_n) - r_h).max()), TOL[dtype])


def check_autocast(c: Checks, dev: torch.device) -> None:
    """Under autocast grukit stays within max(2 × nn.GRU's error, 1e-5) of its float32 answer."""
    for dt in (torch.bfloat16, torch.float16):
        for kw in ({}, {"reset_after": False}, {"layer_norm": True}):
            name = f"autocast {dt} {kw or 'plain'}"
            ref = _randomize(torch.nn.GRU(8, 16, 2)).to(dev)
            ours = (
                grukit.from_torch(ref) if not kw else _randomize(grukit.GRU(8, 16, 2, **kw)).to(dev)
            )
            x = torch.randn(20, 3, 8, device=dev)
            with torch.no_grad():
                o32, _ = ours(x)
                r32, _ = ref(x)
                with torch.autocast(dev.type, dtype=dt):
                    o, _ = ours(x)
                    ro, _ = ref(x)
                    rt = _route_of(ours, x, None, autocast=dev.type)
            bound = max(2 * float((ro.float() - r32).abs().max()), 1e-5)
            c.add(name, rt, float((o.float() - o32).abs().max()), bound)


def check_compile(c: Checks, dev: torch.device) -> None:
    """torch.compile of a grukit GRU (both reset placements) against eager."""
    for reset_after in (True, False):
        name = f"compile reset_after={reset_after}"
        gru = _randomize(grukit.GRU(6, 8, reset_after=reset_after)).to(dev).eval()
        x = torch.randn(7, 2, 6, device=dev)
        try:
            compiled = torch.compile(gru, fullgraph=False)
            with torch.no_grad():
                got = compiled(x)[0]
        except (
            Exception
        ) as e:  # an environment without a working inductor (no compiler, old triton)
            c.skip(
                name,
                f"torch.compile unavailable here: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
            )
            continue
        with torch.no_grad():
            want = gru(x)[0]
        c.add(name, "op", float((got - want).abs().max()), 1e-5)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timing(dev: torch.device, shapes: list[tuple[int, ...]], repeats: int) -> list[dict[str, Any]]:
    """Median ms of forward and forward+backward: nn.GRU (cuDNN) and grukit's routes, interleaved."""
    rows = []
    for L, B, T, I, H in shapes:
        torch.manual_seed(0)
        nn_gru = torch.nn.GRU(I, H, L).to(dev)
        models = {
            "nn.GRU": nn_gru,
            "grukit": grukit.from_torch(nn_gru),
            "grukit reset_after=False": grukit.GRU(I, H, L, reset_after=False).to(dev),
            "grukit layer_norm": grukit.GRU(I, H, L, layer_norm=True).to(dev),
        }
        x = torch.randn(T, B, I, device=dev)
        xg = x.clone().requires_grad_()

        def fwd(m: torch.nn.Module, x: torch.Tensor = x) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode():
                    m(x)
                _sync(dev)

            return run

        def train(m: torch.nn.Module, xg: torch.Tensor = xg) -> Callable[[], None]:
            def run() -> None:
                m(xg)[0].sum().backward()
                _sync(dev)

            return run

        fns = {f"{k} fwd": fwd(m) for k, m in models.items()}
        fns.update({f"{k} fwd+bwd": train(m) for k, m in models.items()})
        for f in fns.values():  # warm-up (cuDNN plans, allocator)
            f()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, f in fns.items():
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        row: dict[str, Any] = {
            "layers": L,
            "batch": B,
            "seq_len": T,
            "input": I,
            "hidden": H,
            "ms": med,
        }
        row["ratio_vs_nn"] = {
            k: med[k] / med[f"nn.GRU {k.rsplit(' ', 1)[1]}"]
            for k in med
            if not k.startswith("nn.GRU")
        }
        rows.append(row)
        print(f"  (L, B, T, I, H) = {(L, B, T, I, H)}")
        for k, v in med.items():
            ratio = row["ratio_vs_nn"].get(k)
            print(f"    {k:34s} {v:9.2f} ms" + ("" if ratio is None else f"   ×{ratio:.2f} nn.GRU"))
    return rows


def device_info(dev: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": dev.type, "machine": platform.machine()}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(
            name=p.name,
            memory_gib=round(p.total_memory / 2**30, 1),
            capability=f"{p.major}.{p.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument(
        "--device", default="cuda", help="cuda (default), cuda:N, or cpu (the smoke test)"
    )
    ap.add_argument("--quick", action="store_true", help="two timing shapes, 5 rounds")
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds per shape (default 20)")
    ap.add_argument("--no-timing", action="store_true", help="correctness checks only")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be positive, got {args.repeats}")
    try:
        args.device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device (use --device cpu for the smoke run)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dev: torch.device = args.device
    t_start = time.perf_counter()
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print(
        f"grukit GPU check on {dev} (torch {torch.__version__}, Python {platform.python_version()})"
    )
    c = Checks()
    for dtype in (torch.float32, torch.float64):
        c.run(f"plain {dtype}", lambda dtype=dtype: check_plain(c, dev, dtype))
        c.run(f"variants {dtype}", lambda dtype=dtype: check_variants(c, dev, dtype))
    c.run("autocast", lambda: check_autocast(c, dev))
    c.run("compile", lambda: check_compile(c, dev))
    rows: list[dict[str, Any]] = []
    if not args.no_timing:
        shapes = QUICK_SHAPES if args.quick else SHAPES
        if dev.type == "cpu":  # the smoke run: one small shape
            shapes = [(1, 4, 20, 16, 32)]
        rows = timing(dev, shapes, 5 if args.quick else args.repeats)
    failed = c.failed
    record = {
        "command": "python "
        + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": bool(args.quick),
        "seconds": round(time.perf_counter() - t_start, 1),
        "checks": c.rows,
        "failed": len(failed),
        "timing": rows,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(args.out)  # never a partial file
    print(f"{len(c.rows)} checks, {len(failed)} failed, {record['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
