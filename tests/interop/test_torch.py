"""torch.nn.GRU / GRUCell ↔ grukit, checked against torch's own forward."""

import pytest
import torch

import grukit

from ._util import TOL, maxdiff, randomize


@pytest.mark.parametrize(
    "num_layers,bidirectional,bias", [(1, False, True), (2, True, True), (2, False, False)]
)
def test_from_torch_and_back_match_torch_forward(num_layers, bidirectional, bias):
    ref = randomize(
        torch.nn.GRU(3, 5, num_layers, bias=bias, bidirectional=bidirectional, batch_first=True)
    )
    ours = grukit.from_torch(ref)
    assert (ours.num_layers, ours.bidirectional, ours.bias, ours.batch_first) == (
        num_layers,
        bidirectional,
        bias,
        True,
    )
    D = 2 if bidirectional else 1
    x, h0 = torch.randn(4, 6, 3), torch.randn(num_layers * D, 4, 5)
    with torch.no_grad():
        y_ref, h_ref = ref(x, h0)
        y, h = ours(x, h0)
        assert maxdiff(y, y_ref) <= TOL and maxdiff(h, h_ref) <= TOL
        back = grukit.to_torch(ours)
        assert type(back) is torch.nn.GRU
        y2, h2 = back(x, h0)
    assert maxdiff(y2, y_ref) <= TOL and maxdiff(h2, h_ref) <= TOL


def test_cell_round_trip():
    ref = randomize(torch.nn.GRUCell(3, 4))
    ours = grukit.from_torch(ref)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    with torch.no_grad():
        assert maxdiff(ours(x, h), ref(x, h)) <= TOL
        assert maxdiff(grukit.to_torch(ours)(x, h), ref(x, h)) <= TOL


def test_to_torch_refuses_what_torch_cannot_express():
    with pytest.raises(ValueError, match="reset_after=True"):
        grukit.to_torch(grukit.GRU(3, 4, reset_after=False))
    with pytest.raises(ValueError, match="layer_norm"):
        grukit.to_torch(grukit.GRU(3, 4, layer_norm=True))
    with pytest.raises(TypeError, match="grukit.GRU"):
        grukit.to_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        grukit.from_torch(torch.nn.LSTM(3, 4))
