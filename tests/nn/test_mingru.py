"""MinGRU: parallel scan and sequential loop against the float64 reference and the paper's own equations;
long sequences at the docs/conventions.md tolerances; gradcheck; streaming; lengths, packed and save/load."""

import numpy as np
import pytest
import torch
from support import numpy_params, randomize, rel_err
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit import reference
from grukit.nn import mingru as mg

F64 = torch.float64


def _np(t):
    return t.detach().double().numpy()


def _ref(m, x, h0=None, lengths=None):
    return reference.mingru(
        _np(x),
        numpy_params(m),
        m.num_layers,
        m.bidirectional,
        None if h0 is None else _np(h0),
        lengths,
        m.batch_first,
    )


@pytest.mark.parametrize("mode", ["scan", "logscan", "loop"])
@pytest.mark.parametrize(
    "bidir,lengths,batch_first",
    [(False, None, False), (True, [21, 9, 1], True), (False, [5, 21, 13], False)],
)
def test_matches_reference(mode, bidir, lengths, batch_first):
    m = randomize(grukit.MinGRU(3, 4, 2, batch_first=batch_first, bidirectional=bidir, dtype=F64))
    D = 2 if bidir else 1
    x = torch.randn(
        (3, 21, 3) if batch_first else (21, 3, 3), dtype=F64
    )  # T = 21: not a multiple of a block
    h0 = torch.randn(2 * D, 3, 4, dtype=F64)  # states of both signs
    out, h_n, gates = m(x, h0, lengths=lengths, return_gates=True, mode=mode)
    r_out, r_h, r_g = _ref(m, x, h0, lengths)
    assert np.abs(_np(out) - r_out).max() <= 1e-10
    assert np.abs(_np(h_n) - r_h).max() <= 1e-10
    assert np.abs(_np(gates.z) - r_g[:, :, 0]).max() <= 1e-12
    assert np.abs(_np(gates.n) - r_g[:, :, 1]).max() <= 1e-12
    assert gates.z.shape == (2, D, 21, 3, 4)


def test_paper_form():
    """The paper's h_t = (1 − z'_t) h_{t−1} + z'_t h̃_t with z' = σ(k), k = −(our z pre-activation)."""
    m = randomize(grukit.MinGRU(3, 4, dtype=F64))
    x, h = torch.randn(6, 2, 3, dtype=F64), torch.randn(2, 4, dtype=F64)
    w, b = _np(m.weight_ih_l0), _np(m.bias_ih_l0)
    hp = _np(h)
    for t in range(6):
        a = _np(x[t]) @ w.T + b
        k, cand = -a[:, :4], a[:, 4:]
        z_paper = 1 / (1 + np.exp(-k))
        h_tilde = np.where(cand >= 0, cand + 0.5, 1 / (1 + np.exp(-cand)))
        hp = (1 - z_paper) * hp + z_paper * h_tilde
    assert np.abs(_np(m(x, h[None])[1][0]) - hp).max() <= 1e-12


def test_float32_matches_reference():
    m = randomize(grukit.MinGRU(5, 6, 2))
    x, h0 = torch.randn(40, 3, 5), torch.randn(2, 3, 6)
    r_out, r_h, _ = _ref(m, x, h0)
    for mode in ("scan", "logscan", "loop"):
        out, h_n = m(x, h0, mode=mode)
        assert out.dtype == torch.float32
        assert np.abs(_np(out) - r_out).max() <= 1e-5 and np.abs(_np(h_n) - r_h).max() <= 1e-5


def _long_memory(dtype):
    """A layer with z spread from ~e^-60 (clamped in the scan) to ~0.999 (long memory) across units."""
    m = randomize(grukit.MinGRU(4, 8, dtype=dtype), scale=0.3)
    with torch.no_grad():
        m.bias_ih_l0[:8] = torch.tensor([7.0, 5.0, 3.0, 1.0, 0.0, -2.0, -20.0, -60.0], dtype=dtype)
    return m


def _grads(m, x, h0, mode):
    x = x.clone().requires_grad_()
    m.zero_grad()
    out, h_n = m(x, h0, mode=mode)
    (out * torch.cos(out)).sum().backward()
    return out.detach(), h_n.detach(), [x.grad] + [p.grad.clone() for p in m.parameters()]


@pytest.mark.parametrize("mode", ["scan", "logscan"])
def test_long_sequence_scan_vs_sequential(mode):
    """T = 4096: float64 scan vs loop ≤ 1e-10 (gradients ≤ 1e-9 relative); float32 scan and its gradients
    vs float64 relative ≤ 1e-4."""
    T = 4096
    m64 = _long_memory(F64)
    m32 = grukit.MinGRU(4, 8)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    x, h0 = torch.randn(T, 2, 4, dtype=F64), torch.randn(1, 2, 8, dtype=F64)
    loop, h_loop, g_loop = _grads(m64, x, h0, "loop")
    scan, h_scan, g_scan = _grads(m64, x, h0, mode)
    assert (scan - loop).abs().max() <= 1e-10 and (h_scan - h_loop).abs().max() <= 1e-10
    for a, b in zip(g_scan, g_loop):
        assert rel_err(a, b) <= 1e-9
    s32, h32, g32 = _grads(m32, x.float(), h0.float(), mode)
    assert rel_err(s32.double(), loop) <= 1e-4 and rel_err(h32.double(), h_loop) <= 1e-4
    for a, b in zip(g32, g_loop):
        assert rel_err(a.double(), b) <= 1e-4
    r_out, _, _ = _ref(m64, x[-300:], loop[-301][None])  # the reference agrees on the tail
    assert np.abs(_np(loop[-300:]) - r_out).max() <= 1e-10


@pytest.mark.parametrize("bidir,lengths,layers", [(False, None, 2), (True, [17, 7], 1)])
def test_gradcheck(bidir, lengths, layers):
    m = randomize(grukit.MinGRU(3, 2, layers, bidirectional=bidir, dtype=F64))
    names = [n for n, _ in m.named_parameters()]
    D = 2 if bidir else 1
    x = torch.randn(17, 2, 3, dtype=F64, requires_grad=True)  # 17 steps: two chunks, one partial
    h0 = torch.randn(layers * D, 2, 2, dtype=F64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    for mode in ("scan", "logscan", "loop"):

        def f(x, h0, *ps):
            return torch.func.functional_call(
                m, dict(zip(names, ps)), (x, h0), {"lengths": lengths, "mode": mode}
            )

        assert gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-7, fast_mode=True)
    small = (x[:4].detach().requires_grad_(), h0, *params)
    assert gradgradcheck(
        lambda x, h0, *ps: torch.func.functional_call(
            m, dict(zip(names, ps)), (x, h0), {"mode": "loop"}
        ),
        small,
        eps=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("T", [1, 50, 300])
def test_scan_functions_signed_values(T):
    """Both scans (any sign of b and h0; a down to the log-space clamp) against a plain recurrence."""
    B, H = 3, 4
    log_a = -torch.rand(T, B, H, dtype=F64) * 3
    log_a[
        T // 2, 0, 0
    ] = -100.0  # clamped to −40 by log_scan: a difference far below float64 resolution
    b, h0 = torch.randn(T, B, H, dtype=F64), torch.randn(B, H, dtype=F64)
    h, hs = h0, []
    for t in range(T):
        h = torch.exp(log_a[t]) * h + b[t]
        hs.append(h)
    want = torch.stack(hs)
    assert (mg.scan(torch.exp(log_a), b, h0) - want).abs().max() <= 1e-12
    assert (mg.log_scan(log_a, b, h0) - want).abs().max() <= 1e-12


def test_streaming_and_chunks_equal_full():
    m = randomize(grukit.MinGRU(3, 5, 2, dtype=F64))
    x, h0 = torch.randn(20, 2, 3, dtype=F64), torch.randn(2, 2, 5, dtype=F64)
    full, h_full = m(x, h0)
    h, ys = h0, []
    for t in range(20):
        y, h = m.step(x[t], h)
        ys.append(y)
    assert (torch.stack(ys) - full).abs().max() <= 1e-12 and (h - h_full).abs().max() <= 1e-12
    a, h_a = m(x[:7], h0)
    b, h_b = m(x[7:], h_a)
    assert (torch.cat([a, b]) - full).abs().max() <= 1e-12 and (h_b - h_full).abs().max() <= 1e-12
    y1, h1 = m.step(x[0, 1], h0[:, 1])  # unbatched
    assert (y1 - ys[0][1]).abs().max() <= 1e-15 and h1.shape == (2, 5)
    out_u, h_u = m(x[:, 1], h0[:, 1])  # unbatched sequence
    assert (out_u - full[:, 1]).abs().max() <= 1e-12 and h_u.shape == (2, 5)


def test_packed_equals_padded():
    m = randomize(grukit.MinGRU(3, 4, bidirectional=True, dtype=F64))
    x, lengths = torch.randn(9, 3, 3, dtype=F64), torch.tensor([4, 9, 2])
    out_p, h_p = m(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out_l, h_l = m(x, lengths=lengths)
    padded, lens = pad_packed_sequence(out_p)
    assert torch.equal(lens, lengths)
    assert (padded - out_l).abs().max() <= 1e-12 and (h_p - h_l).abs().max() <= 1e-12
    assert (out_l[4:, 0] == 0).all()


def test_save_load_and_config(tmp_path):
    m = randomize(grukit.MinGRU(3, 4, 2, bidirectional=True, batch_first=True, dropout=0.1))
    assert sorted(m.state_dict()) == sorted(
        f"{w}_ih_l{k}{s}" for w in ("weight", "bias") for k in (0, 1) for s in ("", "_reverse")
    )
    back = grukit.load(grukit.save(m, tmp_path / "m.safetensors"))
    assert isinstance(back, grukit.MinGRU) and back.config == m.config
    x = torch.randn(2, 6, 3)
    assert torch.equal(back(x)[0], m.eval()(x)[0])


def test_errors():
    m = grukit.MinGRU(3, 4)
    with pytest.raises(ValueError, match="mode"):
        m(torch.randn(5, 2, 3), mode="parallel")
    with pytest.raises(ValueError, match="size 3"):
        m(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="hx of shape"):
        m(torch.randn(5, 2, 3), torch.zeros(2, 2, 4))
    with pytest.raises(TypeError, match="dtype"):
        m(torch.randn(5, 2, 3, dtype=F64))
    with pytest.raises(ValueError, match="unidirectional"):
        grukit.MinGRU(3, 4, bidirectional=True).step(torch.randn(2, 3))
    with pytest.raises(ValueError, match="lengths"):
        m(torch.randn(5, 2, 3), lengths=[6, 2])
