"""The one route function (grukit.kernels.route.choose), the missing-kernel fallback and kernels.status()."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from support import randomize
from torch.autograd import forward_ad as fwad
from torch.utils._python_dispatch import TorchDispatchMode

import grukit
from grukit import kernels
from grukit.errors import NativeKernelWarning
from grukit.kernels import route, vf
from grukit.kernels.route import Spec

NATIVE = kernels.native_reason() is None
FUSED = sys.modules.get("grukit.kernels.fused")  # the loaded kernel module (None without one)
# issue 32: CPU autocast to bfloat16 takes the "bf16" route where the CPU has AVX-512-BF16
BF16 = NATIVE and __import__("grukit.kernels.bf16", fromlist=["available"]).available()
needs_native = pytest.mark.skipif(not NATIVE, reason=f"no native kernel: {kernels.native_reason()}")


class _Passthrough(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _x(*shape, dtype=torch.float32, grad=False):
    return torch.randn(*shape, dtype=dtype).requires_grad_(grad)


@needs_native
@pytest.mark.parametrize(
    "spec, x, kw, expected",
    [
        (Spec(), _x(4, 2, 3), {}, "native"),
        (Spec(), _x(4, 2, 3, dtype=torch.float64), {}, "native"),
        (Spec(kind="cell"), _x(2, 3), {}, "native"),
        (Spec(reset_after=False), _x(4, 2, 3), {}, "native"),
        (Spec(backend="torch"), _x(4, 2, 3), {}, "composite"),
        (Spec(backend="torch", variant=True), _x(4, 2, 3), {}, "variant"),
        (Spec(variant=True), _x(4, 2, 3), {}, "native"),  # the native variant loop
        (Spec(variant=True, reset_after=False), _x(4, 2, 3, dtype=torch.float64), {}, "native"),
        (Spec(variant=True, kind="cell"), _x(2, 3), {}, "variant"),
        (Spec(variant=True), _x(4, 2, 3), {"return_gates": True}, "variant"),
        (Spec(variant=True), _x(4, 2, 3, dtype=torch.bfloat16), {}, "variant"),
        (Spec(variant=True), _x(4, 2, 3), {"autocast": "cpu"}, "variant"),
        (Spec(variant=True), _x(4, 0, 3), {}, "variant"),
        (Spec(variant=True), _x(4, 2, 3).to("meta"), {}, "variant"),
        (Spec(kind="mingru"), _x(4, 2, 3), {}, "scan"),
        (Spec(), _x(4, 2, 3, dtype=torch.bfloat16), {}, "composite"),
        (Spec(), _x(4, 0, 3), {}, "composite"),
        (Spec(), _x(4, 2, 3), {"return_gates": True}, "native"),  # no autograd: the kernel's gates
        (Spec(), _x(4, 2, 3, grad=True), {"return_gates": True}, "composite"),
        (Spec(), _x(4, 2, 3), {"autocast": "cpu"}, "bf16" if BF16 else "op"),
        (Spec(), _x(4, 2, 3), {"autocast": "cpu", "return_gates": True}, "native"),  # fp32 inside
        (Spec(), _x(4, 2, 3, dtype=torch.float32).to("meta"), {}, "op"),
        (Spec(kind="cell"), _x(2, 3).to("meta"), {}, "composite"),
        (
            Spec(),
            _x(4, 2, 3),
            {"weights": [("w", torch.zeros(2, dtype=torch.float64))]},
            "composite",
        ),
    ],
)
def test_route_table_eager(spec, x, kw, expected):
    assert route.choose(spec, x, **kw).route == expected


@needs_native
def test_route_table_contexts(monkeypatch):
    """Graph capture, transforms, dispatch modes, ONNX export and a forced ATen route."""
    gru, cell, x, xc = Spec(), Spec(kind="cell"), _x(4, 2, 3), _x(2, 3)
    with _Passthrough():
        assert route.choose(gru, x).route == "op"
        assert route.choose(cell, xc).route == "composite"
    with fwad.dual_level():
        assert route.choose(gru, x).route == "composite"
    seen = []
    torch.func.vmap(lambda t: seen.append(route.choose(gru, t.unsqueeze(1)).route) or t)(x)
    assert seen == ["composite"]
    monkeypatch.setattr(vf, "force_on_cpu", True)
    assert route.choose(gru, x).route == "aten"
    assert route.choose(Spec(reset_after=False), x).route == "native"
    assert route.choose(Spec(masked_weights=True), x).route == "native"
    monkeypatch.setattr(vf, "force_on_cpu", False)
    monkeypatch.setattr(route, "_is_tracing", lambda: True)
    assert route.choose(gru, x) == ("op", "TorchScript is tracing/scripting the model")
    monkeypatch.setattr(route, "_is_tracing", lambda: False)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert route.choose(gru, x).route == "op"
    assert route.choose(gru, x, return_gates=True).route == "composite"
    monkeypatch.setattr(route.onnx_export, "in_dynamo_export", lambda: True)
    assert route.choose(gru, x).route == "onnx"
    assert route.choose(Spec(onnx_ok=False), x).route == "op"
    assert route.choose(Spec(variant=True, onnx_ok=False), x).route == "variant"  # compiling
    monkeypatch.setattr(route.onnx_export, "in_dynamo_export", lambda: False)
    monkeypatch.setattr(route.export, "in_torch_export", lambda: True)  # torch.export (not ONNX)
    assert route.choose(gru, x).route == "export"
    assert (
        route.choose(Spec(variant=True), x).route == "export"
    )  # eval-mode variants: the export op
    assert route.choose(Spec(backend="torch"), x).route == "export"
    assert route.choose(Spec(backend="fused"), x).route == "export"
    assert route.choose(Spec(masks=True), x).route == "op"  # random masks: the loops are traced
    assert route.choose(gru, x, return_gates=True).route == "composite"
    with pytest.raises(ValueError, match="backend='fused' cannot run this call: torch.export"):
        route.choose(Spec(backend="fused", variant=True), x)


def test_route_without_the_native_kernel(monkeypatch):
    """No kernel: reset_after=True GRU stacks outside autocast go to ATen; everything else composite."""
    monkeypatch.setattr(route, "native_reason", lambda: "the native kernel is unavailable (test)")
    x = _x(4, 2, 3)
    d = route.choose(Spec(), x)
    assert d.route == "aten" and "unavailable (test)" in d.reason
    assert route.choose(Spec(), x.double()).route == "aten"
    for spec, kw in (
        (Spec(reset_after=False), {}),
        (Spec(kind="cell"), {}),
        (Spec(masked_weights=True), {}),
        (Spec(), {"return_gates": True}),
    ):
        xx = x[0] if spec.kind == "cell" else x
        assert route.choose(spec, xx, **kw).route == "composite", spec
    assert route.choose(Spec(), x, autocast="cpu").route == "op"  # inside autocast: not ATen
    d = route.choose(Spec(variant=True), x)
    assert d.route == "variant" and "unavailable (test)" in d.reason
    with pytest.raises(ValueError, match="backend='fused' cannot run this call: the native kernel"):
        route.choose(Spec(backend="fused"), x)


def test_fused_backend_raises_with_the_reason():
    with pytest.raises(
        ValueError, match="backend='fused' cannot run this call: one step .* variant"
    ):
        route.choose(Spec(backend="fused", variant=True, kind="cell"), _x(2, 3))
    with pytest.raises(ValueError, match="backend='fused' cannot run this call: .*minGRU"):
        route.choose(Spec(kind="mingru", backend="fused"), _x(4, 2, 3))


@needs_native
def test_weight_check_is_cached_per_module_and_invalidated_by_to():
    gru = grukit.GRU(3, 4)
    x = _x(5, 2, 3)
    assert route.choose(gru._spec(), x, module=gru).route == "native"
    key = gru.__dict__["_route_weights"][0]
    assert route.choose(gru._spec(), x, module=gru).route == "native"
    assert gru.__dict__["_route_weights"][0] == key  # reused
    gru.double()
    assert gru.__dict__["_route_weights"][0] != key or gru.__dict__.get("_route_generation")
    out, _ = gru(x.double())
    assert out.dtype == torch.float64
    gru.weight_hh_l0 = torch.nn.Parameter(gru.weight_hh_l0.detach().float())  # a replaced parameter
    assert route.weights_reason(gru, torch.float64) == (
        "weight_hh_l0 has dtype torch.float32, x has torch.float64"
    )


@pytest.fixture
def no_native(monkeypatch):
    """The process as if the native kernel could not load (import fails), with a fresh warning state."""
    monkeypatch.delenv("GRUKIT_NO_FUSED", raising=False)
    monkeypatch.setitem(
        sys.modules, "grukit.kernels.fused", None
    )  # `from . import fused` now fails
    monkeypatch.delattr(kernels, "fused", raising=False)
    monkeypatch.setattr(kernels, "_fused", None)
    monkeypatch.setattr(kernels, "_fused_import_error", None)
    monkeypatch.setattr(kernels, "_warned", False)


@needs_native
def test_missing_kernel_warns_once_and_runs_aten_equal_to_native(no_native, monkeypatch):
    gru = randomize(grukit.GRU(3, 16, num_layers=2, bidirectional=True))
    x = torch.randn(7, 3, 3)
    h0 = torch.randn(4, 3, 16)
    lengths = torch.tensor([7, 2, 5])
    fused = FUSED
    monkeypatch.setattr(kernels, "_fused", fused)  # the native run to compare with
    n = fused.calls["sequence"]
    ref_out, ref_hn = gru(x, h0, lengths=lengths)
    assert fused.calls["sequence"] == n + 4  # the native kernel ran: 2 layers × 2 directions
    monkeypatch.setattr(kernels, "_fused", None)  # now as if it had never loaded

    spy = []
    real = vf.gru_stack
    monkeypatch.setattr(vf, "gru_stack", lambda *a, **k: spy.append(1) or real(*a, **k))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, hn = gru(x, h0, lengths=lengths)
        gru(x)
        grukit.GRUCell(3, 4)(torch.randn(2, 3))
        grukit.GRU(3, 4, reset_after=False)(x)
    ours = [w for w in caught if issubclass(w.category, NativeKernelWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    msg = str(ours[0].message)
    assert "native kernel is unavailable" in msg and "To fix it" in msg and "GRUKIT_NO_FUSED" in msg
    assert spy == [1, 1]  # the two reset_after=True GRU calls went through torch's ATen GRU
    assert fused.calls["sequence"] == n + 4  # and not through the kernel
    assert (out - ref_out).abs().max() <= 1e-5 and (hn - ref_hn).abs().max() <= 1e-5
    st = kernels.status()
    assert st["native"] is False and "unavailable" in st["reason"] and st["source"] is None


def test_no_fused_env_is_silent(tmp_path):
    code = (
        "import warnings, torch, grukit\n"
        "warnings.simplefilter('error')\n"
        "grukit.GRU(2, 3)(torch.randn(4, 2, 2))\n"
        "print(grukit.kernels.status()['reason'])\n"
    )
    env = {**__import__("os").environ, "GRUKIT_NO_FUSED": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "GRUKIT_NO_FUSED" in proc.stdout


@needs_native
def test_status_and_main():
    st = kernels.status()
    assert st["native"] is True and st["reason"] is None
    assert st["source"] in ("wheel", "jit") and st["library"]
    assert st["isa"] in ("x86-64-v2", "x86-64-v3", "x86-64-v4", "generic")
    assert set(st["stream_paths"]) == {"float32", "bfloat16", "int8"}
    proc = subprocess.run(
        [sys.executable, "-m", "grukit.kernels"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["native"] is True


def test_cpu_level_detection_and_forcing(monkeypatch):
    from grukit.kernels import _build

    monkeypatch.delenv("GRUKIT_CPU_LEVEL", raising=False)
    level = _build.cpu_level()
    assert level in (*_build.X86_LEVELS, "generic")
    if (
        NATIVE and _build._is_x86_64()
    ):  # /proc/cpuinfo's answer agrees with the compiler's __builtin_cpu_supports
        code = FUSED._lib.grukit_cpu_level()
        assert level == {4: "x86-64-v4", 3: "x86-64-v3", 2: "x86-64-v2"}.get(code, "generic")
    monkeypatch.setattr(_build, "_detected_level", lambda: "x86-64-v2")
    monkeypatch.setenv("GRUKIT_CPU_LEVEL", "x86-64-v4")
    assert _build.cpu_level() == "x86-64-v4"
    with pytest.raises(_build.BuildError, match="does not run x86-64-v4"):
        _build.find_or_build()
    monkeypatch.setenv("GRUKIT_CPU_LEVEL", "pentium")
    with pytest.raises(_build.BuildError, match="GRUKIT_CPU_LEVEL must be one of"):
        _build.find_or_build()
    assert _build._levels_to_try("x86-64-v3") == ["x86-64-v3", "x86-64-v2"]
