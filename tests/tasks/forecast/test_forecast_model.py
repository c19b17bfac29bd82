"""The forecaster: file round trip, non-crossing quantiles, pinball loss by hand, level invariance."""

import pytest
import torch

import grukit
from grukit.tasks.forecast.model import ForecastNet, pinball_loss


def _inputs(B=5, C=12, H=4, Fp=6, Ff=2):
    return torch.randn(B, C, Fp), torch.randn(B, H, Ff)


@pytest.mark.parametrize("relative", [False, True])
def test_save_load_round_trip_and_ordered_quantiles(tmp_path, relative):
    m = ForecastNet(6, 2, 12, 4, hidden_size=8, num_layers=2, dropout=0.1, relative=relative).eval()
    past, fut = _inputs()
    out = m(past, fut)
    assert out.shape == (5, 4, 3)
    assert (out[..., 0] <= out[..., 1]).all() and (out[..., 1] <= out[..., 2]).all()
    grukit.save(m, tmp_path / "f.safetensors", task="forecast")
    back = grukit.load(tmp_path / "f.safetensors")
    assert back.config == m.config
    torch.testing.assert_close(back(past, fut), out, rtol=0, atol=0)


def test_relative_model_shifts_with_the_level():
    m = ForecastNet(6, 2, 12, 4, hidden_size=8, relative=True).eval()
    past, fut = _inputs()
    shifted = past.clone()
    shifted[..., 0] += 3.0
    torch.testing.assert_close(m(shifted, fut), m(past, fut) + 3.0, rtol=1e-5, atol=1e-5)
    absolute = ForecastNet(6, 2, 12, 4, hidden_size=8, relative=False).eval()
    assert not torch.allclose(absolute(shifted, fut), absolute(past, fut) + 3.0, atol=1e-3)


def test_pinball_loss_by_hand():
    pred = torch.tensor([[[0.0, 1.0, 2.0]]])  # one step, quantiles 0.1 0.5 0.9
    target = torch.tensor([[1.5]])
    # q=0.1: diff 1.5 → 0.15; q=0.5: diff 0.5 → 0.25; q=0.9: diff −0.5 → 0.1·0.5 = 0.05
    assert pinball_loss(pred, target).item() == pytest.approx((0.15 + 0.25 + 0.05) / 3)


def test_bad_shapes_are_named():
    m = ForecastNet(6, 2, 12, 4, hidden_size=8)
    with pytest.raises(ValueError, match=r"past must be \(B, 12, 6\)"):
        m(torch.randn(2, 10, 6), torch.randn(2, 4, 2))
    with pytest.raises(ValueError, match="future must be"):
        m(torch.randn(2, 12, 6), torch.randn(2, 3, 2))


def test_masked_pinball_ignores_padded_targets():
    pred = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]])  # two steps
    target = torch.tensor([[1.5, 100.0]])  # the second step is past the series' end
    mask = torch.tensor([[1.0, 0.0]])
    assert pinball_loss(pred, target, mask=mask).item() == pytest.approx((0.15 + 0.25 + 0.05) / 3)


def test_seasonal_base_median_is_seasonal_naive_plus_a_correction():
    torch.manual_seed(0)
    m = ForecastNet(6, 4, 12, 4, hidden_size=8, seasonal_base=True).eval()
    past, fut = _inputs(Ff=4)
    fut[..., -1] = torch.tensor([1.0, 1.0, 0.0, 1.0])  # step 3 has no lag-m value: base = last z
    for p in m.head[-1].parameters():  # zero correction: the median is exactly the base
        torch.nn.init.zeros_(p)
    out = m(past, fut)
    base = torch.where(fut[..., -1] > 0, fut[..., -2], past[:, -1:, 0])
    torch.testing.assert_close(out[..., 1], base, rtol=0, atol=0)
    with pytest.raises(ValueError, match="seasonal_base needs"):
        ForecastNet(6, 1, 12, 4, seasonal_base=True)
