"""The autoregressive-within-frame head: exact chain-rule likelihood, within-frame causality, sampling."""

import math

import pytest
import torch

from grukit.tasks.music.data import collate
from grukit.tasks.music.model import MusicGRU, sequence_nll


def _ar_model(seed=0):
    torch.manual_seed(seed)
    m = MusicGRU(hidden_size=8, frame_ar=True)
    with torch.no_grad():
        m.ar_weight.normal_(0, 0.5)
        m.head.bias.normal_(-2, 1)
    return m.eval()


def test_nll_equals_explicit_chain_rule_over_keys():
    m = _ar_model()
    torch.manual_seed(1)
    seqs = [
        (torch.rand(6, 88) < 0.1).to(torch.uint8).numpy(),
        (torch.rand(4, 88) < 0.1).to(torch.uint8).numpy(),
    ]
    x, lengths = collate(seqs)
    with torch.no_grad():
        total, n = sequence_nll(m, x, lengths)
        a = (m.ar_weight * m.ar_mask).double()
        expected = 0.0
        for s in seqs:
            xs = torch.as_tensor(s).double()
            h = None
            for t in range(len(s) - 1):
                base, h = m.step(
                    xs[t : t + 1].float(), h
                )  # head logits for frame t + 1, no within-frame term
                target = xs[t + 1]
                for k in range(88):
                    logit = float(base[0, k]) + sum(
                        float(a[k, j]) * float(target[j]) for j in range(k)
                    )
                    p_on = 1 / (1 + math.exp(-logit))
                    expected -= math.log(p_on if target[k] else 1 - p_on)
    assert int(n) == 5 + 3
    assert abs(float(total) - expected) < 1e-5 * abs(expected)


def test_within_frame_causality():
    m = _ar_model()
    x = (torch.rand(2, 5, 88) < 0.2).float()
    nxt = (torch.rand(2, 5, 88) < 0.2).float()
    base, _ = m(x, next_frames=nxt)
    k = 40
    nxt2 = nxt.clone()
    nxt2[..., k] = 1 - nxt2[..., k]
    changed, _ = m(x, next_frames=nxt2)
    assert torch.equal(base[..., : k + 1], changed[..., : k + 1])  # keys ≤ k do not see key k
    assert not torch.allclose(base[..., k + 1 :], changed[..., k + 1 :])
    with pytest.raises(ValueError, match="next_frames"):
        m(x)


def test_sample_frame_follows_the_within_frame_weights():
    m = MusicGRU(hidden_size=4, frame_ar=True).eval()
    with torch.no_grad():
        m.ar_weight.zero_()
        for k in range(1, 88):
            m.ar_weight[k, k - 1] = 60.0  # key k is on iff key k − 1 is (nearly surely)
    logits = torch.full((3, 88), -30.0)
    logits[0, 0] = 30.0  # row 0: key 0 on → the whole chain turns on; rows 1, 2: all off
    frame = m.sample_frame(logits, generator=torch.Generator().manual_seed(0))
    assert frame[0].eq(1).all() and frame[1:].eq(0).all()
