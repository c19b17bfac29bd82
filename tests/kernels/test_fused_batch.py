"""The large-batch paths of the fused kernel against independent oracles (torch.nn.GRU, the float64 NumPy
reference): the fused GEMM + gates kernels (forward and backward, reset_after=True, batch > 4), the bias
gradients summed inside the backward loop, and the per-thread workspace that reuses big buffers across
calls (it must never hand out a buffer something still holds). Tolerances follow docs/conventions.md."""

from __future__ import annotations

import threading

import pytest
import torch
from support import rel_err

import grukit
from grukit import reference

fused = pytest.importorskip(
    "grukit.kernels.fused", reason="the native fused kernel could not be built here"
)


def pair(I, H, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    ref = torch.nn.GRU(I, H, dtype=dtype, **kw)
    gru = grukit.GRU(I, H, dtype=dtype, **kw)
    gru.load_state_dict(ref.state_dict())
    return gru, ref


def grads(model, x, h0):
    """(out, h_n, grads of x, h0 and every parameter) for a fixed, non-trivial loss."""
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    out, hn = model(x, h0)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + hn.square().sum()
    g = torch.autograd.grad(loss, [x, h0, *model.parameters()])
    return out.detach(), hn.detach(), g


def check_against_torch(gru, ref, x, h0, tol_out=1e-5, tol_grad=1e-4):
    o1, h1, g1 = grads(gru, x, h0)
    o2, h2, g2 = grads(ref, x, h0)
    assert rel_err(o1, o2) <= tol_out and rel_err(h1, h2) <= tol_out
    names = ["x", "h0"] + [n for n, _ in gru.named_parameters()]
    for name, a, b in zip(names, g1, g2):
        assert rel_err(a, b) <= tol_grad, (name, rel_err(a, b))


@pytest.fixture
def gate_paths(monkeypatch):
    """The defaults of this module's paths (so a test runs them even if a default changes)."""
    monkeypatch.setattr(fused, "gate_kernel", True)
    monkeypatch.setattr(fused, "gate_backward_min_hidden", 128)
    monkeypatch.setattr(fused, "matvec_max_batch", 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,H", [(5, 128), (13, 130), (9, 64), (32, 256)])
def test_gate_kernels_match_torch_gru(gate_paths, dtype, B, H):
    """H=130: a partial panel of units; H=64: the backward takes the BLAS path, the forward the gate kernel."""
    gru, ref = pair(7, H, dtype, bidirectional=True)
    x = torch.randn(6, B, 7, dtype=dtype)
    h0 = torch.randn(2, B, H, dtype=dtype)
    tol = (1e-5, 1e-4) if dtype == torch.float32 else (1e-10, 1e-9)
    n = fused.calls["sequence_backward"]
    check_against_torch(gru, ref, x, h0, *tol)
    assert fused.calls["sequence_backward"] > n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("T,rows", [(7, 12), (9, 18), (5, 6)])
def test_chunked_backward_matches_torch_and_the_one_pass_loop(
    gate_paths, monkeypatch, dtype, bidirectional, T, rows
):
    """The BLAS-path backward (H < gate_backward_min_hidden) in chunks of steps (backward_chunk_rows): chunks
    of 2 and 3 steps with a shorter last one and a chunk of one step, both walk directions (the reverse
    direction's chunks start from the other end, h0 sits in its last chunk): gradients of x, h0 and every
    parameter match torch.nn.GRU, and the one-pass loop's (dx bit for bit; the weight and bias gradients, sums
    over chunks, to summation order)."""
    B, I, H = 6, 5, 24
    gru, ref = pair(I, H, dtype, bidirectional=bidirectional)
    x = torch.randn(T, B, I, dtype=dtype)
    h0 = torch.randn(2 if bidirectional else 1, B, H, dtype=dtype)
    chunked = []
    real = fused._backward_chunks

    def spy(*a, **k):
        chunked.append(a[-1])
        return real(*a, **k)

    monkeypatch.setattr(fused, "_backward_chunks", spy)
    monkeypatch.setattr(fused, "backward_chunk_rows", rows)
    monkeypatch.setattr(fused, "backward_chunk_min_bytes", 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    tol = (1e-5, 1e-4) if dtype == torch.float32 else (1e-10, 1e-9)
    check_against_torch(gru, ref, x, h0, *tol)
    assert chunked and set(chunked) == {-(-rows // B)}
    got = grads(gru, x, h0)
    monkeypatch.setattr(fused, "backward_chunk_rows", 0)
    n = len(chunked)
    want = grads(gru, x, h0)
    assert len(chunked) == n  # the one-pass loop
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    names = ["x", "h0"] + [name for name, _ in gru.named_parameters()]
    for name, a, b in zip(names, got[2], want[2], strict=True):
        if name == "x":
            assert torch.equal(a, b), name
        else:
            assert rel_err(a, b) <= (1e-6 if dtype == torch.float32 else 1e-14), name


def test_chunked_backward_with_some_gradients_only(gate_paths, monkeypatch):
    """Only the weights need gradients (x and h0 do not), and the loss reads h_n alone (no output gradient):
    the chunked walk still carries dh through every chunk."""
    monkeypatch.setattr(fused, "backward_chunk_rows", 12)
    monkeypatch.setattr(fused, "backward_chunk_min_bytes", 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    gru, ref = pair(4, 20, bias=False)
    x = torch.randn(8, 6, 4)
    for m in (gru, ref):
        _, hn = m(x)
        hn.square().sum().backward()
    for (name, a), b in zip(gru.named_parameters(), ref.parameters(), strict=True):
        assert rel_err(a.grad, b.grad) <= 1e-4, name


def test_bias_gradients_over_many_rows_match_the_float64_reference(gate_paths):
    """The backward sums db over T·B rows inside its loop; in float32 that must stay within the grad tolerance."""
    T, B, I, H = 300, 24, 5, 128
    gru, _ = pair(I, H)
    ref64 = torch.nn.GRU(I, H, dtype=torch.float64)
    ref64.load_state_dict({k: v.double() for k, v in gru.state_dict().items()})
    x = torch.randn(T, B, I)
    out, hn = gru(x)
    out.sum().backward()
    rout, _ = ref64(x.double())
    rout.sum().backward()
    for name in ("bias_ih_l0", "bias_hh_l0", "weight_hh_l0"):
        a, b = getattr(gru, name).grad, getattr(ref64, name).grad
        assert rel_err(a.double(), b) <= 1e-4, (name, rel_err(a.double(), b))


def test_inference_path_with_lengths_and_reverse_matches_the_reference(gate_paths):
    T, B, I, H = 9, 7, 4, 40
    gru, _ = pair(I, H)
    w = {k: v.detach().double().numpy() for k, v in gru.state_dict().items()}
    x = torch.randn(T, B, I)
    h0 = torch.randn(B, H)
    lengths = torch.tensor([9, 1, 5, 9, 2, 7, 3])
    args = [x.double().numpy(), h0.double().numpy(), w["weight_ih_l0"], w["weight_hh_l0"]]
    args += [w["bias_ih_l0"], w["bias_hh_l0"]]
    for reverse in (False, True):
        with torch.inference_mode():
            out, hn, _ = fused.sequence(
                x,
                h0,
                gru.weight_ih_l0,
                gru.weight_hh_l0,
                gru.bias_ih_l0,
                gru.bias_hh_l0,
                lengths=lengths,
                reverse=reverse,
            )
        ro, rh = reference.gru_direction(*args, lengths=lengths.numpy(), reverse=reverse)[:2]
        assert float((out.double() - torch.from_numpy(ro)).abs().max()) <= 1e-5
        assert float((hn.double() - torch.from_numpy(rh)).abs().max()) <= 1e-5


def test_weights_changed_in_place_are_used_by_the_next_call(gate_paths):
    """W_hh is packed on every call: an in-place update (an optimizer step) must show in the next result."""
    gru, ref = pair(6, 128)
    x = torch.randn(5, 8, 6)
    with torch.no_grad():
        a = gru(x)[0]
        for m in (gru, ref):
            m.weight_hh_l0.mul_(-0.5)
            m.bias_hh_l0.add_(0.25)
        b, r = gru(x)[0], ref(x)[0]
    assert rel_err(b, r) <= 1e-5 and rel_err(a, r) > 1e-2


def test_workspace_never_overwrites_buffers_saved_for_a_pending_backward(gate_paths):
    gru, ref = pair(6, 128)
    xs = [torch.randn(T, B, 6) for T, B in ((7, 8), (7, 8), (3, 20), (7, 8))]
    h0s = [torch.randn(1, B, 128) for B in (8, 8, 20, 8)]
    pending = []
    for x, h0 in zip(xs, h0s):  # four graphs alive at once, two of the same shape
        xg = x.clone().requires_grad_()
        out, hn = gru(xg, h0)
        pending.append((xg, out, hn))
    for _ in range(3):  # meanwhile other calls take (and free) workspace buffers
        o, _ = gru(torch.randn(7, 8, 6, requires_grad=True))
        o.sum().backward()
    gru.zero_grad()
    for (xg, out, hn), x, h0 in reversed(list(zip(pending, xs, h0s))):
        (gx,) = torch.autograd.grad(out.sum() + hn.sum(), [xg])
        xr = x.clone().requires_grad_()
        ro, rh = ref(xr, h0)
        (rx,) = torch.autograd.grad(ro.sum() + rh.sum(), [xr])
        assert rel_err(out.detach(), ro.detach()) <= 1e-5 and rel_err(gx, rx) <= 1e-4


def test_workspace_reuses_buffers_and_stays_bounded(gate_paths):
    fused.clear_workspace()
    gru, _ = pair(6, 128)
    x = torch.randn(7, 8, 6, requires_grad=True)
    for _ in range(5):
        out, _ = gru(x)
        out.sum().backward()
    first = len(fused._ws.bufs)
    ptrs = {b.data_ptr() for b, _, _ in fused._ws.bufs}
    for _ in range(5):
        out, _ = gru(x)
        out.sum().backward()
    assert 0 < first == len(fused._ws.bufs) and ptrs == {b.data_ptr() for b, _, _ in fused._ws.bufs}


def test_workspace_limit_and_fallback_give_the_same_answers(gate_paths, monkeypatch):
    gru, ref = pair(6, 128)
    x, h0 = torch.randn(6, 8, 6), torch.randn(1, 8, 128)
    monkeypatch.setattr(fused, "workspace_max_bytes", 0)  # every buffer fresh
    check_against_torch(gru, ref, x, h0)
    # some buffers fit, entries get evicted
    monkeypatch.setattr(fused, "workspace_max_bytes", 40_000)
    check_against_torch(gru, ref, x, h0)
    monkeypatch.setattr(fused, "_storage_use_count", None)  # a torch without the use-count API
    check_against_torch(gru, ref, x, h0)


def test_kept_gates_are_not_overwritten_by_later_calls(gate_paths):
    gru, _ = pair(3, 16)
    args = (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
    with torch.no_grad():
        x = torch.randn(1, 1, 3)
        _, _, g1 = fused.sequence(x, torch.zeros(1, 16), *args, return_gates=True)
        kept = [t.clone() for t in g1]
        fused.sequence(torch.randn(1, 1, 3) * 5, torch.ones(1, 16), *args, return_gates=True)
    assert all(torch.equal(a, b) for a, b in zip(g1, kept))


@pytest.mark.parametrize("threads", [1, 2])
def test_python_threads_with_their_own_workspaces_agree_with_torch(gate_paths, threads):
    """Native calls release the GIL: two Python threads training at once (each with 1 or 2 OpenMP threads)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    errors: list[BaseException] = []

    def work(seed, B, H):
        try:
            gru, ref = pair(5, H, seed=seed)
            g = torch.Generator().manual_seed(seed)
            for _ in range(3):
                x = torch.randn(8, B, 5, generator=g)
                h0 = torch.randn(1, B, H, generator=g)
                check_against_torch(gru, ref, x, h0)
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    try:
        ts = [threading.Thread(target=work, args=a) for a in ((1, 8, 128), (2, 16, 256))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        torch.set_num_threads(old)
    assert not errors, errors


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_registered_ops_pass_opcheck_on_the_gate_kernels(gate_paths, monkeypatch, dtype):
    """The registered op runs the same kernels: its outputs (incl. the in-loop bias sums) must satisfy opcheck."""
    monkeypatch.setattr(fused, "gate_backward_min_hidden", 0)
    g = torch.Generator().manual_seed(0)
    T, B, I, H = 4, 6, 3, 20

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()

    lengths = torch.tensor([4, 1, 3, 4, 2, 4])
    args = (
        r(T, B, I),
        r(B, H),
        r(3 * H, I),
        r(3 * H, H),
        r(3 * H),
        r(3 * H),
        lengths,
        True,
        True,
        True,
    )
    torch.library.opcheck(torch.ops.grukit.gru_sequence.default, args)
    with torch.no_grad():
        out, hn, hprev, gates = torch.ops.grukit.gru_sequence(*args)
    x, h0, w_ih, w_hh, b_ih, b_hh = (t.detach() for t in args[:6])
    bargs = (torch.randn_like(out), torch.randn_like(hn), x, h0, w_ih, w_hh, b_ih, b_hh, lengths)
    bargs += (hprev, gates, True, True)
    torch.library.opcheck(torch.ops.grukit.gru_sequence_backward.default, bargs)
