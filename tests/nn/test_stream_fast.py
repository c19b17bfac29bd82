"""The streaming fast path of GRUCell.forward / GRU.step and bfloat16 weights (grukit.quantize).

Each test proves which path ran (a counting wrapper around the plan's native function) and checks the
numbers against the float64 reference; invalidation tests change the weights every way a user can.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from support import numpy_params, randomize

import grukit
from grukit import reference
from grukit.nn import Streamer

from ._util import reference_of

stream = pytest.importorskip("grukit.kernels.stream")
BF16_PATHS = [
    p
    for p in ("bf16-dpbf16", "bf16-avx512", "bf16-generic")
    if stream._lib.grukit_step_path_ok(stream.PATHS[p])
]


class Count:
    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def __call__(self, *a):
        self.n += 1
        return self.fn(*a)


def counted(module):
    """Wrap the module's current plan's native call; returns the counter. The plan's C++ checks
    (grukit.kernels.torch_step, tested in test_stream_c.py) are switched off: they call the kernel directly."""
    c = Count(module._step_plan._fn)
    module._step_plan._fn = c
    module._step_plan._c = False
    return c


def ref_cell(cell, x, h):
    p = numpy_params(cell)
    out, _ = reference.gru_cell(
        x.double().numpy(),
        h.double().numpy(),
        p["weight_ih"],
        p["weight_hh"],
        p.get("bias_ih"),
        p.get("bias_hh"),
        cell.reset_after,
    )
    return out


@pytest.fixture
def path_guard():
    yield
    stream.set_path("f32-auto")
    stream.set_path("bf16-auto")


def close(a, b, atol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b, atol=atol, rtol=0)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_fast_path_matches_reference_and_returns_fresh_tensors(reset_after, bias):
    cell = randomize(grukit.GRUCell(5, 7, bias=bias, reset_after=reset_after))
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    with torch.no_grad():
        first = cell(x, h)  # builds the plan
        c = counted(cell)
        a = cell(x, h)
        b = cell(x * 2, h)
        z = cell(x, None)
    assert c.n == 3
    close(first, ref_cell(cell, x, h))
    close(a, ref_cell(cell, x, h))
    close(b, ref_cell(cell, x * 2, h))
    close(z, ref_cell(cell, x, torch.zeros(3, 7)))
    assert a.data_ptr() != b.data_ptr() and torch.equal(
        a, first
    )  # a later call did not overwrite a


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("batch", [5, 16])
def test_cell_plan_runs_larger_batches_through_the_blas_cell(batch, reset_after, monkeypatch):
    """Above stream.max_batch a float32 plan calls the BLAS cell step directly (no general path)."""
    from grukit.kernels import fused

    native = Count(stream._cell_f32)
    monkeypatch.setattr(stream, "_cell_f32", native)

    cell = randomize(grukit.GRUCell(5, 7, reset_after=reset_after))
    x, h = torch.randn(batch, 5), torch.randn(batch, 7)
    with torch.no_grad():
        cell(x[:2], h[:2])  # builds the plan
        plan = cell._step_plan
        n_cell = fused.calls["cell"]
        a = cell(x, h)
        z = cell(x, None)
        ref_a, ref_z = ref_cell(cell, x, h), ref_cell(cell, x, torch.zeros(batch, 7))
        cell.weight_hh.mul_(
            0.5
        )  # in place: the plan is rebuilt, the next call sees the new weights
        b = cell(x, h)
    assert (
        native.n == 3
    )  # the plan's own call, each time: the general path calls fused.cell instead
    assert fused.calls["cell"] - n_cell == 3 and plan is not cell._step_plan
    assert cell._step_plan is not None and a.data_ptr() != z.data_ptr()
    close(a, ref_a)
    close(z, ref_z)
    close(b, ref_cell(cell, x, h))


def test_cell_plan_invalidated_by_every_weight_change():
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    with torch.inference_mode(False), torch.no_grad():
        cell(x, h)
        plan0 = cell._step_plan
        cell.weight_hh.mul_(0.5)  # in place: _version
        close(cell(x, h), ref_cell(cell, x, h))
        assert cell._step_plan is not plan0
        cell.weight_ih.data = cell.weight_ih.data * 2  # .data: data_ptr (the version does not move)
        close(cell(x, h), ref_cell(cell, x, h))
        cell.bias_hh = torch.nn.Parameter(torch.randn(18))  # a new parameter object
        close(cell(x, h), ref_cell(cell, x, h))
        cell.load_state_dict(randomize(grukit.GRUCell(4, 6), seed=3).state_dict())
        close(cell(x, h), ref_cell(cell, x, h))
        cell.weight_hh.data.mul_(2)  # invisible to the key, but the weights are read in place
        close(cell(x, h), ref_cell(cell, x, h))
    cell.double()  # dtype change: float64 inputs take the general path
    out = cell(x.double(), h.double())
    assert out.dtype == torch.float64
    close(out, ref_cell(cell, x, h), atol=1e-12)


def test_cell_autograd_autocast_and_transforms_take_the_general_path():
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    with torch.no_grad():
        cell(x, h)
    c = counted(cell)
    out = cell(x, h)  # grad mode, parameters require grad: autograd
    assert out.grad_fn is not None and c.n == 0
    out.sum().backward()
    assert cell.weight_hh.grad is not None
    x2 = x.clone().requires_grad_()
    with torch.no_grad():
        assert cell(x2, h).grad_fn is None and c.n == 1  # no_grad: the fast path, even for x2
    cell.requires_grad_(False)
    assert cell(x2, h).grad_fn is not None and c.n == 1  # x requires grad
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = cell(
            x.bfloat16(), h
        )  # the general path casts to float32, turns autocast off, then steps
    assert c.n == 2 and out.dtype == torch.float32
    close(out, ref_cell(cell, x.bfloat16().float(), h))
    with torch.no_grad():
        traced = torch.jit.trace(cell, (x, h), check_trace=False)
    assert c.n == 2
    assert any(n.kind().startswith("aten::") for n in traced.graph.nodes())
    close(traced(x * 3, h), ref_cell(cell, x * 3, h))
    ep = torch.export.export(cell, (x, h))
    assert c.n == 2
    close(ep.module()(x, h), ref_cell(cell, x, h))
    jac = torch.func.jacrev(lambda xx: cell(xx, h))(x)
    assert c.n == 2 and jac.shape == (2, 6, 2, 4)
    with torch.no_grad():
        close(
            torch.vmap(lambda xx: cell(xx, h[:1]))(x.unsqueeze(1)).squeeze(1),
            ref_cell(cell, x, h[:1].expand(2, 6)),
        )
    assert c.n == 2


def test_cell_compile_takes_the_graph_path():
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    with torch.no_grad():
        cell(x, h)
        c = counted(cell)
        out = torch.compile(cell, backend="eager", fullgraph=True)(x, h)
    assert c.n == 0
    close(out, ref_cell(cell, x, h))


def test_weights_made_in_inference_mode():
    with torch.inference_mode():
        cell = randomize(grukit.GRUCell(4, 6))
        q = grukit.quantize(randomize(grukit.GRUCell(4, 6), seed=1))
        x, h = torch.randn(2, 4), torch.randn(2, 6)
        for m in (cell, q):
            close(m(x, h), ref_cell(m, x, h), atol=1e-4)
            m.weight_hh.mul_(0.5)  # in place on an inference tensor: read in place by the next step
            close(m(x, h), ref_cell(m, x, h), atol=1e-4)


def test_copies_and_pickles_rebuild_their_plan():
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(1, 4), torch.randn(1, 6)
    with torch.no_grad():
        cell(x, h)
        for other in (copy.deepcopy(cell), pickle.loads(pickle.dumps(cell))):
            assert other._step_plan is None
            with torch.no_grad():
                other.weight_hh.mul_(-1)
            close(other(x, h), ref_cell(other, x, h))
            close(cell(x, h), ref_cell(cell, x, h))


def _step_all(gru, x, h=None):
    ys = []
    for x_t in x:
        y, h = gru.step(x_t, h)
        ys.append(y)
    return torch.stack(ys), h


def test_cell_call_with_hooks_or_another_forward_runs_them():
    """GRUCell.__call__ takes the plan only when nn.Module.__call__ would just call GRUCell.forward."""
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    want = ref_cell(cell, x, h)
    with torch.no_grad():
        cell(x, h)
        native = counted(cell)
        close(cell(x, h), want)
        close(cell(x), ref_cell(cell, x, torch.zeros(2, 6)))
        assert native.n == 2  # no hooks: the plan ran straight from the call
        seen = []
        handles = [
            cell.register_forward_pre_hook(lambda m, a: seen.append("pre")),
            cell.register_forward_hook(lambda m, a, out: seen.append("post") or out * 2),
        ]
        close(cell(x, h), 2 * want)
        assert seen == ["pre", "post"]
        for hd in handles:
            hd.remove()
        g = torch.nn.modules.module.register_module_forward_hook(lambda m, a, out: out + 1)
        try:
            close(cell(x, h), want + 1)
        finally:
            g.remove()
        cell.forward = lambda x, h=None: torch.zeros(3)  # an instance's own forward
        assert cell(x, h).shape == (3,)
        del cell.forward
        close(cell(x, h=h), want)  # keywords: nn.Module.__call__, then the plan from forward

    class Doubled(grukit.GRUCell):
        def forward(self, x, h=None):
            return 2 * super().forward(x, h)

    sub = Doubled(4, 6)
    sub.load_state_dict(cell.state_dict())
    with torch.no_grad():
        sub(x, h)
        assert sub._step_plan is not None
        close(sub(x, h), 2 * want)


def test_streamer_step_returns_the_top_state_view():
    gru = randomize(grukit.GRU(3, 5, num_layers=2)).eval()
    s = Streamer(gru)
    y = s.step(torch.randn(1, 3))
    assert y.data_ptr() == s.h[-1].data_ptr() and torch.equal(y, s.h[-1])
    s.step(torch.randn(1, 3))
    assert torch.equal(y, s.h[-1])  # overwritten in place by the next step
    s.reset()
    assert not y.any()


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_step_fast_path_matches_reference(reset_after):
    gru = randomize(grukit.GRU(5, 8, num_layers=3, reset_after=reset_after)).eval()
    x, h0 = torch.randn(6, 2, 5), torch.randn(3, 2, 8)
    with torch.no_grad():
        gru.step(x[0], h0)
        c = counted(gru)
        ys, h = _step_all(gru, x, h0)
        y, h_new = gru.step(x[0])
    assert c.n == 7
    out, h_n, _ = reference_of(gru, x, h0)
    close(ys, out)
    close(h, h_n)
    ref1, _, _ = reference_of(gru, x[:1])
    close(y, ref1[0])
    h_new.zero_()  # y is not a view of h_new
    close(y, ref1[0])


def test_gru_step_training_masks_and_grad_take_the_general_path():
    gru = randomize(grukit.GRU(5, 8, num_layers=2, dropout=0.5))
    x = torch.randn(2, 5)
    with torch.no_grad():
        gru.eval()
        gru.step(x)
        c = counted(gru)
        gru.train()
        a, _ = gru.step(x)
        b, _ = gru.step(x)
    assert c.n == 0  # dropout between the layers in training
    gru.eval()
    y, _ = gru.step(x)
    assert c.n == 0 and y.grad_fn is not None
    with torch.inference_mode():
        gru.step(x)
    assert c.n == 1


def test_streamer_small_and_large_batches_match_reference():
    gru = randomize(grukit.GRU(5, 8, num_layers=2)).eval()
    for B, path in ((3, stream.active_path(False)), (6, "blas-cell")):
        s = Streamer(gru, batch_size=B)
        assert s.path == path
        x = torch.randn(4, B, 5)
        ys = [s.step(x_t.contiguous()).clone() for x_t in x]
        out, h_n, _ = reference_of(gru, x)
        close(torch.stack(ys), out)
        close(s.h, h_n)


# ----------------------------------------------------------------------------------------------- bf16
def _rounded_float(model):
    """A float32 copy of a quantized model: the same (rounded) weights, the general float32 path."""
    return grukit.quantize(copy.deepcopy(model), "float32")


@pytest.mark.parametrize("path", BF16_PATHS)
def test_bf16_cell_step_streamer_forward_match_reference(path, path_guard):
    stream.set_path(path)
    # dpbf16 splits the float32 input into bf16 hi + lo: ~2^-18 relative left over per input, so the
    # step can differ from the float64 reference by ~2^-18 · Σ|w||x| on top of float32 accumulation
    tol = 1e-4 if path == "bf16-dpbf16" else 1e-5  # docs/conventions.md

    def close(a, b):
        np.testing.assert_allclose(a.detach().numpy(), b, atol=tol, rtol=0)

    gru = grukit.quantize(randomize(grukit.GRU(6, 20, num_layers=2)).eval())
    assert gru.weight_hh_l1.dtype == torch.bfloat16 and gru.bias_hh_l1.dtype == torch.float32
    assert not gru.weight_ih_l0.requires_grad
    x, h0 = torch.randn(5, 3, 6), torch.randn(2, 3, 20)
    out, h_n, _ = reference_of(gru, x, h0)  # the reference on the bf16-rounded weights
    with torch.inference_mode():
        gru.step(x[0], h0)
        c = counted(gru)
        ys, h = _step_all(gru, x, h0)
        assert c.n == 5 and stream._NAMES[gru._step_plan._desc.path] == path
        close(ys, out), close(h, h_n)
        s = Streamer(gru, batch_size=3)
        assert s.path == path
        s.reset(h0)
        close(torch.stack([s.step(x_t.contiguous()).clone() for x_t in x]), out)
        o2, hn2 = gru(x, h0)  # the sequence: float32 kernel on upcast weights
        close(o2, out), close(hn2, h_n)
        assert gru.weight_hh_l0.dtype == torch.bfloat16  # restored after the call
        o3, _ = gru(x[:, 0])  # unbatched
        close(o3, reference_of(gru, x[:, :1])[0][:, 0])
    cell = randomize(grukit.GRUCell(6, 20, reset_after=False))
    grukit.quantize(cell, "bf16")
    xc, hc = torch.randn(4, 6), torch.randn(4, 20)
    with torch.no_grad():
        got = cell(xc, hc)
        close(got, ref_cell(cell, xc, hc))
        assert stream._NAMES[cell._step_plan._desc.path] == path
        close(cell(xc[0], hc[0]), ref_cell(cell, xc[:1], hc[:1])[0])  # unbatched: upcast path
        ref32 = _rounded_float(cell)
        close(ref32(xc, hc), got.numpy())


def test_bf16_training_is_refused_and_quantize_checks_its_input():
    gru = grukit.quantize(grukit.GRU(4, 6))
    x = torch.randn(3, 2, 4)
    gru(x)  # grad mode but nothing requires grad: inference, allowed
    with pytest.raises(RuntimeError, match="for inference only.*an input requires grad"):
        gru(x.requires_grad_())
    gru.weight_hh_l0.requires_grad_()
    with pytest.raises(RuntimeError, match="bfloat16 weights require grad"):
        gru.step(torch.randn(2, 4))
    cell = grukit.quantize(grukit.GRUCell(4, 6))
    cell.weight_ih.requires_grad_()
    with pytest.raises(RuntimeError, match="grukit.quantize\\(model, 'float32'\\)"):
        cell(torch.randn(2, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match="dtype must be one of"):
        grukit.quantize(grukit.GRU(4, 6), "int4")
    with pytest.raises(ValueError, match="expected torch.float32 weights"):
        grukit.quantize(grukit.GRU(4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="grukit.GRU or grukit.GRUCell"):
        grukit.quantize(torch.nn.Linear(2, 2))
    back = grukit.quantize(gru, "float32")
    assert back.weight_hh_l0.dtype == torch.float32 and back.weight_hh_l0.requires_grad
    back(x).__getitem__(0).sum().backward()
