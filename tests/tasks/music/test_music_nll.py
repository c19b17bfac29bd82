"""NLL per time step against a hand-computed case, causality, chunked state carrying."""

import math

import numpy as np
import torch

from grukit.tasks.music.data import collate
from grukit.tasks.music.evaluate import evaluate_nll
from grukit.tasks.music.model import MusicGRU, nll_sums, sequence_nll


def _constant_model(p_key0: float, p_other: float) -> MusicGRU:
    """A model whose prediction ignores the input: head weight 0, bias = logit of fixed probabilities."""
    m = MusicGRU(hidden_size=4)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.fill_(math.log(p_other / (1 - p_other)))
        m.head.bias[0] = math.log(p_key0 / (1 - p_key0))
    return m.eval()


def test_nll_per_step_hand_computed():
    # Key 0 is predicted on with p = 0.75, every other key with p = 0.25.
    model = _constant_model(0.75, 0.25)
    a = np.zeros((3, 88), np.uint8)  # 2 predicted frames
    a[0, 40] = 1  # the first frame is never predicted: it must not count
    a[1, [0, 5]] = 1  # key 0 on (−log .75), key 5 on (−log .25), 86 keys off (−log .75 each)
    a[2, :] = 0  # key 0 off (−log .25), 87 keys off (−log .75 each)
    b = np.zeros((2, 88), np.uint8)  # 1 predicted frame
    b[1, [0, 1, 2]] = 1  # key 0 on (−log .75), keys 1, 2 on (−log .25 each), 85 off (−log .75 each)
    l75, l25 = -math.log(0.75), -math.log(0.25)
    frame_a1 = l75 + l25 + 86 * l75
    frame_a2 = l25 + 87 * l75
    frame_b1 = l75 + 2 * l25 + 85 * l75
    expected = (
        frame_a1 + frame_a2 + frame_b1
    ) / 3  # divided by predicted frames, not sequences or all frames
    res = evaluate_nll(model, [a, b], batch_size=2)
    assert res["frames"] == 3
    assert abs(res["nll_per_step"] - expected) < 1e-5
    one_by_one = evaluate_nll(model, [a, b], batch_size=1)
    assert abs(one_by_one["nll_per_step"] - expected) < 1e-5
    x, lengths = collate([a, b])
    with torch.no_grad():
        total, n = sequence_nll(model, x, lengths)
    assert int(n) == 3 and abs(float(total) - 3 * expected) < 1e-4


def test_nll_sums_matches_elementwise_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 88, dtype=torch.float64)
    y = (torch.rand(2, 5, 88) < 0.1).double()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    p = torch.sigmoid(logits)
    manual = -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).sum(-1)[mask].sum()
    total, n = nll_sums(logits, y, mask)
    assert int(n) == 8 and abs(float(total - manual)) < 1e-9


def test_prediction_is_causal_and_chunks_carry_state():
    torch.manual_seed(0)
    model = MusicGRU(hidden_size=16, num_layers=2).eval()
    x = (torch.rand(3, 30, 88) < 0.1).float()
    full, h_full = model(x)
    x2 = x.clone()
    x2[:, 20:] = 1 - x2[:, 20:]
    changed, _ = model(x2)
    assert torch.equal(full[:, :20], changed[:, :20]) and not torch.allclose(
        full[:, 20:], changed[:, 20:]
    )
    h = None
    parts = []
    for s in range(0, 30, 7):
        y, h = model(x[:, s : s + 7], h)
        parts.append(y)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-6) and torch.allclose(
        h, h_full, atol=1e-6
    )
    # streaming step() gives the same logits as the sequence call
    h = None
    for t in range(5):
        y, h = model.step(x[:, t], h)
        assert torch.allclose(y, full[:, t], atol=1e-5)
