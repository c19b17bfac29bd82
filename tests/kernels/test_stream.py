"""The small-batch streaming step (csrc/gru_stream.cpp) on every path this CPU runs, against the float64 reference.

bfloat16 paths are checked against the reference run on the same bf16-rounded weights (and float32 inputs):
what differs is then only float32 accumulation (and, for dpbf16, the hi + lo split of the input).
"""

import numpy as np
import pytest
import torch

from grukit import reference

stream = pytest.importorskip("grukit.kernels.stream")

RUNNABLE = [p for p, code in stream.PATHS.items() if stream._lib.grukit_step_path_ok(code)]
# (I, H, B, reset_after): tails in K (not a multiple of 16/32) and in the rows (3H not a multiple of 16)
SHAPES = [
    (5, 4, 1, True),
    (37, 45, 3, False),
    (64, 64, 4, True),
    (33, 100, 2, False),
    (70, 33, 1, True),
]


@pytest.fixture
def path_guard():
    yield
    stream.set_path("f32-auto")
    stream.set_path("bf16-auto")


def _layers(L, I, H, bias, bf16, g):
    layers = []
    for k in range(L):
        K = I if k == 0 else H
        w_ih = torch.randn(3 * H, K, generator=g) / K**0.5
        w_hh = torch.randn(3 * H, H, generator=g) / H**0.5
        if bf16:
            w_ih, w_hh = w_ih.bfloat16(), w_hh.bfloat16()
        b = (
            (torch.randn(3 * H, generator=g), torch.randn(3 * H, generator=g))
            if bias
            else (None, None)
        )
        layers.append((w_ih, w_hh, *b))
    return layers


def _ref_step(layers, x, h, reset_after):
    """Reference multi-layer step in float64 on exactly the weights given (bf16 ones upcast)."""
    f = lambda t: None if t is None else t.double().numpy()  # noqa: E731
    inp, out = f(x), []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        inp, _ = reference.gru_cell(inp, f(h[k]), f(w_ih), f(w_hh), f(b_ih), f(b_hh), reset_after)
        out.append(inp)
    return np.stack(out)


@pytest.mark.parametrize("path", RUNNABLE)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_step_matches_reference(path, shape, bias, path_guard):
    I, H, B, reset_after = shape
    bf16 = path.startswith("bf16")
    assert stream.set_path(path) == path
    g = torch.Generator().manual_seed(I * 1000 + H)
    L = 2
    layers = _layers(L, I, H, bias, bf16, g)
    names = [
        (f"a{k}", f"b{k}", f"c{k}" if bias else None, f"d{k}" if bias else None) for k in range(L)
    ]
    x, h = torch.randn(B, I, generator=g), torch.randn(L, B, H, generator=g)
    plan = stream.StepPlan(None, names, layers, I, H, reset_after)
    assert stream._NAMES[plan._desc.path] == path
    res = plan.stack({}, x, h)  # params=None plan: no key to check
    assert res is not None
    y, h_new = res
    want = _ref_step(layers, x, h, reset_after)
    tol = 1e-4 if path == "bf16-dpbf16" else 1e-5  # docs/conventions.md
    np.testing.assert_allclose(h_new.numpy(), want, atol=tol, rtol=0)
    np.testing.assert_allclose(y.numpy(), want[-1], atol=tol, rtol=0)
    if bf16:  # the tolerance is tight: a perturbation of one bf16 rounding step is visible
        up = [(w.float() * (1 + 2**-8), u.float(), b, c) for w, u, b, c in layers]
        assert np.abs(_ref_step(up, x, h, reset_after) - want).max() > tol
    # in place (the Streamer's call): same numbers
    h2 = h.clone()
    assert plan.run_inplace(B, x, h2) == 0
    np.testing.assert_allclose(h2.numpy(), want, atol=tol, rtol=0)


@pytest.mark.parametrize("path", [p for p in RUNNABLE if p.startswith("f32")])
@pytest.mark.parametrize("B", [1, 2, 3])
def test_alternating_passes_give_the_same_bits(path, B, path_guard):
    """The float32 AVX-512 step reads each layer's weights forward and backward on alternate passes (rows of a
    batch, then calls; csrc/gru_stream.cpp layer_row): every call on the same input gives the same bits, and
    they match the float64 reference (3H = 135 rows: a short last block of 16 rows in both directions)."""
    assert stream.set_path(path) == path
    I, H, L = 37, 45, 2
    g = torch.Generator().manual_seed(B)
    layers = _layers(L, I, H, True, False, g)
    names = [(f"a{k}", f"b{k}", f"c{k}", f"d{k}") for k in range(L)]
    plan = stream.StepPlan(None, names, layers, I, H, True)
    x, h = torch.randn(B, I, generator=g), torch.randn(L, B, H, generator=g)
    want = _ref_step(layers, x, h, True)
    first = None
    for _ in range(4):  # with B odd, consecutive calls start in opposite directions
        res = plan.stack({}, x, h)
        assert res is not None
        if first is None:
            first = res[1]
            np.testing.assert_allclose(first.numpy(), want, atol=1e-5, rtol=0)
        assert torch.equal(res[1], first)
        # batch rows in both directions within a call: a batch of copies of row 0 gives row 0's bits
        rows = plan.stack(
            {}, x[:1].expand(B, I).contiguous(), h[:, :1].expand(L, B, H).contiguous()
        )
        assert rows is not None
        assert torch.equal(rows[1], first[:, :1].expand(L, B, H))


def test_set_path_refuses_unknown(path_guard):
    with pytest.raises(ValueError, match="expected a path"):
        stream.set_path("f32-sse")
    with pytest.raises(ValueError, match="expected a path"):
        stream.set_path("int4-auto")
    with pytest.raises(ValueError, match="expected a path"):
        stream.set_path("int8-amx")
    assert stream.set_path("int8-auto") == stream.active_path("int8")
    assert stream.set_path("bf16-auto") == stream.active_path(True)


def test_plan_reason_names_the_problem():
    g = torch.Generator().manual_seed(0)
    layers = _layers(1, 3, 4, True, False, g)
    assert stream.plan_reason(layers, 3, 4) is None
    w_ih, w_hh, b_ih, b_hh = layers[0]
    assert "contiguous" in stream.plan_reason([(w_ih, w_hh.t().contiguous().t(), b_ih, b_hh)], 3, 4)
    assert "float32" in stream.plan_reason([(w_ih, w_hh, b_ih.double(), b_hh)], 3, 4)
    assert "weights must be" in stream.plan_reason([(w_ih, w_hh.bfloat16(), b_ih, b_hh)], 3, 4)
