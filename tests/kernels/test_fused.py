"""The fused CPU kernel against independent oracles: the float64 NumPy reference, torch.nn.GRU, the composite
(pure-torch autograd) path, and gradcheck / gradgradcheck. Tolerances follow docs/conventions.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import numpy_params, randomize, rel_err
from torch.autograd import gradcheck, gradgradcheck

import grukit
from grukit import reference
from grukit.functional import gru as composite
from grukit.kernels import dispatch
from grukit.nn import Streamer

fused = pytest.importorskip(
    "grukit.kernels.fused", reason="the native fused kernel could not be built here"
)

TOL = {
    torch.float32: dict(out=1e-5, grad=1e-4, same=1e-6),
    torch.float64: dict(out=1e-10, grad=1e-9, same=1e-12),
}


def absdiff(a, b) -> float:
    a, b = (t.detach() if isinstance(t, torch.Tensor) else t for t in (a, b))
    return float(
        (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64))
        .abs()
        .max()
    )


@pytest.fixture(params=["matvec", "gate", "blas", "blas-packed"])
def kernel_mode(request, monkeypatch):
    """Run each test through every per-step product kernel: the hand-written matvec, the forward's fused
    GEMM + gates kernel (reset_after=True; reset_after=False runs the BLAS GEMM there), the BLAS GEMM, and the
    BLAS GEMM on MKL-packed weights (where torch's MKL has that API)."""
    monkeypatch.setattr(fused, "matvec_max_batch", 10**9 if request.param == "matvec" else 0)
    monkeypatch.setattr(fused, "gate_kernel", request.param == "gate")
    monkeypatch.setattr(fused, "gate_backward_min_hidden", 0)
    if request.param == "blas-packed":
        if not fused.use_mkl_pack(True):
            pytest.skip("torch's BLAS has no MKL packed-GEMM API")
        yield request.param
        fused.use_mkl_pack(False)
    else:
        yield request.param


def _direction_args(T, B, I, H, dtype, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()

    return dict(
        x=r(T, B, I),
        h0=r(B, H),
        w_ih=r(3 * H, I),
        w_hh=r(3 * H, H),
        b_ih=r(3 * H) if bias else None,
        b_hh=r(3 * H) if bias else None,
    )


# ------------------------------------------------------------------------------------------------ the seam
def test_default_gru_and_cell_on_cpu_run_the_fused_kernel():
    gru = grukit.GRU(3, 5, num_layers=2, bidirectional=True)
    before = dict(fused.calls)
    out, h = gru(torch.randn(4, 2, 3))
    (out.sum() + h.sum()).backward()
    assert fused.calls["sequence"] - before.get("sequence", 0) == 4  # 2 layers × 2 directions
    assert fused.calls["sequence_backward"] - before.get("sequence_backward", 0) == 4
    cell = grukit.GRUCell(3, 5)
    with torch.inference_mode():
        cell(torch.randn(2, 3))
    assert fused.calls["cell"] - before.get("cell", 0) == 1
    # backend="torch" never touches the fused kernel
    n = fused.calls["sequence"]
    grukit.GRU(3, 5, backend="torch")(torch.randn(4, 2, 3))
    assert fused.calls["sequence"] == n


def test_unsupported_calls_fall_back_or_raise():
    kw = {k: v.detach() for k, v in _direction_args(3, 2, 3, 4, torch.float32).items()}
    half = {k: v.to(torch.bfloat16) for k, v in kw.items()}
    common = dict(reset_after=True, lengths=None, reverse=False, return_gates=False)
    assert fused.unsupported_reason("sequence", **kw, **common) is None
    assert "bfloat16" in fused.unsupported_reason("sequence", **half, **common)
    n = fused.calls["sequence"]
    out, _, _ = dispatch("sequence", "auto", **half, **common)  # quietly composite
    assert out.dtype == torch.bfloat16 and fused.calls["sequence"] == n
    with pytest.raises(
        ValueError, match="backend='fused' cannot run this call: dtype torch.bfloat16"
    ):
        dispatch("sequence", "fused", **half, **common)
    meta = {k: v.to("meta") for k, v in kw.items()}
    assert "meta" in fused.unsupported_reason("sequence", **meta, **common)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake = {k: mode.from_tensor(v) for k, v in kw.items()}
        assert fused.unsupported_reason("sequence", **fake, **common) is not None
    grad_kw = _direction_args(3, 2, 3, 4, torch.float32)
    assert "return_gates" in fused.unsupported_reason(
        "sequence", **grad_kw, **{**common, "return_gates": True}
    )


def test_build_failure_is_a_clear_error(tmp_path, monkeypatch):
    from grukit.kernels import _build

    monkeypatch.setenv("GRUKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(_build.BuildError, match="compiling gru_fused.cpp.* failed"):
        _build.build()
    assert not list(tmp_path.rglob("*.so"))  # no partial library left in the cache


def test_the_shared_header_is_part_of_the_cache_key(tmp_path, monkeypatch):
    """The sources include gru_simd.h: a changed header must give a new cached library, not the old one."""
    from grukit.kernels import _build

    monkeypatch.setenv("GRUKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "true")  # the key needs `$CXX --version` only: no compiler required
    before, cmd = _build.library_path()
    header = tmp_path / "gru_simd.h"
    header.write_bytes(_build.HEADERS[0].read_bytes() + b"// changed\n")
    monkeypatch.setattr(_build, "HEADERS", [header])
    after, _ = _build.library_path()
    assert before != after and all(src.exists() for src in _build.SOURCES)


# ------------------------------------------------------------------------------------- one direction, grid
GRID = [
    # T, B, I, H
    (5, 3, 4, 6),
    (1, 1, 1, 1),
    (7, 1, 3, 33),  # H not a multiple of the vector width
    (4, 5, 1, 17),
    (6, 9, 5, 1),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("T,B,I,H", GRID)
def test_direction_matches_reference_and_composite(kernel_mode, dtype, reset_after, T, B, I, H):
    tol = TOL[dtype]
    for reverse, use_lengths, bias in (
        (False, False, True),
        (True, False, True),  # no lengths: backward reads the states from out and h0, walking back
        (True, True, True),
        (False, True, False),
    ):
        kw = _direction_args(T, B, I, H, dtype, bias=bias, seed=T * 100 + B)
        lengths = torch.randint(1, T + 1, (B,)) if use_lengths else None
        common = dict(reset_after=reset_after, lengths=lengths, reverse=reverse)
        n = fused.calls["sequence_backward"]
        out, hn, _ = fused.sequence(**kw, **common)
        ro, rh, _ = reference.gru_direction(
            *(None if v is None else v.detach().double().numpy() for v in kw.values()),
            reset_after=reset_after,
            lengths=None if lengths is None else lengths.numpy(),
            reverse=reverse,
        )
        assert absdiff(out, ro) <= tol["out"] and absdiff(hn, rh) <= tol["out"]
        cout, chn, _ = composite.sequence(**kw, **common)
        assert absdiff(out, cout) <= tol["same"] and absdiff(hn, chn) <= tol["same"]
        go, gh = torch.randn_like(out), torch.randn_like(hn)
        inputs = [v for v in kw.values() if v is not None]
        g_f = torch.autograd.grad((out, hn), inputs, (go, gh))
        g_c = torch.autograd.grad((cout, chn), inputs, (go, gh))
        assert fused.calls["sequence_backward"] == n + 1
        for name, a, b in zip([k for k, v in kw.items() if v is not None], g_f, g_c):
            assert rel_err(a, b) <= tol["grad"], (name, rel_err(a, b))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_through_the_fused_function(kernel_mode, reset_after, reverse, bias):
    kw = _direction_args(4, 3, 2, 3, torch.float64, bias=bias)
    lengths = torch.tensor([4, 1, 3])
    names = [k for k, v in kw.items() if v is not None]

    def f(*ts):
        args = dict(zip(names, ts))
        args.setdefault("b_ih", None), args.setdefault("b_hh", None)
        return fused._FusedSequence.apply(
            args["x"],
            args["h0"],
            args["w_ih"],
            args["w_hh"],
            args["b_ih"],
            args["b_hh"],
            lengths,
            reset_after,
            reverse,
        )

    assert gradcheck(f, tuple(kw[k] for k in names), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradgradcheck_through_the_default_backend(reset_after):
    """Double backward recomputes through the composite path (tests/nn covers the layer grid)."""
    gru = randomize(grukit.GRU(2, 2, reset_after=reset_after, dtype=torch.float64))
    names = [n for n, _ in gru.named_parameters()]
    x = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]

    def f(x, h0, *ps):
        return torch.func.functional_call(gru, dict(zip(names, ps)), (x, h0), {"lengths": [2, 1]})

    n = fused.calls["sequence"]
    assert gradgradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6)
    assert fused.calls["sequence"] > n  # the first derivative went through the fused Function


# ----------------------------------------------------------------------------------- the layer, end to end
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_layer_matches_torch_gru(kernel_mode, dtype, num_layers, bidirectional):
    tol = TOL[dtype]
    ref = randomize(torch.nn.GRU(4, 6, num_layers, bidirectional=bidirectional, dtype=dtype))
    gru = grukit.GRU(4, 6, num_layers, bidirectional=bidirectional, dtype=dtype)
    gru.load_state_dict(ref.state_dict())
    D = 2 if bidirectional else 1
    x = torch.randn(7, 3, 4, dtype=dtype, requires_grad=True)
    h0 = torch.randn(num_layers * D, 3, 6, dtype=dtype, requires_grad=True)
    out, hn = gru(x, h0)
    rout, rhn = ref(x, h0)
    assert absdiff(out, rout) <= tol["out"] and absdiff(hn, rhn) <= tol["out"]
    go, gh = torch.randn_like(out), torch.randn_like(hn)
    inputs = [x, h0, *gru.parameters()]
    g1 = torch.autograd.grad((out, hn), inputs, (go, gh))
    g2 = torch.autograd.grad((rout, rhn), [x, h0, *ref.parameters()], (go, gh))
    for a, b in zip(g1, g2):
        assert rel_err(a, b) <= tol["grad"]


@pytest.mark.parametrize("reset_after", [True, False])
def test_layer_with_lengths_matches_reference_and_packed_torch(kernel_mode, reset_after):
    dtype = torch.float64
    gru = randomize(grukit.GRU(3, 5, 2, bidirectional=True, reset_after=reset_after, dtype=dtype))
    lengths = [6, 2, 5, 1]
    x = torch.randn(6, 4, 3, dtype=dtype)
    h0 = torch.randn(4, 4, 5, dtype=dtype)
    out, hn = gru(x, h0, lengths=lengths)
    ro, rh, _ = reference.gru(
        x.numpy(), numpy_params(gru), 2, True, reset_after, h0.numpy(), np.array(lengths)
    )
    assert absdiff(out, ro) <= 1e-10 and absdiff(hn, rh) <= 1e-10
    if reset_after:  # torch's packed GRU as a second oracle, gradients included
        ref = torch.nn.GRU(3, 5, 2, bidirectional=True, dtype=dtype)
        ref.load_state_dict(gru.state_dict())
        xg = x.clone().requires_grad_()
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xg, torch.tensor(lengths), enforce_sorted=False
        )
        pout, phn = ref(packed, h0)
        pout = torch.nn.utils.rnn.pad_packed_sequence(pout, total_length=6)[0]
        xf = x.clone().requires_grad_()
        out, hn = gru(xf, h0, lengths=lengths)
        assert absdiff(out, pout) <= 1e-10 and absdiff(hn, phn) <= 1e-10
        go, gh = torch.randn_like(out), torch.randn_like(hn)
        g1 = torch.autograd.grad((out, hn), [xf, *gru.parameters()], (go, gh))
        g2 = torch.autograd.grad((pout, phn), [xg, *ref.parameters()], (go, gh))
        for a, b in zip(g1, g2):
            assert rel_err(a, b) <= 1e-9


def test_non_contiguous_inputs(kernel_mode):
    gru = randomize(grukit.GRU(4, 5, batch_first=True))
    base = torch.randn(3, 16, 9)
    x = base[:, ::2, 1:9:2].detach().requires_grad_()  # (3, 8, 4), strided in every dimension
    assert not x.is_contiguous()
    h0 = torch.randn(3, 1, 5).transpose(0, 1)  # (1, 3, 5) non-contiguous
    out, hn = gru(x, h0)
    xc = x.detach().contiguous().requires_grad_()
    ref = torch.nn.GRU(4, 5, batch_first=True)
    ref.load_state_dict(gru.state_dict())
    rout, rhn = ref(xc, h0.contiguous())
    assert absdiff(out, rout) <= 1e-5 and absdiff(hn, rhn) <= 1e-5
    go = torch.randn(5, 3, 8).permute(1, 2, 0)  # a non-contiguous upstream gradient
    (gx,) = torch.autograd.grad(out, x, go)
    (rgx,) = torch.autograd.grad(rout, xc, go)
    assert rel_err(gx, rgx) <= 1e-4


def test_return_gates_without_grad_match_reference():
    gru = randomize(grukit.GRU(3, 4, bidirectional=True, reset_after=False, dtype=torch.float64))
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    n = fused.calls["sequence"]
    with torch.no_grad():
        _, _, gates = gru(x, lengths=[5, 3], return_gates=True)
    assert fused.calls["sequence"] == n + 2
    _, _, rg = reference.gru(x.numpy(), numpy_params(gru), 1, True, False, None, np.array([5, 3]))
    for k, g in enumerate((gates.z, gates.r, gates.n)):
        assert absdiff(g, rg[:, :, k]) <= 1e-10


def test_nan_propagates_like_the_composite_path():
    gru = randomize(grukit.GRU(2, 3))
    x = torch.randn(4, 2, 2)
    x[1, 0, 0] = float("nan")
    with torch.no_grad():
        out, hn = gru(x)
    ref = grukit.GRU(2, 3, backend="torch")
    ref.load_state_dict(gru.state_dict())
    with torch.no_grad():
        cout, chn = ref(x)
    assert (
        torch.equal(out.isnan(), cout.isnan())
        and out[1:, 0].isnan().all()
        and not out[:, 1].isnan().any()
    )
    assert torch.equal(hn.isnan(), chn.isnan())


def test_two_threads_agree_with_one(kernel_mode):
    kw = {
        k: v.detach() for k, v in _direction_args(5, 3, 5, 200, torch.float64).items()
    }  # enough work for 2
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = fused.sequence(**kw, lengths=torch.tensor([5, 4, 1]))
        torch.set_num_threads(2)
        b = fused.sequence(**kw, lengths=torch.tensor([5, 4, 1]))
    finally:
        torch.set_num_threads(old)
    assert absdiff(a[0], b[0]) <= 1e-12 and absdiff(a[1], b[1]) <= 1e-12


@pytest.mark.parametrize("reset_after", [True, False])
def test_two_threads_agree_with_one_in_backward(kernel_mode, reset_after):
    """The backward's bias sums are kept per thread: with work enough for two threads in the elementwise pass
    (B·H ≥ 32768 on the BLAS path; B·3H² on the packed one), every gradient equals the one-thread run and
    the float64 composite."""
    kw = _direction_args(3, 180, 4, 200, torch.float64, seed=3)
    lengths = torch.randint(1, 4, (180,))
    inputs = list(kw.values())
    old = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out, hn, _ = fused.sequence(**kw, reset_after=reset_after, lengths=lengths)
            grads.append(torch.autograd.grad((out, hn), inputs, (torch.ones_like(out), hn)))
    finally:
        torch.set_num_threads(old)
    cout, chn, _ = composite.sequence(**kw, reset_after=reset_after, lengths=lengths)
    ref = torch.autograd.grad((cout, chn), inputs, (torch.ones_like(cout), chn))
    for name, a, b, c in zip(kw, *grads, ref):
        assert rel_err(a, b) <= 1e-12, name
        assert rel_err(a, c) <= TOL[torch.float64]["grad"], name


def test_saved_values_without_lengths_are_the_gates_and_the_output():
    """Without lengths, backward reads the state before each step from the output and h0, so the forward
    keeps one (T, B, H) tensor (the output) besides the gates; with lengths it keeps hprev instead. Changing
    the output in place before backward is then refused by autograd (never a wrong gradient); with
    lengths it is allowed and the gradient is still torch.nn.GRU's."""
    T, B, I, H = 5, 6, 3, 8
    gru = randomize(grukit.GRU(I, H))
    x = torch.randn(T, B, I, requires_grad=True)

    def saved_shapes(**kw):
        shapes = []

        def pack(t):
            shapes.append(tuple(t.shape))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            gru(x, **kw)
        return shapes

    assert saved_shapes().count((T, B, H)) == 1
    lengths = [5, 4, 3, 2, 1, 1]
    assert saved_shapes(lengths=lengths).count((T, B, H)) == 1
    assert saved_shapes().count((T, B, 4 * H)) == 1
    out, _ = gru(x)
    out.add_(1.0)
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()
    ref = torch.nn.GRU(I, H)
    ref.load_state_dict(gru.state_dict())
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    rout = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=T)[0]
    w = torch.randn(T, B, H)
    (want,) = torch.autograd.grad((rout * w).sum(), x)
    out, _ = gru(x, lengths=lengths)
    out.mul_(w)  # in place: allowed, nothing saved reads out
    (got,) = torch.autograd.grad(out.sum(), x)
    assert rel_err(got, want) <= TOL[torch.float32]["grad"]


@pytest.mark.parametrize("reset_after", [True, False])
def test_broadcast_and_strided_output_gradients(kernel_mode, reset_after):
    """The kernel reads the output gradient through its strides: one broadcast along steps and rows
    (``out.sum()``), along steps only, and a non-contiguous slice all give torch.nn.GRU's float64 gradients,
    without first copying a broadcast gradient out to T·B·H values."""
    T, B, I, H = 6, 5, 3, 20
    gru = randomize(grukit.GRU(I, H, reset_after=reset_after, dtype=torch.float64), seed=4)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    ref = None
    if reset_after:
        ref = torch.nn.GRU(I, H, dtype=torch.float64)
        ref.load_state_dict(gru.state_dict())
    else:
        ref = grukit.GRU(I, H, reset_after=False, dtype=torch.float64, backend="torch")
        ref.load_state_dict(gru.state_dict())
    w = torch.randn(B, H, dtype=torch.float64)
    wide = torch.randn(T, B, 2 * H, dtype=torch.float64)
    losses = {
        "sum": lambda o: o.sum(),
        "per-row weights": lambda o: (o * w).sum(),  # gradient w expanded over steps
        "slice": lambda o: (o * wide[..., :H]).sum(),  # gradient a view with row stride 2H
        "transposed": lambda o: (
            o * wide[..., :H].transpose(0, 1).contiguous().transpose(0, 1)
        ).sum(),
    }
    for name, loss in losses.items():
        params = [x, *gru.parameters()]
        got = torch.autograd.grad(loss(gru(x)[0]), params)
        want = torch.autograd.grad(loss(ref(x)[0]), [x, *ref.parameters()])
        for a, b in zip(got, want):
            assert rel_err(a, b) <= TOL[torch.float64]["grad"], name
    g = torch.ones(1, dtype=torch.float64).expand(T, B, H)
    rows, sdt, sdb = fused._rows(g)
    assert rows.numel() == H and (sdt, sdb) == (0, 0)
    rows, sdt, sdb = fused._rows(w.expand(T, B, H))  # rows already contiguous: read in place
    assert rows.data_ptr() == w.data_ptr() and (sdt, sdb) == (0, H)
    rows, sdt, sdb = fused._rows(w[:, :1].expand(T, B, H))  # one value per row: only B·H are made
    assert rows.shape == (1, B, H) and (sdt, sdb) == (0, H)


# ----------------------------------------------------------------------------------------- cell and step
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B", [1, 3])  # batch 1: dot products; else BLAS
def test_cell_matches_reference(dtype, reset_after, B):
    cell = randomize(grukit.GRUCell(5, 7, reset_after=reset_after, dtype=dtype))
    x, h = torch.randn(B, 5, dtype=dtype), torch.randn(B, 7, dtype=dtype)
    n = fused.calls["cell"]
    with torch.inference_mode():
        out = cell(x, h)
    assert fused.calls["cell"] == n + 1
    p = {k: v.detach().double().numpy() for k, v in cell.state_dict().items()}
    ref, _ = reference.gru_cell(
        x.double().numpy(),
        h.double().numpy(),
        p["weight_ih"],
        p["weight_hh"],
        p["bias_ih"],
        p["bias_hh"],
        reset_after,
    )
    assert absdiff(out, ref) <= TOL[dtype]["out"]
    # with autograd: gradients against the composite path
    xg, hg = x.clone().requires_grad_(), h.clone().requires_grad_()
    tcell = grukit.GRUCell(5, 7, reset_after=reset_after, dtype=dtype, backend="torch")
    tcell.load_state_dict(cell.state_dict())
    g1 = torch.autograd.grad(cell(xg, hg).sum(), [xg, hg, *cell.parameters()])
    g2 = torch.autograd.grad(tcell(xg, hg).sum(), [xg, hg, *tcell.parameters()])
    for a, b in zip(g1, g2):
        assert rel_err(a, b) <= TOL[dtype]["grad"]


def test_streaming_steps_equal_the_whole_sequence():
    gru = randomize(grukit.GRU(3, 16, num_layers=2))
    x = torch.randn(6, 1, 3)
    with torch.inference_mode():
        out, hn = gru(x)
        h = None
        ys = []
        for t in range(6):
            y, h = gru.step(x[t, 0], h)
            ys.append(y)
    assert absdiff(torch.stack(ys), out[:, 0]) <= 1e-6 and absdiff(h, hn[:, 0]) <= 1e-6


def test_without_the_native_kernel_everything_uses_the_composite_path(tmp_path):
    import subprocess
    import sys

    code = (
        "import torch, grukit\n"
        "from grukit.kernels import fused_unsupported_reason\n"
        "g = grukit.GRU(2, 3); out, h = g(torch.randn(4, 2, 2)); out.sum().backward()\n"
        "r = fused_unsupported_reason('cell', x=torch.randn(1, 2), h=torch.randn(1, 3), w_ih=g.weight_ih_l0,"
        " w_hh=g.weight_hh_l0, b_ih=None, b_hh=None, reset_after=True)\n"
        "assert 'GRUKIT_NO_FUSED' in r, r\n"
        "try:\n    grukit.GRU(2, 3, backend='fused')(torch.randn(4, 2, 2))\n"
        "except ValueError as e:\n    print('refused:', e)\n"
    )
    env = {**__import__("os").environ, "GRUKIT_NO_FUSED": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: backend='fused' cannot run this call" in proc.stdout


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streamer_matches_reference(reset_after, dtype):
    gru = randomize(grukit.GRU(3, 20, num_layers=2, reset_after=reset_after, dtype=dtype))
    x = torch.randn(5, 2, 3, dtype=dtype)
    h0 = torch.randn(2, 2, 20, dtype=dtype)
    s = Streamer(gru, batch_size=2)
    s.reset(h0)
    ys = [s.step(x[t].contiguous()).clone() for t in range(5)]
    ro, rh, _ = reference.gru(x.numpy(), numpy_params(gru), 2, False, reset_after, h0.numpy())
    assert (
        absdiff(torch.stack(ys), ro) <= TOL[dtype]["out"] and absdiff(s.h, rh) <= TOL[dtype]["out"]
    )
    cell = randomize(grukit.GRUCell(3, 4, reset_after=reset_after, dtype=dtype))
    sc = Streamer(cell)
    xt = torch.randn(1, 3, dtype=dtype)
    with torch.no_grad():
        assert absdiff(sc.step(xt), grukit.GRUCell.forward(cell, xt)) <= TOL[dtype]["same"]


def test_streamer_refuses_bad_use():
    with pytest.raises(ValueError, match="unidirectional"):
        Streamer(grukit.GRU(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="bfloat16"):
        Streamer(grukit.GRU(3, 4, dtype=torch.bfloat16))
    s = Streamer(grukit.GRU(3, 4), batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        s.step(torch.randn(1, 3))
    with pytest.raises(ValueError, match="reset expected h of shape"):
        s.reset(torch.zeros(2, 2, 4))


def test_performance_page_tables_come_from_the_recorded_results():
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("bench_gru", root / "benchmarks" / "bench_gru.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = json.loads((root / "benchmarks" / "results" / "cpu.json").read_text())
    assert set(data) == {"name", "families"} and data["families"]  # one record per CPU family
    for family, result in data["families"].items():
        assert (
            bench.cpu_family(result["machine"]) == family
            and "python benchmarks/bench_gru.py" in result["command"]
            and "load" in result["machine"]["note"]  # the run says how loaded the machine was
            and "load_average_at_start" in result["machine"]
        )
        for row in result.get("autocast_bf16", []):  # the autocast rows' ratios match their times
            ms = row["forward_backward_ms"]
            assert row["ratios"]["autocast_speedup_vs_nn_gru_autocast"] == round(
                ms["nn_gru_autocast"] / ms["grukit_autocast"], 2
            )
        for row in result[
            "streaming"
        ]:  # int8 rows (issue 32): ratios from the times of the same run
            us = row["us_per_step"]
            if "grukit_int8" in us:
                assert row["int8_speedup_vs_nn_grucell"] == round(
                    us["nn_grucell"] / us["grukit_int8"], 2
                )
                assert row["int8_speedup_vs_bf16"] == round(
                    us["grukit_bf16"] / us["grukit_int8"], 2
                )
    section = (
        root / "docs" / "performance.md"
    ).read_text()  # the Performance page (was a README section)
    assert bench.markdown(data) in section
    # the README's int8 claim is the AMD record's 1-thread CPU-time ratio at H = 512
    amd = next(r for f, r in data["families"].items() if f.startswith("AMD"))
    row = next(
        r for r in amd["streaming"] if (r["batch"], r["hidden"], r["threads"]) == (1, 512, 1)
    )
    readme = (root / "README.md").read_text()
    assert f"**{row['cpu_int8_speedup_vs_nn_grucell']:.1f}×** `nn.GRUCell`" in readme
    assert f"{row['cpu_int8_speedup_vs_bf16']:.2f}× the bf16 step" in readme
    # the README's autocast, GRUCell and batch-1 claims are the same record's 1-thread CPU-time ratios
    ac = next(
        r
        for r in amd["autocast_bf16"]
        if r["threads"] == 1 and tuple(r["shape"].values()) == (1, 64, 200, 256, 512)
    )
    assert (
        f"bf16 autocast training **{ac['ratios_cpu_time']['autocast_speedup_vs_nn_gru_autocast']:.2f}×**"
        in readme
    )
    cell = next(
        r for r in amd["streaming"] if (r["batch"], r["hidden"], r["threads"]) == (1, 256, 1)
    )
    assert f"H = 256 **{cell['cpu_speedup_vs_nn_grucell']:.1f}×** `nn.GRUCell`" in readme
    one = {tuple(r["shape"].values()): r for r in amd["shapes"] if r["threads"] == 1}
    b1 = one[(1, 1, 1000, 64, 256)]["ratios_cpu_time"]["fwd_bwd_speedup_vs_nn_gru"]
    assert f"(T = 1000, H = 256) **{b1:.1f}×** `torch.nn.GRU`" in readme
    worst = max(r["ratios_cpu_time"]["fwd_bwd_over_floor"] for s, r in one.items() if s[1] >= 16)
    assert f"training at batch ≥ 16 within {worst:.2f}× of the GEMM floor" in readme


def test_the_quiet_rerun_quoted_on_the_performance_page_matches_its_file():
    """docs/performance.md's "quiet rerun" bullet and the README's autocast claim quote
    benchmarks/results/cpu_quiet_round3c.json (1 thread, process CPU time; autocast ratios from the times)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data = json.loads((root / "benchmarks" / "results" / "cpu_quiet_round3c.json").read_text())
    (rec,) = data["families"].values()
    assert "python benchmarks/bench_gru.py" in data["command"] and rec["complete"]
    one = {tuple(r["shape"].values()): r for r in rec["shapes"] if r["threads"] == 1}
    page = " ".join((root / "docs" / "performance.md").read_text().split())
    small = one[(1, 256, 50, 32, 64)]["ratios_cpu_time"]["fwd_bwd_over_floor"]
    assert f"**{small:.2f}×** the floor (1 thread, CPU time)" in page
    others = [
        r["ratios_cpu_time"]["fwd_bwd_over_floor"]
        for s, r in one.items()
        if s[1] >= 16 and s != (1, 256, 50, 32, 64)
    ]
    assert f"batch ≥ 16 shapes {min(others):.2f}–{max(others):.2f}×" in page
    cell = next(
        r for r in rec["streaming"] if (r["threads"], r["batch"], r["hidden"]) == (1, 1, 256)
    )
    us = cell["cpu_us_per_step"]
    assert f"**{round(us['nn_grucell'] / us['grukit'], 2):.2f}×** `nn.GRUCell`" in page
    ac = {
        (tuple(r["shape"].values()), r["threads"]): r["forward_backward_cpu_ms"]
        if r["threads"] == 1
        else r["forward_backward_ms"]
        for r in rec["autocast_bf16"]
    }
    big = ac[((1, 64, 200, 256, 512), 1)]
    small_ac = ac[((1, 32, 100, 128, 256), 1)]
    r_big = round(big["nn_gru_autocast"] / big["grukit_autocast"], 2)
    r_small = round(small_ac["nn_gru_autocast"] / small_ac["grukit_autocast"], 2)
    assert f"**{r_big:.2f}×** `nn.GRU`" in page and f"the smaller shape {r_small:.2f}×" in page
    readme = " ".join((root / "README.md").read_text().split())
    assert f"before this round's workspace reuse, {r_big:.2f}× on a quiet machine" in readme
