"""GRU variants (layer norm, recurrent dropout, zoneout, DropConnect) against the float64 reference, plus
their train/eval behaviour, gradcheck, streaming, save/load and routing through the kernel dispatch."""

import numpy as np
import pytest
import torch
from support import numpy_params, randomize, rel_err
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit import reference
from grukit.functional import gru as variants

F64 = torch.float64


def _ref(gru, x, h0=None, lengths=None, masks=None):
    """The float64 reference of a variant GRU; masks from _capture for training mode, else eval."""
    return reference.variant_gru(
        x.detach().double().numpy(),
        numpy_params(gru),
        gru.num_layers,
        gru.bidirectional,
        gru.reset_after,
        None if h0 is None else h0.detach().double().numpy(),
        None if lengths is None else np.asarray(lengths),
        gru.batch_first,
        layer_norm=gru.layer_norm,
        masks=masks,
        zoneout_p=None if (gru.training or not gru.zoneout) else gru.zoneout,
    )


def _capture(gru):
    """Spy on the masks the layer draws; returns a list filled in (layer, direction) order."""
    drawn = []
    original = gru._draw_masks

    def spy(T, B, like):
        m = original(T, B, like)
        drawn.append(m)
        return m

    gru._draw_masks = spy
    return drawn


def _masks_for_reference(gru, drawn):
    D = gru.num_directions
    return {
        (i // D, i % D): {
            k: None if v is None else v.detach().double().numpy() for k, v in m._asdict().items()
        }
        for i, m in enumerate(drawn)
    }


def _np(t):
    return t.detach().double().numpy()


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(
    "bidir,lengths,batch_first", [(False, None, False), (True, [5, 2, 4], True)]
)
def test_layer_norm_matches_reference(reset_after, bidir, lengths, batch_first):
    gru = randomize(
        grukit.GRU(
            3,
            4,
            2,
            batch_first=batch_first,
            bidirectional=bidir,
            reset_after=reset_after,
            layer_norm=True,
            dtype=F64,
        )
    )
    D = 2 if bidir else 1
    x = torch.randn((3, 5, 3) if batch_first else (5, 3, 3), dtype=F64)
    h0 = torch.randn(2 * D, 3, 4, dtype=F64)
    for mode in (gru.train, gru.eval):  # layer norm alone has no randomness: train == eval
        mode()
        out, h_n, gates = gru(x, h0, lengths=lengths, return_gates=True)
        r_out, r_h, r_g = _ref(gru, x, h0, lengths)
        assert np.abs(_np(out) - r_out).max() <= 1e-10
        assert np.abs(_np(h_n) - r_h).max() <= 1e-10
        for k, name in enumerate("zrn"):
            assert np.abs(_np(getattr(gates, name)) - r_g[:, :, k]).max() <= 1e-10


def test_layer_norm_float32_and_gains_start_at_one():
    gru = grukit.GRU(5, 6, layer_norm=True)
    assert torch.equal(gru.ln_gain_ih_l0, torch.ones(18)) and torch.equal(
        gru.ln_gain_hh_l0, torch.ones(18)
    )
    randomize(gru)
    x, h0 = torch.randn(7, 2, 5), torch.randn(1, 2, 6)
    out, h_n = gru(x, h0)
    r_out, r_h, _ = _ref(gru, x, h0)
    assert np.abs(out.detach().numpy() - r_out).max() <= 1e-5
    assert np.abs(h_n.detach().numpy() - r_h).max() <= 1e-5


@pytest.mark.parametrize(
    "opts",
    [
        {"recurrent_dropout": 0.3},
        {"zoneout": 0.4},
        {"dropconnect": 0.5},
        {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2, "dropconnect": 0.25},
    ],
)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bidir,lengths", [(False, None), (True, [6, 3, 1])])
def test_training_masks_match_reference(opts, reset_after, bidir, lengths):
    """In training the layer's output equals the reference run with the very masks it drew: the recurrent
    mask once per sequence (the reference reuses it at every step), zoneout per step, DropConnect per call."""
    gru = randomize(
        grukit.GRU(3, 4, 2, bidirectional=bidir, reset_after=reset_after, dtype=F64, **opts)
    ).train()
    drawn = _capture(gru)
    D = 2 if bidir else 1
    x, h0 = torch.randn(6, 3, 3, dtype=F64), torch.randn(2 * D, 3, 4, dtype=F64)
    out, h_n, gates = gru(x, h0, lengths=lengths, return_gates=True)
    assert len(drawn) == 2 * D
    r_out, r_h, r_g = _ref(gru, x, h0, lengths, _masks_for_reference(gru, drawn))
    assert np.abs(_np(out) - r_out).max() <= 1e-10
    assert np.abs(_np(h_n) - r_h).max() <= 1e-10
    assert np.abs(_np(gates.z) - r_g[:, :, 0]).max() <= 1e-10
    # the masks really did something: eval (no masks, zoneout expectation) gives another answer
    assert np.abs(_np(gru.eval()(x, h0, lengths=lengths)[0]) - r_out).max() > 1e-3


def test_training_masks_float32():
    gru = randomize(
        grukit.GRU(3, 5, layer_norm=True, recurrent_dropout=0.3, zoneout=0.3, dropconnect=0.3)
    ).train()
    drawn = _capture(gru)
    x = torch.randn(9, 2, 3)
    out, h_n = gru(x)
    r_out, r_h, _ = _ref(gru, x, masks=_masks_for_reference(gru, drawn))
    assert np.abs(out.detach().numpy() - r_out).max() <= 1e-5


def test_mask_shapes_values_and_rates():
    p = 0.3
    gru = grukit.GRU(3, 64, recurrent_dropout=p, zoneout=p, dropconnect=p).train()
    m = gru._draw_masks(50, 40, torch.zeros(1))
    assert (
        m.recurrent.shape == (40, 64)
        and m.zoneout.shape == (50, 40, 64)
        and m.dropconnect.shape == (192, 64)
    )
    for mask in (m.recurrent, m.dropconnect):
        values = mask.unique().tolist()
        assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p))
        assert abs(float((mask == 0).float().mean()) - p) < 0.03
    assert set(m.zoneout.unique().tolist()) == {0.0, 1.0}
    assert abs(float(m.zoneout.mean()) - p) < 0.01
    assert not torch.equal(m.zoneout[0], m.zoneout[1])  # zoneout draws afresh at every step
    assert gru.eval()._draw_masks(50, 40, torch.zeros(1)) == variants.VariantMasks()


def test_zoneout_training_keeps_units_exactly():
    """Where the zoneout mask says keep, the unit's state is bit-for-bit its previous value."""
    gru = randomize(grukit.GRU(2, 16, zoneout=0.5, dtype=F64)).train()
    drawn = _capture(gru)
    h0 = torch.randn(1, 4, 16, dtype=F64)
    out, _ = gru(torch.randn(12, 4, 2, dtype=F64), h0)
    keep = drawn[0].zoneout.bool()
    prev = torch.cat([h0, out[:-1]])
    assert torch.equal(out[keep], prev[keep])
    assert (out[~keep] != prev[~keep]).all()


def test_eval_has_no_randomness_and_regularizers_vanish():
    """In eval: no random draws, repeatable outputs; dropout/DropConnect models equal torch.nn.GRU, zoneout
    equals the reference with the expectation p."""
    ref = torch.nn.GRU(3, 4, 2, dtype=F64)
    gru = grukit.GRU(3, 4, 2, recurrent_dropout=0.5, dropconnect=0.5, dtype=F64)
    gru.load_state_dict(ref.state_dict())
    gru.eval()
    x, h0 = torch.randn(6, 2, 3, dtype=F64), torch.randn(2, 2, 4, dtype=F64)
    state = torch.get_rng_state()
    out, h_n = gru(x, h0)
    assert torch.equal(torch.get_rng_state(), state)
    r_out, r_h = ref(x, h0)
    assert (out - r_out).abs().max() <= 1e-10 and (h_n - r_h).abs().max() <= 1e-10

    zo = randomize(grukit.GRU(3, 4, 2, zoneout=0.3, recurrent_dropout=0.2, dtype=F64)).eval()
    state = torch.get_rng_state()
    a, b = zo(x, h0)[0], zo(x, h0)[0]
    y, hy = zo.step(x[0], h0)
    assert torch.equal(torch.get_rng_state(), state) and torch.equal(a, b)
    r_out, _, _ = _ref(zo, x, h0)
    assert np.abs(_np(a) - r_out).max() <= 1e-10
    plain = randomize(grukit.GRU(3, 4, 2, dtype=F64)).eval()
    assert (plain(x, h0)[0] - a).abs().max() > 1e-3  # the expectation is not the plain GRU


def test_training_draws_new_masks_each_call():
    gru = randomize(grukit.GRU(3, 8, recurrent_dropout=0.5, dropconnect=0.5)).train()
    x = torch.randn(5, 2, 3)
    assert not torch.equal(gru(x)[0], gru(x)[0])


def test_dropconnect_goes_through_dispatch(monkeypatch):
    """DropConnect only changes W_hh, so the call still goes through the kernel seam with the masked weight;
    layer norm goes through the variant seam, and forcing backend='fused' on a call only the composite variant
    loop runs (return_gates) raises."""
    import grukit.nn.gru as layer  # the layer module holds the kernel seam it calls

    calls = []
    real = layer.kernels.run

    def recording(op, how, **kw):
        calls.append((op, kw))
        return real(op, how, **kw)

    monkeypatch.setattr(layer.kernels, "run", recording)
    gru = randomize(grukit.GRU(3, 4, dropconnect=0.5)).train()
    drawn = _capture(gru)
    gru(torch.randn(5, 2, 3))
    assert [c[0] for c in calls] == ["sequence"]
    assert torch.equal(calls[0][1]["w_hh"], gru.weight_hh_l0 * drawn[0].dropconnect)
    calls.clear()
    gru.eval()(torch.randn(5, 2, 3))
    assert calls[0][0] == "sequence" and calls[0][1]["w_hh"] is gru.weight_hh_l0
    calls.clear()
    grukit.GRU(3, 4, layer_norm=True)(torch.randn(5, 2, 3))
    assert [(c[0], c[1]["ln_hh"] is not None) for c in calls] == [("variant", True)]
    with pytest.raises(ValueError, match="fused.*gates are the composite"):
        grukit.GRU(3, 4, zoneout=0.1, backend="fused")(torch.randn(5, 2, 3), return_gates=True)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradcheck_variant_sequence(reset_after):
    """float64 gradcheck of the variant loop with every option on, fixed masks, lengths and reverse."""
    T, B, I, H = 4, 2, 3, 3
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=F64).requires_grad_()  # noqa: E731
    x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh = (
        rnd(T, B, I),
        rnd(B, H),
        rnd(3 * H, I),
        rnd(3 * H, H),
        rnd(3 * H),
        rnd(3 * H),
        rnd(3 * H),
        rnd(3 * H),
    )
    rec = variants.dropout_mask((B, H), 0.3, h0).detach()
    zone = variants.zoneout_mask((T, B, H), 0.4, h0).detach()
    dc = variants.dropout_mask((3 * H, H), 0.3, h0).detach()
    for reverse, lengths in ((False, None), (True, torch.tensor([4, 2]))):

        def f(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh):
            out, h, _ = variants.sequence(
                x,
                h0,
                w_ih,
                w_hh * dc,
                b_ih,
                b_hh,
                reset_after,
                lengths,
                reverse,
                ln_ih=ln_ih,
                ln_hh=ln_hh,
                recurrent_mask=rec,
                zoneout=zone,
            )
            return out, h

        assert gradcheck(
            f, (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh), eps=1e-6, atol=1e-7, fast_mode=True
        )


def test_gradcheck_layer_eval_zoneout_layer_norm():
    gru = randomize(
        grukit.GRU(3, 2, 2, bidirectional=True, layer_norm=True, zoneout=0.3, dtype=F64)
    ).eval()
    names = [n for n, _ in gru.named_parameters()]
    x = torch.randn(3, 2, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]

    def f(x, h0, *ps):
        return torch.func.functional_call(gru, dict(zip(names, ps)), (x, h0), {"lengths": [3, 2]})

    assert gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize(
    "opts", [{"layer_norm": True}, {"zoneout": 0.3, "layer_norm": True, "dropconnect": 0.2}]
)
def test_streaming_equals_full(opts):
    gru = randomize(grukit.GRU(3, 5, 2, reset_after=False, dtype=F64, **opts)).eval()
    x, h0 = torch.randn(8, 2, 3, dtype=F64), torch.randn(2, 2, 5, dtype=F64)
    full, h_full = gru(x, h0)
    h, ys = h0, []
    for t in range(8):
        y, h = gru.step(x[t], h)
        ys.append(y)
    assert (torch.stack(ys) - full).abs().max() <= 1e-12 and (h - h_full).abs().max() <= 1e-12
    a, h_a = gru(x[:3], h0)
    b, h_b = gru(x[3:], h_a)
    assert (torch.cat([a, b]) - full).abs().max() <= 1e-12 and (h_b - h_full).abs().max() <= 1e-12
    y1, h1 = gru.step(x[0, 0], h0[:, 0])  # unbatched step
    assert (y1 - ys[0][0]).abs().max() <= 1e-12 and h1.shape == (2, 5)


def test_step_in_training_uses_masks():
    gru = randomize(grukit.GRU(3, 6, zoneout=0.5, recurrent_dropout=0.5)).train()
    drawn = _capture(gru)
    x, h = torch.randn(2, 3), torch.randn(1, 2, 6)
    y, h_new = gru.step(x, h)
    m = drawn[0]
    assert m.zoneout.shape == (1, 2, 6) and m.recurrent.shape == (2, 6)
    ref = variants.cell(
        x,
        h[0],
        gru.weight_ih_l0,
        gru.weight_hh_l0,
        gru.bias_ih_l0,
        gru.bias_hh_l0,
        recurrent_mask=m.recurrent,
        zoneout=m.zoneout[0],
    )
    assert torch.equal(y, ref)
    r_out, _, _ = _ref(gru, x[None], h, masks=_masks_for_reference(gru, drawn))
    assert np.abs(y.detach().numpy() - r_out[0]).max() <= 1e-5


def test_packed_equals_padded_with_lengths():
    gru = randomize(
        grukit.GRU(3, 4, bidirectional=True, layer_norm=True, zoneout=0.2, dtype=F64)
    ).eval()
    x, lengths = torch.randn(6, 3, 3, dtype=F64), torch.tensor([4, 6, 2])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_p, h_p = gru(packed)
    out_l, h_l = gru(x, lengths=lengths)
    padded, _ = pad_packed_sequence(out_p)
    assert (padded - out_l[: padded.shape[0]]).abs().max() <= 1e-12 and (
        h_p - h_l
    ).abs().max() <= 1e-12


def test_state_dict_keys_and_save_load(tmp_path):
    plain_keys = list(torch.nn.GRU(3, 4, 2, bidirectional=True).state_dict())
    reg = grukit.GRU(
        3, 4, 2, bidirectional=True, recurrent_dropout=0.1, zoneout=0.1, dropconnect=0.1
    )
    assert list(reg.state_dict()) == plain_keys
    ln = randomize(
        grukit.GRU(3, 4, 2, bidirectional=True, layer_norm=True, zoneout=0.25, dropconnect=0.1)
    )
    extra = sorted(set(ln.state_dict()) - set(plain_keys))
    assert extra == sorted(
        f"ln_gain_{a}_l{k}{s}" for a in ("ih", "hh") for k in (0, 1) for s in ("", "_reverse")
    )
    path = grukit.save(ln, tmp_path / "ln.safetensors")
    back = grukit.load(path)
    assert (
        back.config == ln.config
        and back.layer_norm
        and back.zoneout == 0.25
        and back.dropconnect == 0.1
    )
    x = torch.randn(5, 2, 3)
    assert torch.equal(back(x)[0], ln.eval()(x)[0])
    with pytest.raises(ValueError):
        grukit.to_torch(ln)  # torch.nn.GRU has no layer norm: refused, not silently dropped


def test_bad_options():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        grukit.GRU(3, 4, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="zoneout"):
        grukit.GRU(3, 4, zoneout=-0.1)
    with pytest.raises(TypeError, match="dropconnect"):
        grukit.GRU(3, 4, dropconnect="0.1")
    with pytest.raises(TypeError, match="layer_norm"):
        grukit.GRU(3, 4, layer_norm=1)


def test_float32_gradients_match_float64():
    gru = randomize(grukit.GRU(3, 5, layer_norm=True, zoneout=0.3)).eval()
    g64 = grukit.GRU(3, 5, layer_norm=True, zoneout=0.3, dtype=F64).eval()
    g64.load_state_dict({k: v.double() for k, v in gru.state_dict().items()})
    x = torch.randn(30, 2, 3)
    gru(x)[0].square().sum().backward()
    g64(x.double())[0].square().sum().backward()
    for (n, p), p64 in zip(gru.named_parameters(), g64.parameters()):
        assert rel_err(p.grad.double(), p64.grad) <= 1e-4, n
