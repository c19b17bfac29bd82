"""The native variant loop (grukit.kernels.variants, csrc/gru_variants.cpp): layer norm, recurrent dropout and
zoneout against the float64 reference and the composite variant loop given the same masks, gradients by
gradcheck, seeds that reproduce, and the route that sends eager CPU calls to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import numpy_params, randomize, rel_err
from torch.autograd import gradcheck, gradgradcheck

import grukit
from grukit import kernels, reference
from grukit.functional import gru as fgru

NATIVE = kernels.native_reason() is None
pytestmark = pytest.mark.skipif(not NATIVE, reason=f"no native kernel: {kernels.native_reason()}")
F64 = torch.float64
# docs/conventions.md: fused against composite; outputs against the reference; gradients (relative). Layer
# norm divides each group's rounding by the group's standard deviation: with random gains and H = 5 the two
# float32 paths (different GEMM blockings and exp) drift apart by up to a few 1e-6 (seen: 2.0e-6, the
# composite 0.5e-6 and the native 2.5e-6 from the reference), so float32 with layer_norm uses the reference
# bound; the float64 comparison at 1e-12 is the exactness check.
CLOSE = {torch.float32: 1e-6, F64: 1e-12}
CLOSE_LN32 = 1e-5
REF = {torch.float32: 1e-5, F64: 1e-10}
GRAD = {torch.float32: 1e-4, F64: 1e-9}

OPTS = [
    {"layer_norm": True},
    {"recurrent_dropout": 0.3},
    {"zoneout": 0.4},
    {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2, "dropconnect": 0.25},
]


def _variants():
    from grukit.kernels import variants

    return variants


def _capture(gru):
    """Record the masks the layer draws, in (layer, direction) order."""
    drawn, original = [], gru._draw_masks

    def spy(T, B, like):
        m = original(T, B, like)
        drawn.append(m)
        return m

    gru._draw_masks = spy
    return drawn


def _reference(gru, x, h0, lengths, drawn):
    D = gru.num_directions
    masks = None
    if gru.training:
        masks = {
            (i // D, i % D): {
                k: None if v is None else v.detach().double().numpy()
                for k, v in m._asdict().items()
            }
            for i, m in enumerate(drawn)
        }
    return reference.variant_gru(
        x.detach().double().numpy(),
        numpy_params(gru),
        gru.num_layers,
        gru.bidirectional,
        gru.reset_after,
        h0.detach().double().numpy(),
        None if lengths is None else np.asarray(lengths),
        gru.batch_first,
        layer_norm=gru.layer_norm,
        masks=masks,
        zoneout_p=None if (gru.training or not gru.zoneout) else gru.zoneout,
    )


def _run(gru, x, h0, lengths, seed):
    """Output, h_n and the gradients of a fixed weighted sum w.r.t. x, h0 and every parameter."""
    x = x.detach().clone().requires_grad_()
    h0 = h0.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    out, h_n = gru(x, h0, lengths=lengths)
    g = torch.Generator().manual_seed(7)
    w_out = torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype)
    w_h = torch.randn(h_n.shape, generator=g, dtype=F64).to(out.dtype)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    grads = torch.autograd.grad(loss, [x, h0, *gru.parameters()])
    return out.detach(), h_n.detach(), grads


@pytest.mark.parametrize("opts", OPTS, ids=lambda o: "+".join(o))
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("bidir,lengths", [(False, None), (True, [6, 3, 1])])
@pytest.mark.parametrize("training", [True, False])
def test_native_equals_composite_and_reference(opts, reset_after, dtype, bidir, lengths, training):
    """Native and composite (backend='torch') layers draw the same masks from the same seed and agree on the
    outputs and every gradient; both equal the float64 reference run with the masks drawn."""
    D = 2 if bidir else 1
    gru = randomize(
        grukit.GRU(3, 5, 2, bidirectional=bidir, reset_after=reset_after, dtype=dtype, **opts)
    ).train(training)
    comp = randomize(
        grukit.GRU(
            3,
            5,
            2,
            bidirectional=bidir,
            reset_after=reset_after,
            dtype=dtype,
            backend="torch",
            **opts,
        )
    ).train(training)
    x, h0 = torch.randn(6, 3, 3, dtype=dtype), torch.randn(2 * D, 3, 5, dtype=dtype)
    variants = _variants()
    before = variants.calls["sequence"], variants.calls["sequence_backward"]
    drawn = _capture(gru)
    out, h_n, grads = _run(gru, x, h0, lengths, seed=11)
    uses_variant = gru._uses_variant_loop()
    if (
        uses_variant
    ):  # the native variant loop ran, forward and backward, once per layer and direction
        assert variants.calls["sequence"] - before[0] == 2 * D
        assert variants.calls["sequence_backward"] - before[1] == 2 * D
    c_out, c_h, c_grads = _run(comp, x, h0, lengths, seed=11)
    close = CLOSE_LN32 if (dtype == torch.float32 and gru.layer_norm) else CLOSE[dtype]
    assert (out - c_out).abs().max() <= close
    assert (h_n - c_h).abs().max() <= close
    for a, b in zip(grads, c_grads):
        assert rel_err(a, b) <= GRAD[dtype]
    r_out, r_h, _ = _reference(gru, x, h0, lengths, drawn)
    assert np.abs(out.double().numpy() - r_out).max() <= REF[dtype]
    assert np.abs(h_n.double().numpy() - r_h).max() <= REF[dtype]


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradcheck_native_variant_sequence(reset_after):
    """float64 gradcheck of the native loop with every option on, fixed masks; lengths and reverse."""
    T, B, I, H = 4, 2, 3, 3
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=F64).requires_grad_()  # noqa: E731
    x, h0, w_ih, w_hh, b_ih, b_hh = (
        rnd(T, B, I),
        rnd(B, H),
        rnd(3 * H, I),
        rnd(3 * H, H),
        rnd(3 * H),
        rnd(3 * H),
    )
    ln_ih, ln_hh = rnd(3 * H), rnd(3 * H)
    torch.manual_seed(3)
    rec = fgru.dropout_mask((B, H), 0.3, h0).detach()
    zone = fgru.zoneout_mask((T, B, H), 0.4, h0).detach()
    variants = _variants()
    for reverse, lengths, zo in ((False, None, zone), (True, torch.tensor([4, 2]), 0.3)):

        def f(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh):
            out, h, _ = variants.sequence(
                x,
                h0,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                reset_after,
                lengths,
                reverse,
                ln_ih=ln_ih,
                ln_hh=ln_hh,
                recurrent_mask=rec,
                zoneout=zo,
            )
            return out, h

        before = variants.calls["sequence_backward"]
        assert gradcheck(
            f, (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh), eps=1e-6, atol=1e-7, fast_mode=True
        )
        assert variants.calls["sequence_backward"] > before  # the native backward was checked


def test_double_backward_through_the_composite_recomputation():
    """create_graph=True differentiates a composite recomputation: second derivatives by gradgradcheck."""
    T, B, I, H = 3, 2, 2, 2
    g = torch.Generator().manual_seed(2)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=F64).requires_grad_()  # noqa: E731
    x, h0, w_hh, ln_hh = rnd(T, B, I), rnd(B, H), rnd(3 * H, H), rnd(3 * H)
    w_ih = torch.randn(3 * H, I, generator=g, dtype=F64)
    rec = torch.tensor([[2.0, 0.0], [2.0, 2.0]], dtype=F64)
    variants = _variants()

    def f(x, h0, w_hh, ln_hh):
        return variants.sequence(
            x, h0, w_ih, w_hh, None, None, ln_hh=ln_hh, recurrent_mask=rec, zoneout=0.25
        )[0]

    assert gradgradcheck(f, (x, h0, w_hh, ln_hh), eps=1e-6, atol=1e-6, fast_mode=True)


def test_training_seeds_reproduce_and_masks_differ_per_call():
    gru = randomize(grukit.GRU(4, 8, layer_norm=True, recurrent_dropout=0.4, zoneout=0.3)).train()
    x = torch.randn(7, 3, 4)
    torch.manual_seed(5)
    a = gru(x)[0]
    torch.manual_seed(5)
    b = gru(x)[0]
    c = gru(x)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zoneout_keeps_units_bit_for_bit_on_the_native_path():
    gru = randomize(grukit.GRU(2, 16, zoneout=0.5)).train()
    drawn = _capture(gru)
    h0 = torch.randn(1, 4, 16)
    variants = _variants()
    before = variants.calls["sequence"]
    out, _ = gru(torch.randn(12, 4, 2), h0)
    assert variants.calls["sequence"] == before + 1
    keep = drawn[0].zoneout.bool()
    prev = torch.cat([h0, out[:-1]])
    assert torch.equal(out[keep], prev[keep])


def test_inference_and_no_grad_paths_agree():
    """Without autograd nothing is saved for backward; the results equal the training-graph path's."""
    gru = randomize(grukit.GRU(3, 6, layer_norm=True, zoneout=0.2, reset_after=False)).eval()
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        a = gru(x)[0]
    b = gru(x)[0]
    assert torch.equal(a, b.detach())
    with torch.inference_mode():
        assert torch.equal(gru(x)[0], a)


def test_fused_backend_runs_the_variants_natively():
    gru = randomize(grukit.GRU(3, 4, layer_norm=True, backend="fused"))
    variants = _variants()
    before = variants.calls["sequence"]
    gru(torch.randn(5, 2, 3))
    assert variants.calls["sequence"] == before + 1


@pytest.mark.slow
@pytest.mark.parametrize("level", ["x86-64-v4", "x86-64-v3", "x86-64-v2", "generic"])
def test_every_isa_level_runs_the_variants(level, request):
    """Each ISA build's variant loop (the one CMake and the JIT compile per level) against the reference."""
    from .test_isa import _built, _runs

    if not _runs(level):
        pytest.skip(f"this CPU does not run {level}")
    if not _built(level):
        pytest.skip(f"no {level} library was built into this install")
    from grukit.kernels import fused, stream

    before = fused.use_library(level)
    try:
        for reset_after in (True, False):
            gru = randomize(
                grukit.GRU(
                    4,
                    19,
                    bidirectional=True,
                    reset_after=reset_after,
                    layer_norm=True,
                    zoneout=0.3,
                    recurrent_dropout=0.3,
                )
            ).train()
            drawn = _capture(gru)
            x, h0 = torch.randn(7, 5, 4), torch.randn(2, 5, 19)
            n = _variants().calls["sequence"]
            with torch.no_grad():
                out, h_n = gru(x, h0, lengths=[7, 3, 5, 1, 6])
            assert _variants().calls["sequence"] == n + 2
            r_out, r_h, _ = _reference(gru, x, h0, [7, 3, 5, 1, 6], drawn)
            assert np.abs(out.double().numpy() - r_out).max() <= REF[torch.float32]
            assert np.abs(h_n.double().numpy() - r_h).max() <= REF[torch.float32]
    finally:
        fused.use_library(before)
        stream.set_path("f32-auto")
        stream.set_path("bf16-auto")
