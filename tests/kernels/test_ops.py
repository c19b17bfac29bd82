"""The registered op ``grukit::gru_sequence``: opcheck, torch.compile, torch.export, jit.trace, the CUDA route."""

from __future__ import annotations

import io

import pytest
import torch
from support import randomize, rel_err
from torch._dynamo.utils import counters
from torch.autograd import gradcheck, gradgradcheck

import grukit
from grukit.kernels import fused_unsupported_reason, vf

FUSED = fused_unsupported_reason(
    "cell", x=torch.zeros(1, 2), h=None, w_ih=torch.zeros(6, 2), w_hh=torch.zeros(6, 2)
)


def _op_args(dtype, reset_after=True, reverse=False, bias=True, lengths=None, T=5, B=3, I=2, H=4):
    g = torch.Generator().manual_seed(1)

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()

    b = (r(3 * H), r(3 * H)) if bias else (None, None)
    return (r(T, B, I), r(B, H), r(3 * H, I), r(3 * H, H), *b, lengths, reset_after, reverse, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "case",
    [
        {},
        {"reset_after": False},
        {"reverse": True, "lengths": torch.tensor([5, 2, 4])},
        {"bias": False, "lengths": torch.tensor([1, 5, 3])},
    ],
)
def test_opcheck(dtype, case):
    """torch.library.opcheck: schema, fake impl, autograd registration, AOT dispatch (dynamic shapes)."""
    args = _op_args(dtype, **case)
    torch.library.opcheck(torch.ops.grukit.gru_sequence.default, args)
    # the registered backward op on its own
    with torch.no_grad():
        out, hn, hprev, gates = torch.ops.grukit.gru_sequence(*args)
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, ra, rev, _ = args
    bargs = (torch.randn_like(out), torch.randn_like(hn), x.detach(), h0.detach(), w_ih.detach())
    bargs += (w_hh.detach(), None if b_ih is None else b_ih.detach())
    bargs += (None if b_hh is None else b_hh.detach(), lengths, hprev, gates, ra, rev)
    torch.library.opcheck(torch.ops.grukit.gru_sequence_backward.default, bargs)


@pytest.mark.parametrize("reset_after", [True, False])
def test_op_gradcheck_and_double_backward(reset_after):
    """float64 gradcheck of the op (fused backward op) and gradgradcheck (composite recomputation)."""
    args = _op_args(torch.float64, reset_after=reset_after, lengths=torch.tensor([5, 3, 1]), T=5)
    tensors, rest = args[:6], args[6:]

    def f(*t):
        return tuple(torch.ops.grukit.gru_sequence(*t, *rest)[:2])

    assert gradcheck(f, tensors)
    assert gradgradcheck(f, tensors)


def test_op_equals_eager_layer():
    """The op path (forced by a TorchScript-free route: calling the wrapper) equals the eager layer."""
    from grukit.kernels import ops

    gru = randomize(grukit.GRU(3, 5, bidirectional=True))
    x = torch.randn(6, 2, 3)
    w = gru.layer_weights(0, 1)
    a = ops.sequence(x, torch.zeros(2, 5), *w, reverse=True, lengths=torch.tensor([6, 2]))
    b = grukit.kernels.composite.sequence(
        x, torch.zeros(2, 5), *w, reverse=True, lengths=torch.tensor([6, 2])
    )
    assert (a[0] - b[0]).abs().max() <= 1e-6 and (a[1] - b[1]).abs().max() <= 1e-6


def _grads(model, x):
    out, hn = model(x)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum() + hn.square().sum()
    return out, hn, torch.autograd.grad(loss, [x, *model.parameters()])


def test_compile_fullgraph_dynamic_one_graph_equals_eager():
    """torch.compile(fullgraph=True, dynamic=True): one graph for T = 64, 65, 97, equal to eager (fwd + bwd)."""
    torch._dynamo.reset()
    counters.clear()
    gru = randomize(grukit.GRU(3, 4, num_layers=2, bidirectional=True))
    compiled = torch.compile(gru, fullgraph=True, dynamic=True, backend="aot_eager")
    for T in (64, 65, 97):
        x = torch.randn(T, 2, 3, requires_grad=True)
        co, ch, cg = _grads(compiled, x)
        eo, eh, eg = _grads(gru, x)
        assert (co - eo).abs().max() <= 1e-6 and (ch - eh).abs().max() <= 1e-6
        assert max(rel_err(a, b) for a, b in zip(cg, eg)) <= 1e-5
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


def test_compile_sees_one_op_per_direction():
    """The captured graph holds the registered op (no unrolled loop): 2 ops for a bidirectional layer."""
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    gru = randomize(grukit.GRU(3, 4, bidirectional=True))
    torch.compile(gru, fullgraph=True, backend=backend)(torch.randn(30, 2, 3))
    targets = [str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert sum("gru_sequence" in t for t in targets) == 2
    assert sum("sigmoid" in t or "tanh" in t for t in targets) == 0
    torch._dynamo.reset()


def test_export_dynamic_T_round_trip():
    """torch.export with a dynamic time dimension; saved and loaded, correct at two other lengths."""
    gru = randomize(grukit.GRU(3, 4, num_layers=2, batch_first=True))
    T = torch.export.Dim("T", min=2, max=4096)
    ep = torch.export.export(gru, (torch.randn(2, 10, 3),), dynamic_shapes=({1: T},))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf).module()
    for t in (7, 33):
        x = torch.randn(2, t, 3)
        got, want = loaded(x), gru(x)
        assert (got[0] - want[0]).abs().max() <= 1e-6 and (got[1] - want[1]).abs().max() <= 1e-6
    assert "grukit.gru_sequence" in ep.graph_module.code


def test_jit_trace_correct_at_another_T():
    gru = randomize(grukit.GRU(3, 4, num_layers=2, bidirectional=True))
    traced = torch.jit.trace(gru, (torch.randn(5, 2, 3),))
    for T in (1, 9, 40):
        x = torch.randn(T, 2, 3)
        got, want = traced(x), gru(x)
        assert (got[0] - want[0]).abs().max() <= 1e-6 and (got[1] - want[1]).abs().max() <= 1e-6


@pytest.mark.skipif(FUSED is not None, reason="the native fused kernel could not be built here")
def test_compiled_backward_uses_the_fused_backward_op():
    from grukit.kernels import fused

    torch._dynamo.reset()
    gru = randomize(grukit.GRU(3, 4))
    before = dict(fused.calls)
    _grads(
        torch.compile(gru, fullgraph=True, backend="aot_eager"),
        torch.randn(8, 2, 3).requires_grad_(),
    )
    assert fused.calls["op_sequence"] > before.get("op_sequence", 0)
    assert fused.calls["op_sequence_backward"] > before.get("op_sequence_backward", 0)
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------- the CUDA route
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"num_layers": 2, "bidirectional": True},
        {"batch_first": True, "bias": False},
        {"num_layers": 2, "bidirectional": True, "lengths": True},
    ],
)
def test_vf_route_equals_fused_and_composite(monkeypatch, kw):
    """The torch._VF.gru route (cuDNN on CUDA), run on CPU: equal to the fused and composite paths."""
    kw = dict(kw)
    use_lengths = kw.pop("lengths", False)
    gru = randomize(grukit.GRU(3, 5, **kw))
    ref = grukit.GRU(3, 5, **kw, backend="torch")
    ref.load_state_dict(gru.state_dict())
    B, T = 3, 6
    x = torch.randn(B, T, 3) if gru.batch_first else torch.randn(T, B, 3)
    h0 = torch.randn(gru.num_layers * gru.num_directions, B, 5)
    lengths = torch.tensor([6, 2, 4]) if use_lengths else None
    calls = []
    real = vf.gru_stack

    def recording(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(vf, "gru_stack", recording)
    results = {}
    for name, model, force in (("vf", gru, True), ("fused", gru, False), ("torch", ref, False)):
        monkeypatch.setattr(vf, "force_on_cpu", force)
        xx = x.clone().requires_grad_()
        hh = h0.clone().requires_grad_()
        out, hn = model(xx, hh, lengths=lengths)
        loss = (out * torch.linspace(-1, 2, out.shape[-1])).sum() + hn.square().sum()
        grads = torch.autograd.grad(loss, [xx, hh, *model.parameters()])
        results[name] = (out, hn, grads)
    assert calls == [1]
    for name in ("fused", "torch"):
        out, hn, grads = results[name]
        assert (results["vf"][0] - out).abs().max() <= 1e-5
        assert (results["vf"][1] - hn).abs().max() <= 1e-5
        assert max(rel_err(a, b) for a, b in zip(results["vf"][2], grads)) <= 1e-4
