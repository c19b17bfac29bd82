"""Every ISA build of the kernel this CPU runs (x86-64-v2/v3/v4 or generic), forced in turn, on every streaming
path it offers, against the float64 reference within docs/conventions.md's tolerances.

The libraries come from the installed wheel (or an editable install's CMake build); a level with no built
library is skipped with that reason (the JIT fallback builds only the level the CPU needs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import numpy_params, randomize, rel_err

import grukit
from grukit import kernels, reference
from grukit.kernels import _build

if kernels.native_reason() is not None:
    pytest.skip(f"no native kernel: {kernels.native_reason()}", allow_module_level=True)

from grukit.kernels import fused, stream

LEVELS = [*_build.X86_LEVELS, "generic"]


def _built(level: str) -> bool:
    """A library for ``level`` is at hand: in the install, or the one loaded now (e.g. a cached JIT build)."""
    return level == _build.loaded["isa"] or any(
        (d / _build.library_name(level)).exists() for d in _build._native_dirs()
    )


def _runs(level: str) -> bool:
    try:
        _build._check_level(level)
    except _build.BuildError:
        return False
    return True


@pytest.fixture
def at_level(request):
    level = request.param
    if not _runs(level):
        pytest.skip(f"this CPU does not run {level}")
    if not _built(level):
        pytest.skip(f"no {level} library was built into this install")
    before = _build.loaded["isa"]
    fused.use_library(level)
    assert fused._lib.grukit_isa().decode() == level
    yield level
    fused.use_library(before)
    stream.set_path("f32-auto")
    stream.set_path("bf16-auto")
    stream.set_path("int8-auto")


def _check_gru(reset_after: bool, B: int, dtype: torch.dtype) -> None:
    gru = randomize(grukit.GRU(5, 37, num_layers=2, bidirectional=True, reset_after=reset_after))
    gru = gru.to(dtype)
    g = torch.Generator().manual_seed(B)
    x = torch.randn(9, B, 5, generator=g, dtype=dtype, requires_grad=True)
    lengths = torch.randint(1, 10, (B,), generator=g)
    n = fused.calls["sequence"]
    out, hn = gru(x, lengths=lengths)
    assert fused.calls["sequence"] == n + 4  # the native kernel ran every layer and direction
    ro, rh, _ = reference.gru(
        x.detach().double().numpy(),
        numpy_params(gru),
        num_layers=2,
        bidirectional=True,
        reset_after=reset_after,
        lengths=lengths.numpy(),
    )
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert np.abs(out.detach().double().numpy() - ro).max() <= tol
    assert np.abs(hn.detach().double().numpy() - rh).max() <= tol
    # gradients against float64 autograd through the composite loop
    w = torch.linspace(-1, 1, out.shape[-1], dtype=dtype)
    grads = torch.autograd.grad((out * w).sum() + hn.square().sum(), [x, *gru.parameters()])
    ref = grukit.GRU(
        5, 37, num_layers=2, bidirectional=True, reset_after=reset_after, backend="torch"
    )
    ref = ref.double()
    ref.load_state_dict({k: v.double() for k, v in gru.state_dict().items()})
    xd = x.detach().double().requires_grad_()
    o2, h2 = ref(xd, lengths=lengths)
    rgrads = torch.autograd.grad(
        (o2 * w.double()).sum() + h2.square().sum(), [xd, *ref.parameters()]
    )
    gtol = 1e-4 if dtype == torch.float32 else 1e-9
    assert max(rel_err(a.double(), b) for a, b in zip(grads, rgrads)) <= gtol


@pytest.mark.slow
@pytest.mark.parametrize("at_level", LEVELS, indirect=True)
def test_every_isa_level_against_the_reference(at_level):
    for reset_after in (True, False):
        for B in (1, 9):  # the matrix-vector loop and the BLAS / gate-kernel loop
            _check_gru(reset_after, B, torch.float32)
    _check_gru(True, 3, torch.float64)
    # one step: GRUCell (the BLAS cell at B = 9, the streaming step at B = 1) and every streaming path
    cell = randomize(grukit.GRUCell(6, 21))
    p = numpy_params(cell)
    for B in (1, 9):
        x, h = torch.randn(B, 6), torch.randn(B, 21)
        want, _ = reference.gru_cell(
            x.double().numpy(),
            h.double().numpy(),
            *(p[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
        )
        with torch.no_grad():
            got = cell(x, h)
        assert np.abs(got.double().numpy() - want).max() <= 1e-5
    runnable = [n for n, c in stream.PATHS.items() if stream._lib.grukit_step_path_ok(c)]
    assert "f32-generic" in runnable and "bf16-generic" in runnable
    for name in runnable:
        stream.set_path(name)
        bf16 = name.startswith("bf16")
        gru = randomize(grukit.GRU(6, 21, num_layers=2)).eval()
        if bf16:
            grukit.quantize(gru, "bf16")
        params = {k: v.double().numpy() for k, v in gru.state_dict().items()}
        x = torch.randn(4, 1, 6)
        h = None
        with torch.no_grad():
            for t in range(4):
                y, h = gru.step(x[t], h)
        ro, rh, _ = reference.gru(x.double().numpy(), params, num_layers=2)
        tol = 1e-4 if name == "bf16-dpbf16" else 1e-5
        assert np.abs(h.double().numpy() - rh).max() <= tol, name
        assert stream.active_path(bf16) == name
    # int8 weights: every int8 path this build offers gives the same bits (tests/nn/test_quantize_int8.py
    # checks them against the float64 reference with the same rounding)
    q = grukit.quantize(randomize(grukit.GRU(70, 21, num_layers=2)).eval(), "int8")
    x = torch.randn(5, 2, 70)
    outs = []
    for name, code in stream.INT8_PATHS.items():
        if not stream._lib.grukit_step_i8_path_ok(code):
            continue
        stream.set_path(name)
        s = grukit.nn.Streamer(q, batch_size=2)
        assert s.path == name
        outs.append(torch.stack([s.step(x_t.contiguous()).clone() for x_t in x]))
    assert outs and all(torch.equal(o, outs[0]) for o in outs)
