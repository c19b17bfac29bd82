"""grukit.GRU / GRUCell against torch.nn.GRU / GRUCell: same weights, outputs and gradients."""

import itertools

import pytest
import torch
from support import randomize, rel_err
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
GTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def _pair(layers, bidir, batch_first, bias, dtype, I=6, H=5):
    ref = randomize(
        torch.nn.GRU(
            I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidir, dtype=dtype
        )
    )
    ours = grukit.GRU(
        I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidir, dtype=dtype
    )
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "layers,bidir,batch_first,bias",
    list(itertools.product([1, 2], [False, True], [False, True], [True, False])),
)
def test_forward_and_grads_match_torch(dtype, layers, bidir, batch_first, bias):
    ref, ours = _pair(layers, bidir, batch_first, bias, dtype)
    T, B, D = 7, 4, 2 if bidir else 1
    x = torch.randn((B, T, 6) if batch_first else (T, B, 6), dtype=dtype)
    h0 = torch.randn(layers * D, B, 5, dtype=dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ha, hb = h0.clone().requires_grad_(), h0.clone().requires_grad_()
    out_r, h_r = ref(xa, ha)
    out_o, h_o = ours(xb, hb)
    assert out_o.shape == out_r.shape and h_o.shape == h_r.shape
    assert (out_o - out_r).abs().max() <= TOL[dtype]
    assert (h_o - h_r).abs().max() <= TOL[dtype]
    w_out, w_h = torch.randn_like(out_r), torch.randn_like(h_r)
    ((out_r * w_out).sum() + (h_r * w_h).sum()).backward()
    ((out_o * w_out).sum() + (h_o * w_h).sum()).backward()
    assert rel_err(xb.grad, xa.grad) <= GTOL[dtype]
    assert rel_err(hb.grad, ha.grad) <= GTOL[dtype]
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert rel_err(p.grad, theirs[name].grad) <= GTOL[dtype], name


def test_state_dict_interchangeable():
    ref = torch.nn.GRU(3, 4, 2, bidirectional=True)
    ours = grukit.GRU(3, 4, 2, bidirectional=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ours.state_dict().items():
        assert v.shape == ref.state_dict()[k].shape, k
    ref.load_state_dict(randomize(ours).state_dict())  # and back the other way
    x = torch.randn(5, 2, 3)
    assert (ref(x)[0] - ours(x)[0]).abs().max() <= 1e-5


def test_from_torch_and_to_torch():
    ref = randomize(torch.nn.GRU(3, 4, 2, batch_first=True, bidirectional=True, dropout=0.25))
    ours = grukit.from_torch(ref)
    assert ours.batch_first and ours.bidirectional and ours.num_layers == 2 and ours.dropout == 0.25
    same = grukit.GRU.from_torch(ref)
    x = torch.randn(2, 5, 3)
    ref.eval()
    ours.eval()
    same.eval()
    assert (ours(x)[0] - ref(x)[0]).abs().max() <= 1e-5
    assert torch.equal(ours(x)[0], same(x)[0])
    back = grukit.to_torch(ours).eval()
    assert isinstance(back, torch.nn.GRU)
    assert (back(x)[0] - ref(x)[0]).abs().max() == 0
    with pytest.raises(ValueError, match="reset_after=True"):
        grukit.to_torch(grukit.GRU(3, 4, reset_after=False))
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        grukit.from_torch(torch.nn.LSTM(3, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_sequence_unsorted(dtype):
    ref, ours = _pair(2, True, False, True, dtype)
    T, B = 6, 5
    lengths = torch.tensor([3, 6, 1, 4, 6])
    x = torch.randn(T, B, 6, dtype=dtype)
    h0 = torch.randn(4, B, 5, dtype=dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    pa = pack_padded_sequence(xa, lengths, enforce_sorted=False)
    pb = pack_padded_sequence(xb, lengths, enforce_sorted=False)
    out_r, h_r = ref(pa, h0)
    out_o, h_o = ours(pb, h0)
    assert isinstance(out_o, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(out_o.batch_sizes, out_r.batch_sizes)
    assert torch.equal(out_o.sorted_indices, out_r.sorted_indices)
    assert (out_o.data - out_r.data).abs().max() <= TOL[dtype]
    assert (h_o - h_r).abs().max() <= TOL[dtype]
    (out_r.data.sum() + h_r.square().sum()).backward()
    (out_o.data.sum() + h_o.square().sum()).backward()
    assert rel_err(xb.grad, xa.grad) <= GTOL[dtype]
    # lengths= on padded input gives the same as packed
    pad_r, _ = pad_packed_sequence(out_r, total_length=T)
    out_l, h_l = ours(x, h0, lengths=lengths)
    assert (out_l - pad_r).abs().max() <= TOL[dtype] and (h_l - h_r).abs().max() <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(dtype, bias):
    ref = randomize(torch.nn.GRUCell(6, 5, bias=bias, dtype=dtype))
    ours = grukit.GRUCell(6, 5, bias=bias, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    x, h = torch.randn(3, 6, dtype=dtype), torch.randn(3, 5, dtype=dtype)
    assert (ours(x, h) - ref(x, h)).abs().max() <= TOL[dtype]
    assert (ours(x) - ref(x)).abs().max() <= TOL[dtype]  # h=None means zeros
    assert (ours(x[0], h[0]) - ref(x[0], h[0])).abs().max() <= TOL[dtype]
    back = grukit.to_torch(ours)
    assert isinstance(back, torch.nn.GRUCell) and torch.equal(back(x, h), ref(x, h))


def test_unbatched_input_matches_torch():
    ref, ours = _pair(2, True, True, True, torch.float32)
    x, h0 = torch.randn(7, 6), torch.randn(4, 5)
    out_r, h_r = ref(x, h0)
    out_o, h_o = ours(x, h0)
    assert out_o.shape == out_r.shape == (7, 10) and h_o.shape == (4, 5)
    assert (out_o - out_r).abs().max() <= 1e-5 and (h_o - h_r).abs().max() <= 1e-5


def test_inter_layer_dropout_follows_training_mode():
    ours = randomize(grukit.GRU(4, 8, 3, dropout=0.5))
    x = torch.randn(5, 2, 4)
    ours.eval()
    a, b = ours(x)[0], ours(x)[0]
    assert torch.equal(a, b)  # eval: deterministic and equal to torch without dropout
    ref = grukit.to_torch(ours).eval()
    assert (a - ref(x)[0]).abs().max() <= 1e-5
    ours.train()
    c = ours(x)[0]
    assert (c - a).abs().max() > 1e-4  # training: dropout between layers changes the result


def test_batch_of_zero_follows_torch():
    ref, ours = _pair(2, True, False, True, torch.float32)
    x = torch.randn(4, 0, 6)
    out_r, h_r = ref(x)
    out_o, h_o = ours(x)
    assert out_o.shape == out_r.shape and h_o.shape == h_r.shape


def test_default_init_like_torch():
    H = 16
    g = grukit.GRU(8, H, 2, bidirectional=True)
    bound = 1 / H**0.5
    for p in g.parameters():
        assert p.abs().max() <= bound and p.std() > bound / 3  # uniform on (−1/√H, 1/√H), not zeros
    before = g.weight_hh_l0.detach().clone()
    g.reset_parameters()
    assert not torch.equal(before, g.weight_hh_l0)
